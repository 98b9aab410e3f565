//! Passwords (argon2id, PHC strings) and signed bearer tokens
//! (`v1.<payload>.<HMAC-SHA256>`, base64url). Both hashing and verification
//! are CPU-heavy by design: callers run them on the blocking pool.

use std::time::Duration;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::Secret;
use crate::domain::Username;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing or malformed token")]
    Malformed,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("password hashing failed")]
    Hashing,
}

/// Where a node without a configured secret keeps its own: beside its database.
pub fn secret_path(sqlite_path: &std::path::Path) -> std::path::PathBuf {
    sqlite_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .join("token_secret")
}

/// Reads this node's token secret, or creates it (32 random bytes, hex,
/// readable by the owner only) on first start, so tokens survive restarts.
/// The new secret is written and synced under a temporary name, then linked
/// to `path` (which fails if `path` exists): a crash never leaves a partial
/// file there, and of two processes starting at once the second reads the
/// first one's secret.
pub fn data_dir_secret(path: &std::path::Path) -> std::io::Result<Secret> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let read = |path: &std::path::Path| -> std::io::Result<Secret> {
        let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
        let text = String::from_utf8(std::fs::read(path)?).map_err(|_| bad("not text"))?;
        Secret::new(text.trim().as_bytes().to_vec()).ok_or_else(|| bad("shorter than 32 bytes"))
    };
    match read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        other => return other,
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".token_secret.{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(hex.as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => {
            // The new name must survive a crash too.
            std::fs::File::open(dir)?.sync_all()?;
            read(path)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(e),
    }
}

const PREFIX: &str = "v1";

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    /// Unix ms.
    exp: i64,
    iat: i64,
}

#[derive(Clone)]
pub struct Tokens {
    secret: Secret,
    ttl: Duration,
}

impl Tokens {
    pub fn new(secret: Secret, ttl: Duration) -> Self {
        Tokens { secret, ttl }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(self.secret.expose())
            .unwrap_or_else(|_| unreachable!())
    }

    /// A token for `user` and its expiry (Unix ms).
    pub fn issue(&self, user: &Username, now_ms: i64) -> (String, i64) {
        let exp = now_ms.saturating_add(self.ttl.as_millis() as i64);
        let claims = Claims {
            sub: user.to_string(),
            exp,
            iat: now_ms,
        };
        let payload = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signed = format!("{PREFIX}.{payload}");
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        (format!("{signed}.{sig}"), exp)
    }

    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Username, AuthError> {
        let mut parts = token.split('.');
        let (Some(PREFIX), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let sig = B64.decode(sig).map_err(|_| AuthError::Malformed)?;
        let mut mac = self.mac();
        mac.update(PREFIX.as_bytes());
        mac.update(b".");
        mac.update(payload.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&sig)
            .map_err(|_| AuthError::BadSignature)?;
        let claims: Claims = B64
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or(AuthError::Malformed)?;
        if claims.exp <= now_ms {
            return Err(AuthError::Expired);
        }
        Username::parse(&claims.sub).map_err(|_| AuthError::Malformed)
    }
}

/// How many characters a password has: registration and `parley admin
/// create-user` hold it to the same rule.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AuthError::Hashing)
}

/// False for a wrong password or an unreadable hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A turn at argon2 (19 MiB and tens of milliseconds each). At most one
/// hash per core runs at once; later registrations and logins wait here,
/// in the async world, instead of each taking a blocking-pool thread and
/// its own 19 MiB: a burst of logins once left the server holding gigabytes
/// of freed-but-kept heap. Waiters are bounded by the server's connection
/// limit.
pub async fn hashing_turn() -> tokio::sync::SemaphorePermit<'static> {
    static TURNS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let turns = TURNS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    });
    // The semaphore is never closed, so acquiring cannot fail.
    match turns.acquire().await {
        Ok(permit) => permit,
        Err(_) => unreachable!("the hashing semaphore is never closed"),
    }
}

/// A real hash of nothing anyone knows, verified against when a login names
/// an unknown user, so both cases take the same time.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that matches nothing").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let s = crate::config::Settings::from_sources("[auth]\nallow_dev_secret = true\n", &[])
            .unwrap();
        Tokens::new(s.auth.token_secret, Duration::from_secs(60))
    }

    #[test]
    fn a_node_keeps_its_generated_secret_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = secret_path(&dir.path().join("data").join("parley.db"));
        let first = data_dir_secret(&path).unwrap();
        assert_eq!(first.expose().len(), 64);
        assert_eq!(data_dir_secret(&path).unwrap().expose(), first.expose());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A file too short to be a secret is an error, not a weak key.
        std::fs::write(&path, "short").unwrap();
        assert!(data_dir_secret(&path).is_err());
        assert_eq!(
            secret_path(std::path::Path::new("parley.db")),
            std::path::Path::new("./token_secret")
        );
    }

    #[test]
    fn tokens_round_trip_and_expire() {
        let t = tokens();
        let alice = Username::parse("alice").unwrap();
        let (tok, exp) = t.issue(&alice, 1_000);
        assert_eq!(exp, 61_000);
        assert_eq!(t.verify(&tok, 2_000), Ok(alice));
        assert_eq!(t.verify(&tok, 61_000), Err(AuthError::Expired));
    }

    #[test]
    fn tampering_is_detected() {
        let t = tokens();
        let (tok, _) = t.issue(&Username::parse("alice").unwrap(), 0);
        let forged_payload = B64.encode(br#"{"sub":"admin","exp":99999999999999,"iat":0}"#);
        let parts: Vec<&str> = tok.split('.').collect();
        let forged = format!("v1.{forged_payload}.{}", parts[2]);
        assert_eq!(t.verify(&forged, 1), Err(AuthError::BadSignature));
        assert_eq!(t.verify("v2.a.b", 1), Err(AuthError::Malformed));
        assert_eq!(t.verify("garbage", 1), Err(AuthError::Malformed));
    }

    #[test]
    fn passwords() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
