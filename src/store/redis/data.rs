//! Users, conversations, history, wallets and payments in Redis.
//!
//! Key layout (every key starts with the configured prefix `P`; the Lua
//! builders are in `scripts/lib.lua`):
//!
//! | key                       | type   | contents                                        |
//! |---------------------------|--------|-------------------------------------------------|
//! | `P user:<name>`           | hash   | `pw`, `balance`, `created` (ms)                 |
//! | `P user:<name>:convs`     | zset   | conversation ids scored by creation ms          |
//! | `P user:<name>:invites`   | zset   | invited-to group ids scored by invitation ms    |
//! | `P user:<name>:inviters`  | hash   | invited-to group id -> inviter                  |
//! | `P conv:<id>`             | hash   | `kind`, `name`, `created` (ms), `seq` (last)    |
//! | `P conv:<id>:members`     | hash   | member -> last read seq                         |
//! | `P conv:<id>:log`         | stream | one entry per message, entry id `<seq>-0`       |
//! | `P conv:<id>:dedup`       | hash   | sender NUL clientMsgId -> seq                   |
//! | `P direct:<lo>\|<hi>`     | string | the pair's direct conversation id               |
//! | `P pay:<id>`              | hash   | payer, payee, amount, key, status, step, ...    |
//! | `P pay:<id>:steps`        | hash   | saga step -> ms it was first taken (the log)    |
//! | `P paykeys:<payer>`       | hash   | idempotency key -> payment id                   |
//! | `P payments:all`          | zset   | every payment id, score 0 (lex = id order)      |
//! | `P payments:<status>`     | zset   | ids by status; `pending` = saga unfinished      |
//! | `P events`                | channel| cluster events (the append script publishes)    |
//!
//! Every operation, reads included, is one Lua script (EVALSHA), so each
//! sees and changes its keys atomically. Scripts answer with one JSON
//! string (see `wire`); integers that may pass 2^53 travel as strings.

mod conversations;
mod invitations;
mod messages;
mod payments;
mod scripts;
mod users;
mod wire;

use redis::Script;
use serde::de::DeserializeOwned;

use super::{from_redis, RedisStore};
use crate::domain::TraceContext;
use crate::store::StoreError;
use crate::store::StoreResult;

impl RedisStore {
    /// Runs a data script (ARGV[1] = the key prefix, then `args`) through
    /// the breaker; `None` when the script answered "nothing" (a miss).
    async fn eval<T>(
        &self,
        trace: TraceContext,
        script: &'static Script,
        args: Vec<String>,
    ) -> StoreResult<Option<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let prefix = self.key("");
        self.run(trace, move |mut conn| async move {
            let mut call = script.prepare_invoke();
            call.arg(prefix);
            for a in &args {
                call.arg(a);
            }
            let raw: String = call.invoke_async(&mut conn).await.map_err(from_redis)?;
            wire::reply(&raw)
        })
        .await
    }

    /// `eval` for scripts that always answer with a value.
    async fn eval_some<T>(
        &self,
        trace: TraceContext,
        script: &'static Script,
        args: Vec<String>,
    ) -> StoreResult<T>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.eval(trace, script, args)
            .await?
            .ok_or_else(|| StoreError::backend("a redis script answered without a value"))
    }

    /// Nothing is buffered in this process: every write is in Redis once answered.
    pub async fn shutdown(&self) -> StoreResult<()> {
        Ok(())
    }
}
