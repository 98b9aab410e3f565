//! `[auth]`: the token signing secret, token lifetime and the admins.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Section, StorageBackend};
use crate::domain::Username;

const SECTION: Section = Section("auth");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAuth {
    token_secret: String,
    allow_dev_secret: bool,
    token_ttl_secs: u64,
    admins: Vec<String>,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            token_secret: String::new(),
            allow_dev_secret: false,
            token_ttl_secs: 86_400,
            admins: Vec::new(),
        }
    }
}

/// The signing secret; its Debug never shows the value.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret of at least 32 bytes (None: too short to sign tokens).
    pub fn new(bytes: Vec<u8>) -> Option<Secret> {
        (bytes.len() >= 32).then_some(Secret(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Used when `auth.token_secret` is empty: fine on a laptop, announced loudly.
pub(super) const DEV_SECRET: &[u8] = b"parley-development-secret-do-not-use-in-production";

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub token_secret: Secret,
    /// The published development secret (`auth.allow_dev_secret`).
    pub using_dev_secret: bool,
    /// No secret given, one node with SQLite: the secret is read from (or
    /// first written to) `token_secret` beside the database at start-up.
    pub secret_from_data_dir: bool,
    pub token_ttl: Duration,
    pub admins: BTreeSet<Username>,
}

impl RawAuth {
    /// `backend`: a cluster cannot make up its own secret, every node must share one.
    pub(super) fn validate(self, backend: StorageBackend) -> Result<AuthSettings, ConfigError> {
        let (token_secret, using_dev_secret, secret_from_data_dir) =
            secret(self.token_secret, self.allow_dev_secret, backend)?;
        let admins = self
            .admins
            .iter()
            .map(|a| {
                Username::parse(a).map_err(|e| SECTION.invalid("admins", format!("{a:?}: {e}")))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(AuthSettings {
            token_secret,
            using_dev_secret,
            secret_from_data_dir,
            token_ttl: SECTION.positive_secs("token_ttl_secs", self.token_ttl_secs)?,
            admins,
        })
    }
}

/// The secret, whether it is the development one, and whether it is still to
/// be read from the data directory (then the secret returned is empty).
fn secret(
    given: String,
    dev_allowed: bool,
    backend: StorageBackend,
) -> Result<(Secret, bool, bool), ConfigError> {
    // Nobody runs with a secret anyone can read in this repository unless
    // they ask for it: without a secret, one node generates its own and
    // keeps it with its data; a cluster must be given one.
    if given.is_empty() {
        return if dev_allowed {
            Ok((Secret(DEV_SECRET.to_vec()), true, false))
        } else if backend == StorageBackend::Sqlite {
            Ok((Secret(Vec::new()), false, true))
        } else {
            Err(SECTION.invalid(
                "token_secret",
                "must be set with storage.backend = \"redis\": every node signs and checks the same \
                 tokens (or set auth.allow_dev_secret = true for development)",
            ))
        };
    }
    let is_dev = given.as_bytes() == DEV_SECRET;
    if is_dev && !dev_allowed {
        return Err(SECTION.invalid(
            "token_secret",
            "is the published development secret; choose your own (or set \
             auth.allow_dev_secret = true for development)",
        ));
    }
    if given.len() < 32 {
        return Err(SECTION.invalid("token_secret", "must be at least 32 bytes long"));
    }
    // Given explicitly with the flag on: still warned about at start-up.
    Ok((Secret(given.into_bytes()), is_dev, false))
}
