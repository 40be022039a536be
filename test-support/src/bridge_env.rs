//! The `BRIDGE__*` environment of a bridge under test.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fmt;

/// Variables whose values `Debug` never shows, fake as they are in tests.
const SECRET_VARS: [&str; 2] = ["BRIDGE__ASANA__TOKEN", "BRIDGE__DOCSPACE__API_KEY"];

/// The variables a bridge runs with, built up by a test and handed either to a child process
/// ([`BridgeEnv::command`], [`BridgeEnv::std_command`]: nothing else of the parent's environment
/// reaches it) or to the settings loader of a bridge in the same process ([`BridgeEnv::to_map`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BridgeEnv {
    vars: BTreeMap<String, String>,
}

impl BridgeEnv {
    /// No variables at all: every setting at its compiled-in default.
    pub fn new() -> BridgeEnv {
        BridgeEnv::default()
    }

    /// Listening on 127.0.0.1 at `port`; 0 lets the bridge pick a free port (it logs the one it
    /// bound, and `Application::port` returns it).
    pub fn listen_on(self, port: u16) -> BridgeEnv {
        self.with("BRIDGE__SERVER__HOST", "127.0.0.1")
            .with("BRIDGE__SERVER__PORT", &port.to_string())
    }

    /// Asana's API root (a fake's URL, say) and the token the bridge presents to it.
    pub fn asana(self, base_url: &str, token: &str) -> BridgeEnv {
        self.with("BRIDGE__ASANA__BASE_URL", base_url)
            .with("BRIDGE__ASANA__TOKEN", token)
    }

    /// DocSpace's base URL and the API key the bridge presents to it.
    pub fn docspace(self, base_url: &str, api_key: &str) -> BridgeEnv {
        self.with("BRIDGE__DOCSPACE__BASE_URL", base_url)
            .with("BRIDGE__DOCSPACE__API_KEY", api_key)
    }

    /// The store: a `sqlite://` or `postgres://` URL.
    pub fn database(self, url: &str) -> BridgeEnv {
        self.with("BRIDGE__DATABASE__URL", url)
    }

    /// Sets `var` to `value`, by value (for building).
    pub fn with(mut self, var: &str, value: &str) -> BridgeEnv {
        self.set(var, value);
        self
    }

    /// Sets `var` to `value`, in place (for a test changing one setting).
    pub fn set(&mut self, var: &str, value: &str) -> &mut BridgeEnv {
        self.vars.insert(var.to_string(), value.to_string());
        self
    }

    /// Unsets `var`, so the bridge falls back to the setting's default.
    pub fn remove(&mut self, var: &str) -> &mut BridgeEnv {
        self.vars.remove(var);
        self
    }

    pub fn get(&self, var: &str) -> Option<&str> {
        self.vars.get(var).map(String::as_str)
    }

    /// Every variable and its value, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars
            .iter()
            .map(|(var, value)| (var.as_str(), value.as_str()))
    }

    /// The variables as the settings loader takes them (`Sources { env: Some(..) }`).
    pub fn to_map(&self) -> HashMap<String, String> {
        self.vars.clone().into_iter().collect()
    }

    /// `program` (the bridge's binary) run by tokio with exactly these variables.
    pub fn command(&self, program: impl AsRef<OsStr>) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(program);
        command.env_clear().envs(&self.vars);
        command
    }

    /// `program` (the bridge's binary) run by the standard library with exactly these variables.
    pub fn std_command(&self, program: impl AsRef<OsStr>) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command.env_clear().envs(&self.vars);
        command
    }
}

impl fmt::Debug for BridgeEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.vars.iter().map(|(var, value)| {
                let shown = if SECRET_VARS.contains(&var.as_str()) {
                    "[redacted]"
                } else {
                    value.as_str()
                };
                (var, shown)
            }))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_the_bridge_variables() {
        let env = BridgeEnv::new()
            .listen_on(0)
            .asana("http://127.0.0.1:1", "1/token")
            .docspace("http://127.0.0.1:2", "sk-key")
            .database("sqlite://bridge.db");
        let map = env.to_map();
        assert_eq!(map["BRIDGE__SERVER__HOST"], "127.0.0.1");
        assert_eq!(map["BRIDGE__SERVER__PORT"], "0");
        assert_eq!(map["BRIDGE__ASANA__BASE_URL"], "http://127.0.0.1:1");
        assert_eq!(map["BRIDGE__ASANA__TOKEN"], "1/token");
        assert_eq!(map["BRIDGE__DOCSPACE__BASE_URL"], "http://127.0.0.1:2");
        assert_eq!(map["BRIDGE__DOCSPACE__API_KEY"], "sk-key");
        assert_eq!(map["BRIDGE__DATABASE__URL"], "sqlite://bridge.db");
        assert_eq!(map.len(), 7);
    }

    #[test]
    fn set_replaces_and_remove_unsets() {
        let mut env = BridgeEnv::new().with("BRIDGE__WORKER__LEASE_MS", "1");
        env.set("BRIDGE__WORKER__LEASE_MS", "2");
        assert_eq!(env.get("BRIDGE__WORKER__LEASE_MS"), Some("2"));
        env.remove("BRIDGE__WORKER__LEASE_MS");
        assert_eq!(env.get("BRIDGE__WORKER__LEASE_MS"), None);
    }

    #[test]
    fn debug_hides_the_token_and_the_api_key() {
        let env = BridgeEnv::new()
            .asana("http://asana", "1/secret-token")
            .docspace("http://docspace", "sk-secret-key");
        let shown = format!("{env:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("http://asana"), "{shown}");
    }

    #[test]
    fn a_command_gets_exactly_these_variables() {
        let env = BridgeEnv::new().with("BRIDGE__SERVER__PORT", "8081");
        let command = env.std_command("env");
        let vars: Vec<_> = command.get_envs().collect();
        assert_eq!(
            vars,
            [(OsStr::new("BRIDGE__SERVER__PORT"), Some(OsStr::new("8081")))]
        );
        let output = env.std_command("/usr/bin/env").output().expect("run env");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "BRIDGE__SERVER__PORT=8081\n"
        );
    }
}
