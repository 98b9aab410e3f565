//! `parley admin ...`: admin rights given on the server's host, never
//! through the public API (SPEC v2 "Admin rights"). An admin is an account
//! whose name is in `auth.admins` *and* that was granted rights here; the
//! public `POST /api/register` refuses listed names, so only someone who can
//! run this next to the data makes one. Works beside a running server: on
//! SQLite it is one more writer on the same file (WAL, with the busy
//! timeout), on Redis one more client.

use anyhow::Context as _;

use crate::auth;
use crate::config::{Settings, StorageBackend};
use crate::domain::Username;
use crate::store::redis::RedisOptions;
use crate::store::{NewUser, Store};

/// What `parley admin` was asked to do.
pub enum Action {
    /// A new account with admin rights; its password as read from stdin.
    CreateUser {
        name: Username,
        password: String,
    },
    Grant(Username),
    Revoke(Username),
}

/// Does `action` on the store `settings` name; the line to print on success.
pub async fn run(settings: &Settings, action: Action) -> anyhow::Result<String> {
    let store = open(settings).await?;
    let listed = |name: &Username| {
        if settings.is_admin(name) {
            String::new()
        } else {
            format!(" ({name} is not in auth.admins: no rights until it is)")
        }
    };
    let done = match action {
        Action::CreateUser { name, password } => {
            if !auth::PASSWORD_CHARS.contains(&password.chars().count()) {
                anyhow::bail!("the password must have 8 to 128 characters");
            }
            let password_hash = auth::hash_password(&password).context("hashing the password")?;
            let user = NewUser {
                username: name.clone(),
                password_hash,
                balance: settings.payments.initial_balance,
            };
            store
                .create_user(user)
                .await
                .with_context(|| format!("creating {name}"))?;
            // Two writes: should the grant fail, the account exists without
            // rights, and `grant` finishes the job.
            store.set_admin(name.clone(), true).await.with_context(|| {
                format!(
                    "{name} was created, but granting it failed: run `parley admin grant {name}`"
                )
            })?;
            format!("created {name} with admin rights{}", listed(&name))
        }
        Action::Grant(name) => {
            store.set_admin(name.clone(), true).await?;
            format!("granted admin rights to {name}{}", listed(&name))
        }
        Action::Revoke(name) => {
            store.set_admin(name.clone(), false).await?;
            format!("revoked the admin rights of {name}")
        }
    };
    store.shutdown().await?;
    let storage = &settings.storage;
    let place = match storage.backend {
        StorageBackend::Sqlite => format!("sqlite {}", storage.sqlite_path.display()),
        StorageBackend::Redis => format!("redis {} {}", storage.redis_url, storage.redis_prefix),
    };
    Ok(format!("{done} [store: {place}]"))
}

async fn open(settings: &Settings) -> anyhow::Result<Store> {
    let storage = &settings.storage;
    Ok(match storage.backend {
        StorageBackend::Sqlite => Store::open_sqlite(&storage.sqlite_path, storage, None)
            .with_context(|| format!("opening {}", storage.sqlite_path.display()))?,
        StorageBackend::Redis => {
            let options = RedisOptions::from_settings(storage, &settings.server.node_id);
            Store::open_redis(options, None)
                .await
                .with_context(|| format!("connecting to {}", storage.redis_url))?
        }
    })
}
