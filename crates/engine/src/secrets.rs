//! Encryption at rest of secret step outputs (generated passwords, Temporary Access Passes):
//! ChaCha20-Poly1305 with a key kept outside the database. A sealed value is the text
//! `enc:v1:<hex nonce><hex ciphertext>`; the journal never holds the value at all (`***`).
//!
//! The key is `TENURE_SECRET_KEY` (64 hex characters) when set. PostgreSQL requires it (every
//! node of a deployment must share one key, so none is made up); SQLite (one node) otherwise
//! uses a key file next to the database (`tenure.db.key`), created on first use with mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde_json::Value;

/// The prefix of a sealed value.
pub const SEALED: &str = "enc:v1:";

/// Why secrets cannot be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key is missing or malformed.
    #[error("secret key: {0}")]
    Key(String),
    /// The value was sealed with another key, or altered.
    #[error("a stored secret cannot be decrypted (another key, or altered)")]
    Open,
}

/// Seals and opens secret values.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
    /// Keys the journal's hash chain (derived from the same key, never used to encrypt).
    chain: crate::journal::ChainKey,
    /// The root of [`SecretBox::derive_key`] (derived from the same key, never used itself).
    derived: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(***)")
    }
}

/// HMAC-SHA256 of `data` under `key`.
fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Whether `path` is an SQLite database file (its header), not a new or foreign file.
fn holds_a_database(path: &Path) -> bool {
    let mut header = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
        .is_ok_and(|()| &header == b"SQLite format 3\0")
}

impl SecretBox {
    /// A box with this 32-byte key.
    pub fn new(key: [u8; 32]) -> Self {
        SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            chain: crate::journal::ChainKey::derive(&key),
            derived: hmac_sha256(&key, b"tenure derived keys v1"),
        }
    }

    /// A 32-byte key for `purpose` (e.g. `approval-links`), derived from the secret key: every
    /// process on one database derives the same key, and no purpose's key reveals another's or
    /// the secret key.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        hmac_sha256(&self.derived, purpose.as_bytes())
    }

    /// The key of the journal's hash chain (HMAC-SHA256), derived from the secret key, so an
    /// edit followed by re-hashing the rest of a journal is detected by anyone without it.
    pub fn chain_key(&self) -> &crate::journal::ChainKey {
        &self.chain
    }

    /// The key from `TENURE_SECRET_KEY`, or (SQLite only) from the key file beside the
    /// database, created if missing.
    pub fn for_database(db_url: &str) -> Result<Self, SecretError> {
        if let Ok(hex_key) = std::env::var("TENURE_SECRET_KEY") {
            return Self::from_hex(hex_key.trim());
        }
        match db_url.strip_prefix("sqlite:") {
            Some(p) => {
                let p = p.trim_start_matches("//");
                let p = p.split('?').next().unwrap_or(p);
                let key = PathBuf::from(format!("{p}.key"));
                if !key.exists() && holds_a_database(Path::new(p)) {
                    // A new key would make every sealed secret unreadable and every journal
                    // look tampered with: say what is missing instead.
                    return Err(SecretError::Key(format!(
                        "the key file {} is missing, but the database {p} was written with it \
                         (sealed secrets and the journal's hash chain need it); put the key file \
                         back, or set TENURE_SECRET_KEY to the key",
                        key.display()
                    )));
                }
                Self::from_file(&key)
            }
            None => Err(SecretError::Key(
                "TENURE_SECRET_KEY is required with PostgreSQL: every node must use the same \
                 key (64 hex characters, e.g. from `openssl rand -hex 32`)"
                    .into(),
            )),
        }
    }

    fn from_hex(text: &str) -> Result<Self, SecretError> {
        let bytes = hex::decode(text)
            .map_err(|_| SecretError::Key("TENURE_SECRET_KEY is not hex".into()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SecretError::Key("must be 32 bytes (64 hex characters)".into()))?;
        Ok(Self::new(key))
    }

    /// Reads the key file, creating it with a random key if it does not exist.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let io = |e: std::io::Error| SecretError::Key(format!("{}: {e}", path.display()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(mut file) => {
                let key: [u8; 32] = rand::random();
                file.write_all(hex::encode(key).as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(Self::new(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Another process may be writing it right now.
                for _ in 0..50 {
                    let text = std::fs::read_to_string(path).map_err(io)?;
                    if text.trim().len() == 64 {
                        return Self::from_hex(text.trim());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(SecretError::Key(format!("{}: not a key", path.display())))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Seals a value.
    pub fn seal(&self, plaintext: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .unwrap_or_default();
        format!("{SEALED}{}{}", hex::encode(nonce), hex::encode(sealed))
    }

    /// Opens a sealed value (a value without the prefix is returned as it is).
    pub fn open(&self, value: &str) -> Result<String, SecretError> {
        let Some(body) = value.strip_prefix(SEALED) else {
            return Ok(value.to_string());
        };
        let bytes = hex::decode(body).map_err(|_| SecretError::Open)?;
        if bytes.len() < 12 {
            return Err(SecretError::Open);
        }
        let (nonce, sealed) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| SecretError::Open)?;
        String::from_utf8(plain).map_err(|_| SecretError::Open)
    }
}

/// The shortest secret [`scrub`] looks for: shorter ones would blank out ordinary text.
const SCRUB_MIN: usize = 4;

impl SecretBox {
    /// Seals a run's context before it is stored: every secret input (`secret`, or a list of
    /// secrets), and every string of a `vars` value or of the `trigger` (a webhook payload a
    /// secret input was mapped from) that contains one (a var rendered from a secret is as
    /// secret as the input). Returns the secrets in clear, for [`scrub`].
    pub fn seal_context(&self, plan: &tenure_runbook::Plan, ctx: &mut Value) -> Vec<String> {
        let mut clear = Vec::new();
        for (name, _) in plan.inputs.iter().filter(|(_, s)| s.ty.is_secret()) {
            if let Some(v) = ctx["inputs"].get_mut(name) {
                self.seal_strings(v, &mut |_| true, &mut clear);
            }
        }
        let known = clear.clone();
        let mut contains = |s: &str| {
            known
                .iter()
                .any(|k| k.len() >= SCRUB_MIN && s.contains(k.as_str()))
        };
        // Vars made from a secret, and the trigger's payload a secret input was mapped from
        // (a webhook delivery): sealed too, so the secret is nowhere in clear in the store.
        for part in ["vars", "trigger"] {
            if let Some(value) = ctx.get_mut(part) {
                self.seal_strings(value, &mut contains, &mut Vec::new());
            }
        }
        clear
    }

    /// Seals every string in `value` that contains one of `secrets` (of at least four
    /// characters): a secret of a calling run passed to a called run's input of another type
    /// stays sealed there.
    pub fn seal_containing(&self, value: &mut Value, secrets: &[String]) {
        let mut contains = |s: &str| {
            secrets
                .iter()
                .any(|k| k.len() >= SCRUB_MIN && s.contains(k.as_str()))
        };
        self.seal_strings(value, &mut contains, &mut Vec::new());
    }

    fn seal_strings(
        &self,
        value: &mut Value,
        which: &mut dyn FnMut(&str) -> bool,
        clear: &mut Vec<String>,
    ) {
        match value {
            Value::String(s) if !s.starts_with(SEALED) && which(s) => {
                clear.push(s.clone());
                *s = self.seal(s);
            }
            Value::Array(items) => items
                .iter_mut()
                .for_each(|v| self.seal_strings(v, which, clear)),
            Value::Object(map) => map
                .values_mut()
                .for_each(|v| self.seal_strings(v, which, clear)),
            _ => {}
        }
    }

    /// Opens every sealed string in `value` (a run's context, for rendering a step's
    /// templates) and returns the opened secrets in clear, for [`scrub`].
    pub fn open_all(&self, value: &mut Value) -> Result<Vec<String>, SecretError> {
        let mut clear = Vec::new();
        self.open_strings(value, &mut clear)?;
        Ok(clear)
    }

    fn open_strings(&self, value: &mut Value, clear: &mut Vec<String>) -> Result<(), SecretError> {
        match value {
            Value::String(s) if s.starts_with(SEALED) => {
                *s = self.open(s)?;
                clear.push(s.clone());
            }
            Value::Array(items) => {
                for v in items {
                    self.open_strings(v, clear)?;
                }
            }
            Value::Object(map) => {
                for v in map.values_mut() {
                    self.open_strings(v, clear)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `text` with every occurrence of a known secret (of at least four characters) replaced by
/// `***`: what a step reports (errors, reasons, request paths, non-secret outputs) may echo a
/// secret it was given (a vendor answer that repeats a password), and must not store it.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| s.len() >= SCRUB_MIN).collect();
    // Longest first, so a secret containing another is replaced whole.
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in sorted {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// [`scrub`] over every string (and object key) of a JSON value.
pub fn scrub_value(value: &mut Value, secrets: &[String]) {
    if secrets.iter().all(|s| s.len() < SCRUB_MIN) {
        return;
    }
    match value {
        Value::String(s) if !s.starts_with(SEALED) => *s = scrub(s, secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_value(v, secrets)),
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (k, mut v) in old {
                scrub_value(&mut v, secrets);
                map.insert(scrub(&k, secrets), v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let a = SecretBox::new([7; 32]);
        let sealed = a.seal("Correct-Horse-9");
        assert!(sealed.starts_with(SEALED));
        assert!(!sealed.contains("Horse"));
        assert_ne!(sealed, a.seal("Correct-Horse-9"), "a fresh nonce each time");
        assert_eq!(a.open(&sealed).unwrap(), "Correct-Horse-9");
        assert!(SecretBox::new([8; 32]).open(&sealed).is_err());
        assert_eq!(a.open("plain").unwrap(), "plain");
    }

    #[test]
    fn scrub_replaces_known_secrets_only() {
        let secrets = vec!["hunter22".to_string(), "abc".to_string()];
        assert_eq!(scrub("echo: hunter22!", &secrets), "echo: ***!");
        assert_eq!(scrub("abc stays", &secrets), "abc stays");
        let mut v = serde_json::json!({"body": {"pw": "hunter22", "hunter22": 1}});
        scrub_value(&mut v, &secrets);
        assert_eq!(v, serde_json::json!({"body": {"pw": "***", "***": 1}}));
    }

    #[test]
    fn postgres_needs_the_shared_key() {
        if std::env::var_os("TENURE_SECRET_KEY").is_some() {
            return;
        }
        let e = SecretBox::for_database("postgres://u@h/db").unwrap_err();
        assert!(
            e.to_string().contains("TENURE_SECRET_KEY is required"),
            "{e}"
        );
        assert!(!std::path::Path::new("tenure.key").exists());
    }

    #[test]
    fn a_database_without_its_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        std::fs::write(&db, b"SQLite format 3\0 and pages").unwrap();
        let url = format!("sqlite:{}", db.display());
        let e = SecretBox::for_database(&url).unwrap_err().to_string();
        assert!(e.contains("is missing, but the database"), "{e}");
        assert!(!e.contains("  "), "one line, single spaces: {e}");
        // A foreign file is left for the database to refuse with its own message.
        std::fs::write(&db, [0u8; 64]).unwrap();
        assert!(SecretBox::for_database(&url).is_ok());
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.key");
        let sealed = SecretBox::from_file(&path).unwrap().seal("x");
        assert_eq!(
            SecretBox::from_file(&path).unwrap().open(&sealed).unwrap(),
            "x"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the owner can read the key");
        }
    }
}
