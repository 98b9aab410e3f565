//! Invitations to groups (SPEC v2): pending, not memberships.

use super::scripts::{CONSENTING, INVITE, INVITES_OF, INVITE_DECLINE, INVITE_GET};
use super::wire::{InvitationWire, List};
use crate::domain::{now_ms, ConversationId, TraceContext, Username};
use crate::store::redis::RedisStore;
use crate::store::Invitation;
use crate::store::NewInvitation;
use crate::store::StoreResult;

#[derive(serde::Deserialize)]
struct Invited {
    inv: InvitationWire,
    new: bool,
}

impl RedisStore {
    /// See `Store::invite`.
    pub async fn invite(&self, new: NewInvitation) -> StoreResult<(Invitation, bool)> {
        let args = vec![
            new.id.to_string(),
            new.user.to_string(),
            new.from.to_string(),
            now_ms().to_string(),
            new.max_pending.to_string(),
        ];
        let answer: Invited = self
            .eval_some(TraceContext::random(), &INVITE, args)
            .await?;
        Ok((answer.inv.into_invitation()?, answer.new))
    }

    pub async fn decline(&self, id: ConversationId, user: Username) -> StoreResult<bool> {
        let args = vec![id.to_string(), user.to_string()];
        self.eval_some(TraceContext::random(), &INVITE_DECLINE, args)
            .await
    }

    pub async fn invitation(
        &self,
        id: ConversationId,
        user: Username,
    ) -> StoreResult<Option<Invitation>> {
        let args = vec![id.to_string(), user.to_string()];
        let found: Option<InvitationWire> =
            self.eval(TraceContext::random(), &INVITE_GET, args).await?;
        found.map(InvitationWire::into_invitation).transpose()
    }

    /// Newest first.
    pub async fn invitations_of(&self, user: Username) -> StoreResult<Vec<Invitation>> {
        let list: List<InvitationWire> = self
            .eval_some(TraceContext::random(), &INVITES_OF, vec![user.to_string()])
            .await?;
        list.0
            .into_iter()
            .map(InvitationWire::into_invitation)
            .collect()
    }

    pub async fn consenting(
        &self,
        inviter: Username,
        candidates: Vec<Username>,
    ) -> StoreResult<Vec<Username>> {
        let mut args = vec![inviter.to_string()];
        args.extend(candidates.iter().map(|c| c.to_string()));
        let list: List<String> = self
            .eval_some(TraceContext::random(), &CONSENTING, args)
            .await?;
        list.0.iter().map(|s| super::wire::username(s)).collect()
    }
}
