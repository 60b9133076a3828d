//! Personal data at rest: a key per person, wrapped under one master key.
//!
//! A person's record (`people.data`) and the HR payloads of their events (`events.body`) are
//! sealed with XChaCha20-Poly1305 under a random key of that person's; the key is stored in
//! `person_keys`, itself sealed under the master key, which lives outside the database (a file
//! or an environment variable, never in a backup). Forgetting a person deletes their key, and
//! whatever was sealed under it (in the database or in any copy of it) can no longer be read.
//!
//! Every sealed value is bound to where it belongs (the column and the row's id, as associated
//! data), so a value moved to another row or column fails to open instead of reading as the
//! other's. Work emails, which reconciliation looks people up by, are indexed by a keyed hash
//! (HMAC-SHA-256 under a key derived from the master key), never in clear.
//!
//! Without a master key the vault is *plain*: values are stored as they are (as databases made
//! before encryption hold them), and reads accept either form, so a database can be given a key
//! later and be sealed in place ([`crate::seal_existing`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::sync::Arc;

/// What a sealed value starts with (then base64 of the 24-byte nonce and the ciphertext). JSON
/// never starts with it, so a stored value tells by itself whether it is sealed.
pub const SEALED: &str = "enc1:";

/// A master key is 32 random bytes, given as base64.
const KEY_LEN: usize = 32;

/// Why a value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The master key given is not 32 bytes of base64.
    #[error(
        "the master key must be 32 bytes in base64 (as `tenure keys generate --master` writes it)"
    )]
    BadMasterKey,
    /// A sealed value that does not open: altered, moved to another row, or sealed under
    /// another key.
    #[error(
        "{0}: the sealed value does not open under its key (altered, moved, or another master key)"
    )]
    Unreadable(String),
    /// A sealed value whose person has no key: a database restored without its keys.
    #[error(
        "{0} is sealed and its person's key is missing: restore it with the keys of the database it came from (`tenure restore --keys`)"
    )]
    KeyMissing(String),
    /// A master key that does not open the database's person keys.
    #[error(
        "the master key given does not open this database's person keys: give the one its personal data was sealed with"
    )]
    WrongMasterKey,
    /// Sealed data while the vault has no master key.
    #[error("{0} is encrypted, and no master key is configured: give the one it was sealed with")]
    NoMasterKey(String),
}

/// The master key (or none) and what is derived from it; cheap to clone.
#[derive(Clone, Default)]
pub struct Vault(Option<Arc<Keys>>);

struct Keys {
    master: XChaCha20Poly1305,
    /// The key of the keyed hash that indexes emails.
    index: [u8; 32],
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Vault(sealing)"
        } else {
            "Vault(plain)"
        })
    }
}

/// A person's data key, unwrapped.
#[derive(Clone)]
pub struct PersonKey(XChaCha20Poly1305);

impl std::fmt::Debug for PersonKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonKey(..)")
    }
}

/// A new random master key, in base64: what `tenure keys generate --master` writes.
pub fn generate_master_key() -> String {
    let mut key = [0u8; KEY_LEN];
    rand::rng().fill_bytes(&mut key);
    B64.encode(key)
}

impl Vault {
    /// No master key: values are stored as they are.
    pub fn plain() -> Vault {
        Vault(None)
    }

    /// A vault under this master key (base64 of 32 bytes; surrounding whitespace ignored).
    pub fn from_base64(key: &str) -> Result<Vault, VaultError> {
        let bytes = B64
            .decode(key.trim().trim_end_matches('='))
            .map_err(|_| VaultError::BadMasterKey)?;
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| VaultError::BadMasterKey)?;
        let master = XChaCha20Poly1305::new_from_slice(&bytes).expect("32 bytes");
        let mut mac = Hmac::<Sha256>::new_from_slice(&bytes).expect("any length");
        mac.update(b"tenure email index v1");
        let index = mac.finalize().into_bytes().into();
        Ok(Vault(Some(Arc::new(Keys { master, index }))))
    }

    /// Whether values are sealed.
    pub fn seals(&self) -> bool {
        self.0.is_some()
    }

    /// A new key for `person` and its wrapped form for `person_keys`; `None` on a plain vault.
    pub fn new_person_key(&self, person: &str) -> Option<(PersonKey, String)> {
        let keys = self.0.as_ref()?;
        let mut raw = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut raw);
        let wrapped = seal_with(&keys.master, &aad("person_keys", person), &raw);
        let key = PersonKey(XChaCha20Poly1305::new_from_slice(&raw).expect("32 bytes"));
        raw.fill(0);
        Some((key, wrapped))
    }

    /// Unwraps the stored key of `person`.
    pub fn person_key(&self, person: &str, wrapped: &str) -> Result<PersonKey, VaultError> {
        let what = || format!("the key of person {person}");
        let keys = self
            .0
            .as_ref()
            .ok_or_else(|| VaultError::NoMasterKey(what()))?;
        let mut raw = open_with(&keys.master, &aad("person_keys", person), wrapped)
            .ok_or_else(|| VaultError::Unreadable(what()))?;
        let key = XChaCha20Poly1305::new_from_slice(&raw)
            .map(PersonKey)
            .map_err(|_| VaultError::Unreadable(what()));
        raw.fill(0);
        key
    }

    /// The blind index of a person's name and work email on a sealing vault: a keyed hash of
    /// every beginning (up to [`SEARCH_PREFIX`] characters) of every word of either, so that a
    /// search by the start of a word finds them without a name stored in clear. Empty on a
    /// plain vault, whose search reads the names themselves.
    pub fn search_tokens(&self, name: &str, email: &str) -> Vec<String> {
        let Some(keys) = &self.0 else {
            return Vec::new();
        };
        let mut out = std::collections::BTreeSet::new();
        for word in search_words(name).chain(search_words(email)) {
            let mut prefix = String::new();
            for ch in word.chars().take(SEARCH_PREFIX) {
                prefix.push(ch);
                out.insert(search_token(keys, &prefix));
            }
        }
        out.into_iter().collect()
    }

    /// The tokens a search for `text` looks up on a sealing vault: one per word of it (cut to
    /// [`SEARCH_PREFIX`] characters). Empty on a plain vault, or when `text` has no word.
    pub fn search_query(&self, text: &str) -> Vec<String> {
        let Some(keys) = &self.0 else {
            return Vec::new();
        };
        let mut out: Vec<String> = search_words(text)
            .map(|w| search_token(keys, &w.chars().take(SEARCH_PREFIX).collect::<String>()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// How `email` is indexed: a keyed hash of it lowercased, or (plain) the lowercased email.
    pub fn email_index(&self, email: &str) -> String {
        let email = email.trim().to_lowercase();
        match &self.0 {
            None => email,
            Some(keys) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(&keys.index).expect("any length");
                mac.update(email.as_bytes());
                format!("h1:{}", hex::encode(mac.finalize().into_bytes()))
            }
        }
    }
}

/// The longest word beginning the search index holds; a longer word searched for is found by
/// its first this many characters, then checked on the opened record.
pub const SEARCH_PREFIX: usize = 20;

/// The words of `text` for search: lowercased runs of letters and digits.
pub fn search_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Whether every word of `query` begins a word of `name` or `email`: what a search on a
/// sealing vault matches (its index finds the candidates; this decides). A query with no word
/// (`_`, `%`) matches no one.
pub fn search_matches(query: &str, name: &str, email: &str) -> bool {
    let have: Vec<String> = search_words(name).chain(search_words(email)).collect();
    let mut words = search_words(query).peekable();
    words.peek().is_some() && words.all(|q| have.iter().any(|w| w.starts_with(&q)))
}

/// One token of the search index: 64 bits of a keyed hash of a word's beginning.
fn search_token(keys: &Keys, prefix: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&keys.index).expect("any length");
    mac.update(b"search1\0");
    mac.update(prefix.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..8])
}

/// Seals `plain` for `column` of the row `id` under `key`; stored as it is when there is no key
/// (a plain vault).
pub fn seal(key: Option<&PersonKey>, column: &str, id: &str, plain: &str) -> String {
    match key {
        Some(k) => seal_with(&k.0, &aad(column, id), plain.as_bytes()),
        None => plain.to_string(),
    }
}

/// The plaintext of `stored` (from `column` of the row `id`): itself when not sealed, opened
/// under `key` when sealed. A sealed value without its key is an error, never a silence:
/// forgetting overwrites what it erases, so a key is missing only when a database was
/// restored without its keys.
pub fn open(
    key: Option<&PersonKey>,
    column: &str,
    id: &str,
    stored: String,
) -> Result<String, VaultError> {
    if !stored.starts_with(SEALED) {
        return Ok(stored);
    }
    let what = || format!("{column} of {id}");
    let Some(k) = key else {
        return Err(VaultError::KeyMissing(what()));
    };
    let plain =
        open_with(&k.0, &aad(column, id), &stored).ok_or_else(|| VaultError::Unreadable(what()))?;
    String::from_utf8(plain).map_err(|_| VaultError::Unreadable(what()))
}

fn aad(column: &str, id: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(column.len() + id.len() + 1);
    a.extend_from_slice(column.as_bytes());
    a.push(0);
    a.extend_from_slice(id.as_bytes());
    a
}

fn seal_with(cipher: &XChaCha20Poly1305, aad: &[u8], msg: &[u8]) -> String {
    let mut nonce = [0u8; 24];
    rand::rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg, aad })
        .expect("XChaCha20-Poly1305 seals any message under 256 GiB");
    let mut out = Vec::with_capacity(24 + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    format!("{SEALED}{}", B64.encode(out))
}

fn open_with(cipher: &XChaCha20Poly1305, aad: &[u8], stored: &str) -> Option<Vec<u8>> {
    let bytes = B64.decode(stored.strip_prefix(SEALED)?).ok()?;
    if bytes.len() < 24 + 16 {
        return None;
    }
    let (nonce, ct) = bytes.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().ok()?;
    cipher
        .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> Vault {
        Vault::from_base64(&generate_master_key()).unwrap()
    }

    #[test]
    fn the_search_index_holds_keyed_word_beginnings_and_a_query_looks_up_its_words() {
        let v = vault();
        let tokens = v.search_tokens("Ada Lovelace", "ada.lovelace@example.com");
        // Every beginning of every word, once, none of them readable: 16 hex digits each (which
        // may spell "ada" by chance, but no word with a letter past `f`).
        assert!(
            tokens
                .iter()
                .all(|t| t.len() == 16 && t.chars().all(|c| c.is_ascii_hexdigit()))
        );
        for q in ["ada", "Love", "LOVELACE", "exam", "a"] {
            let want = v.search_query(q);
            assert_eq!(want.len(), 1, "{q}");
            assert!(tokens.contains(&want[0]), "{q}");
        }
        for q in ["velace", "adam", "lovelaces"] {
            assert!(!tokens.contains(&v.search_query(q)[0]), "{q}");
        }
        assert_eq!(v.search_query("ada lovelace").len(), 2);
        assert!(v.search_query(" .,@ ").is_empty());
        // Another master key, other tokens: the index says nothing across databases.
        assert!(!tokens.contains(&vault().search_query("ada")[0]));
        // A plain vault keeps no index: its search reads the names.
        assert!(Vault::plain().search_tokens("Ada", "a@b").is_empty());
        assert!(Vault::plain().search_query("ada").is_empty());
        // Long words: indexed by their first SEARCH_PREFIX characters, decided on the record.
        let long = "a".repeat(SEARCH_PREFIX + 5);
        let t = v.search_tokens(&long, "");
        assert_eq!(t.len(), SEARCH_PREFIX);
        assert!(t.contains(&v.search_query(&long)[0]));
    }

    #[test]
    fn a_search_matches_when_every_word_begins_a_word_of_the_name_or_email() {
        assert!(search_matches("ada", "Ada Lovelace", "ada@example.com"));
        assert!(search_matches("love ADA", "Ada Lovelace", "x@example.com"));
        assert!(search_matches(
            "lovelace@exa",
            "Ada Byron",
            "ada.lovelace@example.com"
        ));
        assert!(search_matches("Żó", "Żółw Nowak", ""));
        assert!(!search_matches("velace", "Ada Lovelace", "ada@example.com"));
        assert!(!search_matches(
            "ada grace",
            "Ada Lovelace",
            "ada@example.com"
        ));
        assert!(!search_matches("_", "Ada Lovelace", "ada@example.com"));
        assert!(!search_matches(" %", "Ada Lovelace", "ada@example.com"));
    }

    #[test]
    fn a_sealed_value_opens_only_where_it_was_sealed_and_under_its_key() {
        let v = vault();
        let (key, wrapped) = v.new_person_key("p1").unwrap();
        let sealed = seal(Some(&key), "people.data", "p1", r#"{"name":"Ada"}"#);
        assert!(sealed.starts_with(SEALED) && !sealed.contains("Ada"));
        let again = v.person_key("p1", &wrapped).unwrap();
        assert_eq!(
            open(Some(&again), "people.data", "p1", sealed.clone()).unwrap(),
            r#"{"name":"Ada"}"#
        );
        // Moved to another row or column, it does not open.
        for (column, id) in [("people.data", "p2"), ("events.body", "p1")] {
            let err = open(Some(&again), column, id, sealed.clone()).unwrap_err();
            assert!(matches!(err, VaultError::Unreadable(_)), "{err}");
        }
        // Nor under another person's key, nor once a byte changed.
        let (other, _) = v.new_person_key("p1").unwrap();
        assert!(open(Some(&other), "people.data", "p1", sealed.clone()).is_err());
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        assert!(open(Some(&again), "people.data", "p1", altered).is_err());
    }

    #[test]
    fn a_wrapped_key_is_bound_to_its_person_and_its_master_key() {
        let v = vault();
        let (_, wrapped) = v.new_person_key("p1").unwrap();
        assert!(v.person_key("p2", &wrapped).is_err());
        assert!(vault().person_key("p1", &wrapped).is_err());
        let err = Vault::plain().person_key("p1", &wrapped).unwrap_err();
        assert!(matches!(err, VaultError::NoMasterKey(_)), "{err}");
    }

    #[test]
    fn without_its_key_a_sealed_value_is_an_error_and_plain_values_pass_through() {
        let v = vault();
        let (key, _) = v.new_person_key("p1").unwrap();
        let sealed = seal(Some(&key), "events.body", "e1", "{}");
        let err = open(None, "events.body", "e1", sealed).unwrap_err();
        assert!(matches!(err, VaultError::KeyMissing(_)), "{err}");
        assert!(err.to_string().contains("events.body of e1"), "{err}");
        assert_eq!(open(None, "events.body", "e1", "{}".into()).unwrap(), "{}");
        assert_eq!(seal(None, "events.body", "e1", "{}"), "{}");
        assert!(Vault::plain().new_person_key("p1").is_none());
    }

    #[test]
    fn emails_are_indexed_by_a_keyed_hash_ignoring_case() {
        let v = vault();
        let a = v.email_index("Ada@Example.com ");
        assert_eq!(a, v.email_index("ada@example.com"));
        // "example" has letters no hex digest holds; "ada" turned up in one by chance now and
        // then (three hex digits in a row), failing this test about once in sixty runs.
        assert!(a.starts_with("h1:") && !a.contains("example"));
        assert_ne!(a, vault().email_index("ada@example.com"));
        assert_eq!(
            Vault::plain().email_index("Ada@Example.com"),
            "ada@example.com"
        );
    }

    #[test]
    fn a_master_key_must_be_32_bytes_of_base64() {
        for bad in ["", "not base64!", "AAAA", &B64.encode([0u8; 31])] {
            assert!(matches!(
                Vault::from_base64(bad),
                Err(VaultError::BadMasterKey)
            ));
        }
        assert!(Vault::from_base64(&format!("{}\n", generate_master_key())).is_ok());
        assert!(
            Vault::from_base64(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
                .is_ok()
        );
    }
}
