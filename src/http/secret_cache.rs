//! Webhook secrets read on every delivery, kept for a few seconds. A secret never changes once
//! stored; only `webhooks delete` (possibly from another process) removes one, and that takes
//! effect here within the time to live.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::store::{Store, StoreResult};

const TIME_TO_LIVE: Duration = Duration::from_secs(5);

#[derive(Clone, Default)]
pub struct SecretCache {
    entries: Arc<RwLock<HashMap<String, (SecretString, Instant)>>>,
}

impl SecretCache {
    /// The secret of webhook `name`, from the cache or the store. Unknown names are not cached,
    /// so a handshake takes effect at once.
    pub async fn get(&self, store: &Store, name: &str) -> StoreResult<Option<SecretString>> {
        if let Some((secret, fetched)) = self.entries.read().expect("not poisoned").get(name)
            && fetched.elapsed() < TIME_TO_LIVE
        {
            return Ok(Some(secret.clone()));
        }
        let secret = store.webhook_secret(name).await?;
        let mut entries = self.entries.write().expect("not poisoned");
        match &secret {
            Some(secret) => {
                entries.insert(name.to_string(), (secret.clone(), Instant::now()));
            }
            None => {
                entries.remove(name);
            }
        }
        Ok(secret)
    }
}
