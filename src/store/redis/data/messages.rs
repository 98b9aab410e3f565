//! Appending messages and reading history.

use std::future::Future;

use serde::Deserialize;

use super::scripts::{APPEND, HISTORY};
use super::wire::{self, ConvWire, List, MsgWire};
use crate::domain::{StoredMessage, TraceContext};
use crate::store::redis::RedisStore;
use crate::store::HistoryQuery;
use crate::store::StoreResult;
use crate::store::{AppendOutcome, Completion, HistoryPage, NewMessage, StoreError};

#[derive(Deserialize)]
struct AppendWire {
    dup: bool,
    /// The new message's seq (not a duplicate).
    seq: Option<String>,
    /// The original (a duplicate).
    msg: Option<MsgWire>,
}

#[derive(Deserialize)]
struct PageWire {
    conv: ConvWire,
    msgs: List<MsgWire>,
}

/// Runs `task` detached on the current tokio runtime. On an actix arbiter
/// that is its current-thread runtime, so the task stays on the caller's
/// thread and tasks run in spawn order. Not `actix_rt::spawn`: it needs a
/// `LocalSet`, which a task started with `tokio::spawn` on an arbiter
/// thread is not inside (it panics there; the conformance suite does
/// that). With no runtime the task is dropped, and the completion it holds answers
/// `StoreError::Lost`.
fn spawn_detached(task: impl Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(task);
        }
        Err(_) => tracing::error!("a redis append was made outside any async runtime"),
    }
}

impl RedisStore {
    /// Appends in one script (dedup, seq, stream entry, cluster event) and
    /// calls `done` once with the outcome. On an actix arbiter (one thread,
    /// tasks first polled in spawn order), appends made in order reach the
    /// one multiplexed connection in that order and Redis answers in order,
    /// so completions come back in seq order, as the contract asks. On a
    /// multi-threaded tokio runtime concurrent appends may complete in any order.
    pub fn append_then(&self, message: NewMessage, done: Completion<AppendOutcome>) {
        let store = self.clone();
        // Dropped with the task (runtime shutting down), `done` answers
        // `StoreError::Lost`: the append may or may not have reached Redis,
        // and a retry with the same clientMsgId is deduplicated either way.
        spawn_detached(async move {
            done.respond(store.append(message).await);
        });
    }

    async fn append(&self, m: NewMessage) -> StoreResult<AppendOutcome> {
        let args = vec![
            self.node().to_string(),
            m.conversation_id.to_string(),
            m.message_id.to_string(),
            m.sender.to_string(),
            m.client_msg_id.clone(),
            m.kind.as_str().to_string(),
            m.text.clone(),
            m.sent_at.to_string(),
            m.trace_id.to_string(),
            if crate::traces::recorded(m.trace_id) {
                "1"
            } else {
                "0"
            }
            .to_string(),
        ];
        let reply: AppendWire = self
            .eval_some(TraceContext::new(m.trace_id), &APPEND, args)
            .await?;
        if reply.dup {
            let original = reply
                .msg
                .ok_or_else(|| StoreError::backend("the append script named no original"))?;
            return Ok(AppendOutcome {
                message: original.into_message(m.conversation_id)?,
                duplicate: true,
            });
        }
        let seq = reply
            .seq
            .ok_or_else(|| StoreError::backend("the append script gave no seq"))?;
        Ok(AppendOutcome {
            message: StoredMessage {
                conversation_id: m.conversation_id,
                message_id: m.message_id,
                seq: wire::number("message seq", &seq)?,
                sender: m.sender,
                client_msg_id: m.client_msg_id,
                kind: m.kind,
                text: m.text,
                sent_at: m.sent_at,
                trace_id: m.trace_id,
            },
            duplicate: false,
        })
    }

    /// Up to `limit` messages after `after_seq`, for a member: `NotFound` or
    /// `NotMember` otherwise. One entry more than asked says `has_more`.
    pub async fn history(&self, q: HistoryQuery) -> StoreResult<HistoryPage> {
        let HistoryQuery {
            reader: user,
            id,
            after_seq,
            limit,
        } = q;
        // Entry ids are `<seq>-0`: the page starts at the next seq's entry.
        // Past the last possible seq the range is empty, but membership is
        // still checked: start beyond any entry.
        let first = match after_seq.checked_add(1) {
            Some(s) => format!("{s}-0"),
            None => format!("{}-1", u64::MAX),
        };
        let count = u64::from(limit) + 1;
        let args = vec![id.to_string(), user.to_string(), first, count.to_string()];
        let page: PageWire = self
            .eval_some(TraceContext::random(), &HISTORY, args)
            .await?;
        let conversation = page.conv.into_conversation()?;
        let messages = page
            .msgs
            .0
            .into_iter()
            .map(|w| w.into_message(id))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HistoryPage::from_overfetch(conversation, messages, limit))
    }
}
