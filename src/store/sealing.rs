//! Secrets at rest. Webhook secrets, previous secrets and the headers column (outbound
//! credential headers, inbound required header values) are sealed with AES-256-GCM before they
//! reach either backend, under a key the store does not hold: `<data-dir>/secrets.key` for
//! SQLite (made on first start, mode 0600), `--secrets-key` / `WEBHOOK_MCP_SECRETS_KEY` for
//! PostgreSQL (the same on every instance). Someone who copies the database alone learns no
//! secret.
//!
//! A sealed value is `sealed:v1:<key id>:<base64 of nonce ‖ ciphertext ‖ tag>`, bound to its
//! webhook's id (the AEAD's associated data), so a sealed value moved to another row does not
//! open. A keyring holds one or more keys: the first seals, any opens (by key id), which is how
//! `webhook-mcp secrets rotate-key` re-seals without a moment where a row cannot be read. A
//! value without the prefix is a row written before sealing existed: it is read as it is and
//! sealed by [`Keyring::needs_sealing`]'s caller when the store opens.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const PREFIX: &str = "sealed:v1:";
/// The file that holds a SQLite store's keys, beside the database.
pub const KEY_FILE: &str = "secrets.key";

/// One 256-bit key. Its `Debug` prints no key material.
#[derive(Clone)]
pub struct SecretsKey([u8; 32]);

impl fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretsKey({})", self.id())
    }
}

impl SecretsKey {
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source is available");
        SecretsKey(key)
    }

    /// A key as written in the key file or given to `--secrets-key`: 32 bytes in base64.
    pub fn parse(text: &str) -> Result<Self> {
        let bytes = B64.decode(text.trim()).map_err(|_| bad_key())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| bad_key())?;
        Ok(SecretsKey(key))
    }

    pub fn to_text(&self) -> String {
        B64.encode(self.0)
    }

    /// A short public name of the key (not derived in a way that helps guess it).
    pub fn id(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"webhook-mcp secrets key id\0")
            .chain_update(self.0)
            .finalize();
        hex::encode(&digest[..4])
    }
}

fn bad_key() -> Error {
    Error::invalid(
        "a secrets key is 32 random bytes in base64 (44 characters); make one with \
         `openssl rand -base64 32`",
    )
}

/// Where a keyring came from, for `doctor` and for error messages.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    /// A SQLite store's key file (re-read when a value names a key it does not hold, so a
    /// rotation by another process is picked up).
    File(PathBuf),
    /// `--secrets-key` / `WEBHOOK_MCP_SECRETS_KEY`.
    Given,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "the key file {}", p.display()),
            KeySource::Given => f.write_str("--secrets-key (WEBHOOK_MCP_SECRETS_KEY)"),
        }
    }
}

struct Key {
    id: String,
    cipher: Aes256Gcm,
}

impl Key {
    fn new(key: &SecretsKey) -> Self {
        Key {
            id: key.id(),
            cipher: Aes256Gcm::new_from_slice(&key.0).expect("a 32-byte key"),
        }
    }
}

pub struct Keyring {
    keys: RwLock<Vec<Key>>,
    source: KeySource,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.key_ids())
            .field("source", &self.source)
            .finish()
    }
}

impl Keyring {
    /// Keys given as text, comma- or newline-separated; the first seals.
    pub fn from_text(text: &str, source: KeySource) -> Result<Self> {
        let keys = parse_keys(text)?;
        Ok(Keyring {
            keys: RwLock::new(keys.iter().map(Key::new).collect()),
            source,
        })
    }

    /// The keyring of a SQLite store in `dir`: its key file, made (0600) with a new key when
    /// there is none.
    pub fn for_data_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(KEY_FILE);
        if !path.exists() && create_key_file(&path, &[SecretsKey::generate()])? {
            tracing::info!(path = %path.display(), "made a new secrets key");
        }
        let text = read_key_file(&path)?;
        Self::from_text(&text, KeySource::File(path))
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// The ids of the keys held, the sealing one first.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys().iter().map(|k| k.id.clone()).collect()
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, Vec<Key>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Seals `plain`, which belongs to the webhook `owner`.
    pub fn seal(&self, owner: &str, plain: &str) -> String {
        let keys = self.keys();
        let key = &keys[0];
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the OS random source is available");
        let sealed = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: owner.as_bytes(),
                },
            )
            .expect("AES-GCM seals any message of this size");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", key.id, B64.encode(out))
    }

    /// The plain text of a stored value (a value from before sealing passes as it is).
    pub fn open(&self, owner: &str, stored: &str) -> Result<String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let (id, data) = rest
            .split_once(':')
            .ok_or_else(|| Error::Store("a sealed secret is malformed".into()))?;
        if !self.keys().iter().any(|k| k.id == id) {
            self.reload();
        }
        let keys = self.keys();
        let key = keys.iter().find(|k| k.id == id).ok_or_else(|| {
            Error::Store(format!(
                "a secret is sealed under key {id}, which {} does not hold (keys held: {}); \
                 start with the key the store was written with",
                self.source,
                keys.iter()
                    .map(|k| k.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let data = B64
            .decode(data)
            .map_err(|e| Error::backend("a sealed secret is malformed", e))?;
        if data.len() < 12 {
            return Err(Error::Store("a sealed secret is malformed".into()));
        }
        let (nonce, sealed) = data.split_at(12);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::Store(format!(
                    "a secret of webhook {owner} does not open under key {id} (altered, or \
                     moved from another row)"
                ))
            })?;
        String::from_utf8(plain).map_err(|e| Error::backend("a sealed secret is not text", e))
    }

    /// Whether a stored value is not sealed under the sealing key (plain, or an older key).
    pub fn needs_sealing(&self, stored: &str) -> bool {
        let current = format!("{PREFIX}{}:", self.keys()[0].id);
        !stored.starts_with(&current)
    }

    /// Re-reads the key file (another process may have rotated the key).
    fn reload(&self) {
        let KeySource::File(path) = &self.source else {
            return;
        };
        match read_key_file(path).and_then(|t| parse_keys(&t)) {
            Ok(keys) => {
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) =
                    keys.iter().map(Key::new).collect()
            }
            Err(e) => tracing::warn!(error = %e, "could not re-read the secrets key file"),
        }
    }
}

/// Puts a new key first in the key file at `path`. The older keys stay after it: a process
/// that was running during the rotation seals with the key it started with until it re-reads
/// the file, and what it sealed must still open (the next rotation re-seals it). Returns the
/// new key's id; the store re-seals under it when next opened.
pub fn rotate_key_file(path: &Path) -> Result<String> {
    let mut keys = parse_keys(&read_key_file(path)?)?;
    let new = SecretsKey::generate();
    let id = new.id();
    keys.insert(0, new);
    write_key_file(path, &keys)?;
    Ok(id)
}

fn parse_keys(text: &str) -> Result<Vec<SecretsKey>> {
    let keys = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(SecretsKey::parse)
        .collect::<Result<Vec<_>>>()?;
    if keys.is_empty() {
        return Err(bad_key());
    }
    Ok(keys)
}

fn read_key_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::backend(
            format!("cannot read the secrets key {}: {e}", path.display()),
            e,
        )
    })
}

/// Writes `keys` (the sealing one first) to the key file, replacing it atomically, mode 0600.
pub fn write_key_file(path: &Path, keys: &[SecretsKey]) -> Result<()> {
    let tmp = write_temp(path, keys)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::backend(
            format!("cannot write the secrets key {}: {e}", path.display()),
            e,
        )
    })
}

/// Makes the key file unless one exists; processes starting together on a new data dir all
/// end up with the one that won (a hard link fails where the file already is). Returns
/// whether this call made it.
fn create_key_file(path: &Path, keys: &[SecretsKey]) -> Result<bool> {
    let tmp = write_temp(path, keys)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::backend(
            format!("cannot write the secrets key {}: {e}", path.display()),
            e,
        )),
    }
}

/// The key file's text in a new private file beside it, synced; returns its path.
fn write_temp(path: &Path, keys: &[SecretsKey]) -> Result<PathBuf> {
    use std::io::Write;
    let mut unique = [0u8; 8];
    getrandom::fill(&mut unique).expect("the OS random source is available");
    let tmp = path.with_extension(format!("key.{}.tmp", hex::encode(unique)));
    let fail = |e: std::io::Error| {
        Error::backend(
            format!("cannot write the secrets key {}: {e}", path.display()),
            e,
        )
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(fail)?;
    let mut text = String::from(
        "# webhook-mcp secrets key: the first line seals, every line opens. Keep it private and\n\
         # back it up with the database: without it the stored secrets cannot be read.\n",
    );
    for k in keys {
        text.push_str(&k.to_text());
        text.push('\n');
    }
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[&SecretsKey]) -> Keyring {
        let text: Vec<String> = keys.iter().map(|k| k.to_text()).collect();
        Keyring::from_text(&text.join(","), KeySource::Given).unwrap()
    }

    #[test]
    fn seals_and_opens_bound_to_its_owner() {
        let k = SecretsKey::generate();
        let r = ring(&[&k]);
        let sealed = r.seal("wh_1", "whsec_abc");
        assert!(sealed.starts_with("sealed:v1:") && !sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            r.seal("wh_1", "whsec_abc"),
            "a fresh nonce each time"
        );
        assert_eq!(r.open("wh_1", &sealed).unwrap(), "whsec_abc");
        assert!(r.open("wh_2", &sealed).is_err(), "moved to another row");
        assert_eq!(r.open("wh_1", "plain-old").unwrap(), "plain-old");
        assert!(r.needs_sealing("plain-old") && !r.needs_sealing(&sealed));
        let mut tampered = sealed.clone();
        tampered.replace_range(tampered.len() - 3.., "AAA");
        assert!(r.open("wh_1", &tampered).is_err());
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let (old, new) = (SecretsKey::generate(), SecretsKey::generate());
        let sealed_old = ring(&[&old]).seal("w", "s");
        let both = ring(&[&new, &old]);
        assert_eq!(both.open("w", &sealed_old).unwrap(), "s");
        assert!(both.needs_sealing(&sealed_old));
        let only_new = ring(&[&new]);
        let e = only_new.open("w", &sealed_old).unwrap_err().to_string();
        assert!(e.contains(&old.id()) && !e.contains(&old.to_text()), "{e}");
        assert!(format!("{old:?}").contains(&old.id()));
        assert!(!format!("{old:?} {both:?}").contains(&old.to_text()));
    }

    #[test]
    fn a_key_file_is_made_private_and_re_read_after_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let r = Keyring::for_data_dir(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = Keyring::for_data_dir(dir.path()).unwrap();
        assert_eq!(r.key_ids(), again.key_ids());
        let new = SecretsKey::generate();
        write_key_file(&path, std::slice::from_ref(&new)).unwrap();
        let sealed = ring(&[&new]).seal("w", "s");
        assert_eq!(
            r.open("w", &sealed).unwrap(),
            "s",
            "re-read on an unknown key id"
        );
        assert!(SecretsKey::parse("short").is_err());
    }
}
