//! Pieces every connector's settings share: secrets read from the environment, and the
//! conversion of a system's `settings` table into a typed, validated struct.

use serde::de::DeserializeOwned;
use std::fmt;

/// A secret value (password, HMAC key, token). Read from an environment variable named in
/// the configuration, never from the file; its `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (tests; production reads [`Secret::from_env`]).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Reads the secret from the environment variable `var`, naming the setting on error.
    pub fn from_env(setting: &str, var: &str) -> Result<Secret, String> {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Secret(v)),
            Ok(_) => Err(format!("{setting}: environment variable `{var}` is empty")),
            Err(_) => Err(format!(
                "{setting}: environment variable `{var}` is not set"
            )),
        }
    }

    /// Reads the secret named by an optional `*_env` setting.
    pub fn from_optional_env(setting: &str, var: Option<&str>) -> Result<Option<Secret>, String> {
        var.map(|v| Secret::from_env(setting, v)).transpose()
    }

    /// The secret itself; only ever handed to the library that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Deserializes a system's settings map into `T` (which should `deny_unknown_fields`),
/// with serde's message naming the bad key.
pub fn parse<T: DeserializeOwned>(
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::Object(map.clone())).map_err(|e| e.to_string())
}

/// Refuses a setting that holds a secret inline: secrets come from the environment.
pub fn refuse_inline_secrets(
    map: &serde_json::Map<String, serde_json::Value>,
    keys: &[&str],
) -> Result<(), String> {
    for k in keys {
        if map.contains_key(*k) {
            return Err(format!(
                "`{k}` may not be written in the configuration; name an environment variable in `{k}_env` instead"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn missing_secret_variable_is_named() {
        let e = Secret::from_env("bind_password_env", "TENURE_TEST_SURELY_UNSET_VAR").unwrap_err();
        assert!(e.contains("TENURE_TEST_SURELY_UNSET_VAR"), "{e}");
        assert!(e.contains("not set"), "{e}");
    }

    #[test]
    fn inline_secret_refused() {
        let mut m = serde_json::Map::new();
        m.insert("password".into(), "x".into());
        let e = refuse_inline_secrets(&m, &["password"]).unwrap_err();
        assert!(e.contains("password_env"), "{e}");
    }
}
