//! What the scripts answer (JSON made by cjson) and its mapping to domain
//! values. Nothing from Redis is trusted: a malformed value is a
//! `StoreError::Backend` naming it, never a panic.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::domain::{
    Conversation, ConversationId, ConversationKind, MessageId, MessageKind, Payment, PaymentId,
    PaymentStatus, SagaStep, StoredMessage, TraceId, Username,
};
use crate::store::StoreError;
use crate::store::StoreResult;

#[derive(Deserialize)]
struct Reply<T> {
    ok: Option<T>,
    err: Option<String>,
    #[serde(default)]
    msg: String,
}

/// `{"ok": v}` is `Some(v)`, `{}` is `None`, `{"err": code, "msg": m}` the
/// matching `StoreError`.
pub fn reply<T: DeserializeOwned>(raw: &str) -> StoreResult<Option<T>> {
    let r: Reply<T> = serde_json::from_str(raw).map_err(|e| {
        StoreError::backend(format!("unreadable redis script reply {raw}")).caused_by(e)
    })?;
    let Some(code) = r.err else {
        return Ok(r.ok);
    };
    Err(match code.as_str() {
        "conflict" => StoreError::Conflict(r.msg),
        "not_found" => StoreError::NotFound(r.msg),
        "not_member" => StoreError::NotMember,
        "bad_request" => StoreError::BadRequest(r.msg),
        "funds" => StoreError::InsufficientFunds,
        "forbidden" => StoreError::Forbidden(r.msg),
        _ => StoreError::backend(format!("redis: {}", r.msg)),
    })
}

/// A JSON list that cjson may have written as `{}`: it cannot tell an
/// empty Lua table from an empty object.
pub struct List<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list (or {} for an empty one)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(item) = seq.next_element()? {
                    out.push(item);
                }
                Ok(List(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<List<T>, A::Error> {
                match map.next_key::<de::IgnoredAny>()? {
                    None => Ok(List(Vec::new())),
                    Some(_) => Err(de::Error::custom("expected a list, got an object")),
                }
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::backend(format!("corrupt {what} in redis: {value:?}"))
}

pub fn number<T: FromStr>(what: &str, value: &str) -> StoreResult<T> {
    value.parse().map_err(|_| corrupt(what, value))
}

pub fn username(value: &str) -> StoreResult<Username> {
    Username::parse(value).map_err(|_| corrupt("username", value))
}

pub fn conversation_id(value: &str) -> StoreResult<ConversationId> {
    ConversationId::parse(value).map_err(|_| corrupt("conversation id", value))
}

fn trace_id(value: &str) -> StoreResult<TraceId> {
    TraceId::parse(value).ok_or_else(|| corrupt("trace id", value))
}

/// A members hash as HGETALL gives it (member, seq, ...), by member.
pub fn read_marks(flat: &[String]) -> StoreResult<BTreeMap<Username, u64>> {
    let pairs = flat.chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return Err(corrupt("members hash", &format!("{} fields", flat.len())));
    }
    pairs
        .map(|p| Ok((username(&p[0])?, number("read marker", &p[1])?)))
        .collect()
}

#[derive(Deserialize)]
pub struct UserWire {
    pub pw: String,
    pub balance: String,
    pub created: String,
    /// '1' once granted (`parley admin grant`); absent otherwise.
    pub admin: Option<String>,
}

/// An invitation as the invitation scripts answer it.
#[derive(Deserialize)]
pub struct InvitationWire {
    conv: ConvWire,
    from: String,
    created: String,
}

impl InvitationWire {
    pub fn into_invitation(self) -> StoreResult<crate::store::Invitation> {
        Ok(crate::store::Invitation {
            conversation: self.conv.into_conversation()?,
            from: username(&self.from)?,
            created_at: number("invitation time", &self.created)?,
        })
    }
}

#[derive(Deserialize)]
pub struct ConvWire {
    id: String,
    kind: String,
    name: String,
    seq: String,
    members: List<String>,
}

impl ConvWire {
    pub fn into_conversation(self) -> StoreResult<Conversation> {
        let mut members = self
            .members
            .0
            .iter()
            .map(|m| username(m))
            .collect::<Result<Vec<_>, _>>()?;
        // Hash fields come in no order; the domain keeps members sorted.
        members.sort();
        members.dedup();
        Ok(Conversation {
            id: conversation_id(&self.id)?,
            kind: ConversationKind::parse(&self.kind)
                .ok_or_else(|| corrupt("conversation kind", &self.kind))?,
            name: self.name,
            members,
            last_seq: number("conversation seq", &self.seq)?,
        })
    }
}

/// A stream entry: `seq` from its id, the rest from its fields.
#[derive(Deserialize)]
pub struct MsgWire {
    seq: String,
    id: String,
    user: String,
    cmid: String,
    kind: String,
    text: String,
    at: String,
    trace: String,
}

impl MsgWire {
    pub fn into_message(self, conversation_id: ConversationId) -> StoreResult<StoredMessage> {
        Ok(StoredMessage {
            conversation_id,
            message_id: MessageId::parse(&self.id).map_err(|_| corrupt("message id", &self.id))?,
            seq: number("message seq", &self.seq)?,
            sender: username(&self.user)?,
            client_msg_id: self.cmid,
            kind: MessageKind::parse(&self.kind)
                .ok_or_else(|| corrupt("message kind", &self.kind))?,
            text: self.text,
            sent_at: number("message time", &self.at)?,
            trace_id: trace_id(&self.trace)?,
        })
    }
}

#[derive(Deserialize)]
pub struct PaymentWire {
    id: String,
    payer: String,
    payee: String,
    amount: String,
    key: String,
    status: String,
    reason: Option<String>,
    step: String,
    created: String,
    updated: String,
    trace: String,
}

impl PaymentWire {
    pub fn into_payment(self) -> StoreResult<Payment> {
        Ok(Payment {
            id: PaymentId::parse(&self.id).map_err(|_| corrupt("payment id", &self.id))?,
            payer: username(&self.payer)?,
            payee: username(&self.payee)?,
            amount: number("payment amount", &self.amount)?,
            idempotency_key: self.key,
            status: PaymentStatus::parse(&self.status)
                .ok_or_else(|| corrupt("payment status", &self.status))?,
            reason: self.reason,
            step: SagaStep::parse(&self.step).ok_or_else(|| corrupt("saga step", &self.step))?,
            created_at: number("payment time", &self.created)?,
            updated_at: number("payment time", &self.updated)?,
            trace_id: trace_id(&self.trace)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_map_to_results_and_errors() {
        assert_eq!(reply::<bool>(r#"{"ok":true}"#), Ok(Some(true)));
        assert_eq!(reply::<bool>("{}"), Ok(None));
        assert_eq!(
            reply::<bool>(r#"{"err":"conflict","msg":"taken"}"#),
            Err(StoreError::Conflict("taken".into()))
        );
        assert_eq!(
            reply::<bool>(r#"{"msg":"x","err":"not_member"}"#),
            Err(StoreError::NotMember)
        );
        assert!(matches!(
            reply::<bool>(r#"{"err":"weird","msg":"boom"}"#),
            Err(StoreError::Backend { .. })
        ));
        assert!(matches!(
            reply::<bool>("nope"),
            Err(StoreError::Backend { .. })
        ));
    }

    #[test]
    fn an_empty_object_is_an_empty_list() {
        let l: List<String> = serde_json::from_str("{}").unwrap();
        assert!(l.0.is_empty());
        let l: List<String> = serde_json::from_str(r#"["a","b"]"#).unwrap();
        assert_eq!(l.0, vec!["a", "b"]);
        assert!(serde_json::from_str::<List<String>>(r#"{"a":1}"#).is_err());
    }

    #[test]
    fn malformed_values_are_backend_errors() {
        let wire = ConvWire {
            id: "not-a-uuid".into(),
            kind: "group".into(),
            name: "g".into(),
            seq: "0".into(),
            members: List(vec![]),
        };
        assert!(matches!(
            wire.into_conversation(),
            Err(StoreError::Backend { reason, .. }) if reason.contains("conversation id")
        ));
        assert!(matches!(
            number::<u64>("seq", "1e3"),
            Err(StoreError::Backend { .. })
        ));
    }
}
