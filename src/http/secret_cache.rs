//! Webhook secrets read on every delivery, kept for a few seconds; names without a secret too, for
//! less, so requests to unknown names repeated by a flood are refused without a store read. A
//! secret never changes once stored; only `webhooks delete` (possibly from another process)
//! removes one, and that takes effect here within the time to live. A name whose registration is
//! under way (a secret `webhooks create` has not confirmed yet) is never remembered as unknown.
//! A handshake accepted here forgets the name's entry at once; one accepted by another replica is seen within
//! [`UNKNOWN_TIME_TO_LIVE`]. The cache is bounded: random names evict each other, not memory.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashlink::LruCache;

use crate::domain::WebhookName;
use crate::store::{SecretLookup, Store, StoreResult, UsableWebhook};

const TIME_TO_LIVE: Duration = Duration::from_secs(5);
pub const UNKNOWN_TIME_TO_LIVE: Duration = Duration::from_secs(2);
/// Far more than the webhooks a deployment has; each entry is a name and perhaps a secret.
const CAPACITY: usize = 10_000;

struct Entry {
    webhook: Option<UsableWebhook>,
    fetched: Instant,
}

impl Entry {
    fn is_fresh(&self) -> bool {
        let ttl = match self.webhook {
            Some(_) => TIME_TO_LIVE,
            None => UNKNOWN_TIME_TO_LIVE,
        };
        self.fetched.elapsed() < ttl
    }
}

#[derive(Clone)]
pub struct SecretCache {
    entries: Arc<Mutex<LruCache<WebhookName, Entry>>>,
}

impl Default for SecretCache {
    fn default() -> Self {
        SecretCache::with_capacity(CAPACITY)
    }
}

impl SecretCache {
    fn with_capacity(capacity: usize) -> Self {
        SecretCache {
            entries: Arc::new(Mutex::new(LruCache::new(capacity))),
        }
    }

    /// The secret (and project) of webhook `name`, from the cache or the store.
    pub async fn get(
        &self,
        store: &Store,
        name: &WebhookName,
    ) -> StoreResult<Option<UsableWebhook>> {
        if let Some(secret) = self.cached(name) {
            return Ok(secret);
        }
        let webhook = match store.lookup_secret(name).await? {
            SecretLookup::Usable(webhook) => Some(webhook),
            SecretLookup::Unknown => None,
            // Not remembered: `webhooks create` (another process) may confirm it any moment, and
            // Asana's first delivery follows at once.
            SecretLookup::Unconfirmed => return Ok(None),
        };
        self.entries.lock().expect("not poisoned").insert(
            name.clone(),
            Entry {
                webhook: webhook.clone(),
                fetched: Instant::now(),
            },
        );
        Ok(webhook)
    }

    /// Drops what is known of `name`, so its next request reads the store (after a handshake).
    pub fn forget(&self, name: &WebhookName) {
        self.entries.lock().expect("not poisoned").remove(name);
    }

    /// `Some(secret or none)` while the entry for `name` is fresh.
    fn cached(&self, name: &WebhookName) -> Option<Option<UsableWebhook>> {
        let mut entries = self.entries.lock().expect("not poisoned");
        entries
            .get(name)
            .filter(|entry| entry.is_fresh())
            .map(|entry| entry.webhook.clone())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().expect("not poisoned").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    fn name(text: &str) -> WebhookName {
        text.parse().unwrap()
    }

    fn secret() -> secrecy::SecretString {
        secrecy::SecretString::from("s3cret")
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bridge.db").display());
        let store = Store::open_migrated(&url, &StoreOptions::default())
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn unknown_names_are_remembered_briefly_and_forgotten_on_handshake() {
        let (_dir, store) = store().await;
        let cache = SecretCache::default();
        assert!(cache.get(&store, &name("later")).await.unwrap().is_none());
        store
            .store_secret_if_absent(&name("later"), secret())
            .await
            .unwrap();
        assert!(
            cache.get(&store, &name("later")).await.unwrap().is_none(),
            "the unknown name is answered from the cache"
        );
        cache.forget(&name("later"));
        assert!(cache.get(&store, &name("later")).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_name_being_registered_is_not_remembered_as_unknown() {
        use crate::store::{RegisteredWebhook, RegistrationOpening};
        let (_dir, store) = store().await;
        let cache = SecretCache::default();
        let window = Duration::from_secs(60);
        let opened = store
            .open_registration(&name("new"), "hash".into(), window)
            .await
            .unwrap();
        assert_eq!(opened, RegistrationOpening::Opened);
        store
            .store_secret_in_window(&name("new"), secret(), "hash".into(), window)
            .await
            .unwrap();
        assert!(
            cache.get(&store, &name("new")).await.unwrap().is_none(),
            "unconfirmed"
        );
        let registered = RegisteredWebhook {
            webhook_gid: "1".parse().unwrap(),
            resource: crate::domain::WatchedResource::Project("2".parse().unwrap()),
            target: "https://bridge.example.com/webhooks/asana/new".into(),
        };
        assert!(
            store
                .confirm_registration(&name("new"), "hash".into(), registered)
                .await
                .unwrap()
        );
        assert!(
            cache.get(&store, &name("new")).await.unwrap().is_some(),
            "usable as soon as `webhooks create` (another process) confirmed it"
        );
    }

    #[tokio::test]
    async fn random_names_cannot_grow_the_cache_beyond_its_capacity() {
        let (_dir, store) = store().await;
        let cache = SecretCache::with_capacity(16);
        for i in 0..100 {
            cache
                .get(&store, &name(&format!("random-{i}")))
                .await
                .unwrap();
        }
        assert_eq!(cache.len(), 16);
    }
}
