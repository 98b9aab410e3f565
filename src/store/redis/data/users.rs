//! Accounts and wallets.

use super::scripts::{CREDIT, USER_ADMIN, USER_CREATE, USER_GET};
use super::wire::{self, UserWire};
use crate::domain::{now_ms, TraceContext, Username};
use crate::store::redis::RedisStore;
use crate::store::StoreResult;
use crate::store::{NewUser, UserRecord};

impl RedisStore {
    /// `Conflict` when the username is taken.
    pub async fn create_user(&self, user: NewUser) -> StoreResult<()> {
        let args = vec![
            user.username.to_string(),
            user.password_hash,
            user.balance.to_string(),
            now_ms().to_string(),
        ];
        self.eval_some::<bool>(TraceContext::random(), &USER_CREATE, args)
            .await
            .map(|_| ())
    }

    pub async fn user(&self, username: Username) -> StoreResult<Option<UserRecord>> {
        let found: Option<UserWire> = self
            .eval(
                TraceContext::random(),
                &USER_GET,
                vec![username.to_string()],
            )
            .await?;
        let Some(w) = found else {
            return Ok(None);
        };
        Ok(Some(UserRecord {
            username,
            password_hash: w.pw,
            balance: wire::number("balance", &w.balance)?,
            created_at: wire::number("user creation time", &w.created)?,
            admin: w.admin.as_deref() == Some("1"),
        }))
    }

    pub async fn set_admin(&self, user: Username, admin: bool) -> StoreResult<()> {
        let flag = if admin { "1" } else { "0" };
        self.eval_some::<bool>(
            TraceContext::random(),
            &USER_ADMIN,
            vec![user.to_string(), flag.into()],
        )
        .await
        .map(|_| ())
    }

    /// Tops up a wallet (a negative amount may not take it below zero);
    /// returns the new balance.
    pub async fn credit(&self, user: Username, amount: i64) -> StoreResult<i64> {
        let balance: String = self
            .eval_some(
                TraceContext::random(),
                &CREDIT,
                vec![user.to_string(), amount.to_string()],
            )
            .await?;
        wire::number("balance", &balance)
    }
}
