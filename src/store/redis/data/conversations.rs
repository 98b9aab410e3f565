//! Conversations, their members and read markers.

use super::scripts::{
    CONTACTS, CONVS_OF, CONV_GET, DIRECT, GROUP_CREATE, INBOX, MEMBER_ADD, MEMBER_REMOVE, READ_SET,
    STARTED,
};

/// A quota as two script arguments: its user ('' for none) and max.
fn quota_args(quota: Option<Quota>) -> (String, String) {
    quota.map_or((String::new(), "0".into()), |q| {
        (q.user.to_string(), q.max.to_string())
    })
}
use super::wire::{self, ConvWire, List};
use crate::domain::{now_ms, Conversation, ConversationId, TraceContext, Username};
use crate::store::redis::EventKind;
use crate::store::redis::RedisStore;
use crate::store::StoreResult;
use crate::store::{ConversationSummary, Quota, StoreError};
use crate::store::{InboxPage, InboxQuery, Join, Leave, NewGroup, Pair};

#[derive(serde::Deserialize)]
struct SummaryWire {
    conv: ConvWire,
    read: String,
    /// Every member's marker, flat: member, seq, member, seq, ...
    reads: List<String>,
    updated: String,
}

#[derive(serde::Deserialize)]
struct InboxWire {
    items: List<SummaryWire>,
    more: bool,
}

impl SummaryWire {
    fn into_summary(self) -> StoreResult<ConversationSummary> {
        Ok(ConversationSummary {
            conversation: self.conv.into_conversation()?,
            last_read_seq: wire::number("read marker", &self.read)?,
            read_by: wire::read_marks(&self.reads.0)?,
            updated_at: wire::number("last activity", &self.updated)?,
        })
    }
}

impl RedisStore {
    /// A group with these members and `invite`'s invitations; `NotFound`
    /// naming the first member (in the given order), then invitee, that has
    /// no account, and then nothing is written.
    pub async fn create_group(&self, group: NewGroup) -> StoreResult<Conversation> {
        let (name, members, invite) = (group.name, group.members, group.invite);
        let quota = group.quota;
        let (quota_user, quota_max) = quota_args(quota);
        let mut args = vec![
            ConversationId::new_random().to_string(),
            name,
            now_ms().to_string(),
            quota_user,
            quota_max,
            members.len().to_string(),
        ];
        args.extend(members.iter().map(|m| m.to_string()));
        if let Some(i) = invite {
            args.push(i.from.to_string());
            args.push(i.max_pending.to_string());
            args.push(i.at.to_string());
            args.extend(i.to.iter().map(|u| u.to_string()));
        }
        self.conversation_script(&GROUP_CREATE, args).await
    }

    /// The pair's direct conversation, created on first use (atomically: two
    /// nodes racing for the same pair get the same one).
    pub async fn direct_conversation(&self, pair: Pair) -> StoreResult<Conversation> {
        let Pair { a, b, quota } = pair;
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let (quota_user, quota_max) = quota_args(quota);
        let args = vec![
            lo.to_string(),
            hi.to_string(),
            ConversationId::new_random().to_string(),
            now_ms().to_string(),
            quota_user,
            quota_max,
        ];
        self.conversation_script(&DIRECT, args).await
    }

    /// `Conflict` if already a member, `BadRequest` past `max_members` or
    /// for a direct conversation, `NotFound` for a missing user or group.
    pub async fn add_member(&self, join: Join) -> StoreResult<Conversation> {
        let Join {
            id,
            user,
            max_members,
            trace,
            quota,
        } = join;
        let (quota_user, quota_max) = quota_args(quota);
        let event = self.event(
            trace,
            EventKind::MemberJoined {
                conversation_id: id,
                username: user.clone(),
            },
        );
        let args = vec![
            id.to_string(),
            user.to_string(),
            max_members.to_string(),
            event,
            quota_user,
            quota_max,
        ];
        self.conversation_script(&MEMBER_ADD, args).await
    }

    /// `NotMember` if they are not one; `BadRequest` for a direct conversation.
    pub async fn remove_member(&self, leave: Leave) -> StoreResult<Conversation> {
        let Leave {
            id,
            user,
            trace,
            session,
        } = leave;
        let event = self.event(
            trace,
            EventKind::MemberLeft {
                conversation_id: id,
                username: user.clone(),
                session,
            },
        );
        let args = vec![id.to_string(), user.to_string(), event];
        self.conversation_script(&MEMBER_REMOVE, args).await
    }

    /// Moves a member's read marker forward (never back).
    pub async fn set_read(&self, id: ConversationId, user: Username, seq: u64) -> StoreResult<()> {
        // The same bound as SQLite's INTEGER column.
        if i64::try_from(seq).is_err() {
            return Err(StoreError::BadRequest("seq is too large".into()));
        }
        let args = vec![id.to_string(), user.to_string(), seq.to_string()];
        self.eval_some::<bool>(TraceContext::random(), &READ_SET, args)
            .await
            .map(|_| ())
    }

    pub async fn conversation(&self, id: ConversationId) -> StoreResult<Option<Conversation>> {
        let found: Option<ConvWire> = self
            .eval(TraceContext::random(), &CONV_GET, vec![id.to_string()])
            .await?;
        found.map(ConvWire::into_conversation).transpose()
    }

    /// The user's conversations by (creation time, id), with their markers.
    pub async fn conversations_of(&self, user: Username) -> StoreResult<Vec<ConversationSummary>> {
        let list: List<SummaryWire> = self
            .eval_some(TraceContext::random(), &CONVS_OF, vec![user.to_string()])
            .await?;
        list.0.into_iter().map(SummaryWire::into_summary).collect()
    }

    /// See `Store::inbox`.
    pub async fn inbox(&self, q: InboxQuery) -> StoreResult<InboxPage> {
        let (before, tie) = match q.before {
            None => (String::new(), String::new()),
            Some(c) => (
                c.updated_at.to_string(),
                c.id.map(|id| id.to_string()).unwrap_or_default(),
            ),
        };
        let args = vec![q.user.to_string(), q.limit.to_string(), before, tie];
        let page: InboxWire = self.eval_some(TraceContext::random(), &INBOX, args).await?;
        Ok(InboxPage {
            items: page
                .items
                .0
                .into_iter()
                .map(SummaryWire::into_summary)
                .collect::<StoreResult<_>>()?,
            has_more: page.more,
        })
    }

    /// How many conversations `user` started or accepted.
    pub async fn started_count(&self, user: Username) -> StoreResult<usize> {
        self.eval_some(TraceContext::random(), &STARTED, vec![user.to_string()])
            .await
    }

    /// Everyone who shares at least one conversation with `user`.
    pub async fn contacts_of(&self, user: Username) -> StoreResult<Vec<Username>> {
        let list: List<String> = self
            .eval_some(TraceContext::random(), &CONTACTS, vec![user.to_string()])
            .await?;
        list.0.iter().map(|s| wire::username(s)).collect()
    }

    async fn conversation_script(
        &self,
        script: &'static redis::Script,
        args: Vec<String>,
    ) -> StoreResult<Conversation> {
        self.eval_some::<ConvWire>(TraceContext::random(), script, args)
            .await?
            .into_conversation()
    }
}
