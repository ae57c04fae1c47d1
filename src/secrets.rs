//! Secrets at rest and API tokens.
//!
//! - [`Sealer`]: AES-256-GCM for probe credentials (and later channel secrets). The key comes
//!   from `MCPWATCH_SECRET_KEY`, or is generated once into `<data dir>/secret-key` with mode
//!   0600 for the embedded default. Sealed text is `v1:` + base64(nonce ‖ ciphertext).
//! - API tokens: `mcpw_` + 32 random bytes (base64url); only their SHA-256 is stored, and
//!   lookups compare in constant time.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// A secret could not be sealed, opened or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Sealed data is malformed or was sealed with another key.
    #[error("sealed data cannot be opened (wrong MCPWATCH_SECRET_KEY, or corrupt)")]
    Open,
    /// The key file could not be read or written.
    #[error("secret key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    /// The operating system gave no randomness.
    #[error("no randomness available: {0}")]
    Random(String),
}

/// `N` bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(buf)
}

/// Seals and opens small secrets with AES-256-GCM.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
    /// The key of [`Sealer::mac`]: derived from the sealing key, never the key itself.
    mac_key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Sealer {
            cipher: Aes256Gcm::new(key.into()),
            mac_key: hmac_sha256(key, b"mcpwatch mac key v1"),
        }
    }

    /// A keyed digest (HMAC-SHA256, base64url) of `value` for `purpose`: finds a stored
    /// personal value without opening every row, and signs links (a subscriber's confirm and
    /// unsubscribe links) without storing a token. Different purposes never share digests.
    pub fn mac(&self, purpose: &str, value: &str) -> String {
        let mut input = purpose.as_bytes().to_vec();
        input.push(0);
        input.extend_from_slice(value.as_bytes());
        URL_SAFE_NO_PAD.encode(hmac_sha256(&self.mac_key, &input))
    }

    /// Whether `digest` is [`Sealer::mac`] of `value` for `purpose` (constant time).
    pub fn mac_matches(&self, purpose: &str, value: &str, digest: &str) -> bool {
        hashes_equal(&self.mac(purpose, value), digest)
    }

    /// The configured key, or the one in `<data_dir>/secret-key`, created (0600) if missing.
    pub fn load_or_create(
        configured: Option<[u8; 32]>,
        data_dir: &Path,
    ) -> Result<Self, SecretError> {
        if let Some(key) = configured {
            return Ok(Sealer::new(&key));
        }
        let path = data_dir.join("secret-key");
        let err = |reason: String| SecretError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
            let key = crate::config::parse_secret_key(&text).map_err(err)?;
            return Ok(Sealer::new(&key));
        }
        std::fs::create_dir_all(data_dir).map_err(|e| err(e.to_string()))?;
        let key = random_bytes::<32>()?;
        write_private(&path, &STANDARD.encode(key)).map_err(|e| err(e.to_string()))?;
        Ok(Sealer::new(&key))
    }

    pub fn seal(&self, plaintext: &[u8]) -> Result<String, SecretError> {
        let nonce_bytes = random_bytes::<12>()?;
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce_bytes), plaintext)
            .map_err(|_| SecretError::Open)?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("v1:{}", STANDARD.encode(out)))
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SecretError> {
        let raw = sealed.strip_prefix("v1:").ok_or(SecretError::Open)?;
        let bytes = STANDARD.decode(raw).map_err(|_| SecretError::Open)?;
        if bytes.len() < 12 + 16 {
            return Err(SecretError::Open);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| SecretError::Open)
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac =
        <hmac::Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Write a file readable by its owner only (0600 on Unix), failing if it already exists.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}

/// Hide the userinfo of any `scheme://user:pass@host` inside a message (driver and SMTP errors
/// may quote their connection URL).
pub fn redact_url_password(text: &str) -> String {
    match (text.find("://"), text.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &text[..s], &text[at..]),
        _ => text.to_string(),
    }
}

/// Prefix of every API token, so a leaked one is recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "mcpw_";

/// A new random API token.
pub fn new_token() -> Result<String, SecretError> {
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
    ))
}

/// The stored form of a token: hex SHA-256.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality of two hashes.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_depend_on_key_purpose_and_value() {
        let a = Sealer::new(&[1; 32]);
        let b = Sealer::new(&[2; 32]);
        let m = a.mac("confirm", "id-1");
        assert!(a.mac_matches("confirm", "id-1", &m));
        assert!(!a.mac_matches("unsubscribe", "id-1", &m));
        assert!(!a.mac_matches("confirm", "id-2", &m));
        assert!(!b.mac_matches("confirm", "id-1", &m));
        assert_eq!(m.len(), 43);
    }

    #[test]
    fn seal_open_round_trip_and_wrong_key_fails() {
        let a = Sealer::new(&[1; 32]);
        let sealed = a.seal(b"Bearer secret").unwrap();
        assert!(sealed.starts_with("v1:") && !sealed.contains("secret"));
        assert_eq!(a.open(&sealed).unwrap(), b"Bearer secret");
        assert_ne!(
            a.seal(b"x").unwrap(),
            a.seal(b"x").unwrap(),
            "fresh nonce each time"
        );
        assert!(Sealer::new(&[2; 32]).open(&sealed).is_err());
        assert!(a.open("v1:AAAA").is_err());
        assert!(a.open("plain").is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Sealer::load_or_create(None, dir.path()).unwrap();
        let sealed = first.seal(b"x").unwrap();
        let again = Sealer::load_or_create(None, dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret-key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn passwords_in_messages_are_hidden() {
        assert_eq!(
            redact_url_password("postgres://u:pw@h/db refused"),
            "postgres://***@h/db refused"
        );
        assert_eq!(
            redact_url_password("smtp://u:pw@host:25 refused"),
            "smtp://***@host:25 refused"
        );
        assert_eq!(redact_url_password("no url here"), "no url here");
    }

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let t = new_token().unwrap();
        assert!(t.starts_with("mcpw_") && t.len() > 40);
        assert_ne!(t, new_token().unwrap());
        assert_eq!(token_hash(&t).len(), 64);
        assert!(hashes_equal(&token_hash(&t), &token_hash(&t)));
        assert!(!hashes_equal(&token_hash(&t), &token_hash("other")));
    }
}
