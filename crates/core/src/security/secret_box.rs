//! Credentials at rest: AES-256-GCM under `SECRETS_KEY` (or a key generated
//! once into `DATA_DIR`). Each sealed value is bound to what it belongs to
//! (its tenant and object, as associated data), so a value copied into
//! another row does not open there.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom as _, SystemRandom};

/// The file a generated key is kept in, under `DATA_DIR`.
pub const KEY_FILE: &str = "secrets.key";
/// Marks the format of a sealed value (a later key or cipher gets `v2:`).
const VERSION: &str = "v1:";

pub struct SecretBox {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

/// The system's randomness or the cipher failed (neither happens in practice).
#[derive(Debug, thiserror::Error)]
#[error("a credential cannot be sealed")]
pub struct SealError;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the stored value is not in a known format")]
    Format,
    /// Another key (a changed `SECRETS_KEY`), or a value moved between rows.
    #[error("the stored value does not open with this server's SECRETS_KEY")]
    Key,
}

impl SecretBox {
    pub fn new(key: [u8; 32]) -> std::io::Result<SecretBox> {
        let unbound = UnboundKey::new(&AES_256_GCM, &key)
            .map_err(|_| std::io::Error::other("SECRETS_KEY is not an AES-256 key"))?;
        Ok(SecretBox {
            key: LessSafeKey::new(unbound),
            random: SystemRandom::new(),
        })
    }

    /// `configured` when given, else the key in `DATA_DIR/secrets.key`,
    /// made (mode 0600) on first start.
    pub fn load(configured: Option<[u8; 32]>, data_dir: &Path) -> std::io::Result<SecretBox> {
        if let Some(key) = configured {
            return SecretBox::new(key);
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => crate::config::git::parse_key(&text)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))
                .and_then(SecretBox::new),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut key)
                    .map_err(|_| std::io::Error::other("no randomness for SECRETS_KEY"))?;
                let encoded = base64::engine::general_purpose::STANDARD.encode(key);
                // create_new: two servers starting on one DATA_DIR keep the first key.
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                {
                    Ok(mut file) => {
                        file.write_all(format!("{encoded}\n").as_bytes())?;
                        file.sync_all()?;
                        tracing::warn!(path = %path.display(), "generated SECRETS_KEY: back this file up with the database, stored credentials cannot be read without it");
                        SecretBox::new(key)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        SecretBox::load(None, data_dir)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `plaintext` sealed for `context` (what it belongs to), as text.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| SealError)?;
        let mut data = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .map_err(|_| SealError)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!(
            "{VERSION}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// The plaintext of a value `seal` made for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, OpenError> {
        let encoded = sealed.strip_prefix(VERSION).ok_or(OpenError::Format)?;
        let mut data = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| OpenError::Format)?;
        if data.len() < NONCE_LEN {
            return Err(OpenError::Format);
        }
        let mut ciphertext = data.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&data).map_err(|_| OpenError::Format)?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut ciphertext)
            .map_err(|_| OpenError::Key)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let one = SecretBox::new([7; 32]).unwrap();
        let sealed = one.seal(b"token-123", "alice/repo-1").unwrap();
        assert!(!sealed.contains("token-123"));
        assert_eq!(one.open(&sealed, "alice/repo-1").unwrap(), b"token-123");
        assert!(matches!(
            one.open(&sealed, "bob/repo-1"),
            Err(OpenError::Key)
        ));
        let other = SecretBox::new([8; 32]).unwrap();
        assert!(matches!(
            other.open(&sealed, "alice/repo-1"),
            Err(OpenError::Key)
        ));
        assert!(matches!(one.open("plain", "x"), Err(OpenError::Format)));
        // A fresh nonce each time.
        assert_ne!(sealed, one.seal(b"token-123", "alice/repo-1").unwrap());
    }

    #[test]
    fn a_generated_key_is_kept_private_and_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let first = SecretBox::load(None, dir.path()).unwrap();
        let sealed = first.seal(b"x", "c").unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = SecretBox::load(None, dir.path()).unwrap();
        assert_eq!(again.open(&sealed, "c").unwrap(), b"x");
    }
}
