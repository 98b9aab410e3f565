//! Validated identifiers. A value of these types is always well-formed, so code
//! that receives one never re-checks it.

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("username must match [a-z0-9_]{{3,32}}")]
    BadUsername,
    #[error("{0} must be a UUID")]
    BadUuid(&'static str),
}

/// `[a-z0-9_]{3,32}`. Shared (`Arc<str>`) because every frame and fan-out
/// carries usernames and cloning must stay cheap.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(Arc<str>);

impl Username {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = (3..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Username(Arc::from(s)))
        } else {
            Err(IdError::BadUsername)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl serde::Serialize for Username {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

macro_rules! uuid_id {
    ($name:ident, $what:literal) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                Uuid::parse_str(s)
                    .map($name)
                    .map_err(|_| IdError::BadUuid($what))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.hyphenated())
            }
        }
    };
}

uuid_id!(ConversationId, "conversationId");
uuid_id!(MessageId, "messageId");
uuid_id!(SessionId, "sessionId");
uuid_id!(PaymentId, "paymentId");

impl ConversationId {
    pub fn new_random() -> Self {
        ConversationId(Uuid::new_v4())
    }
}

impl MessageId {
    /// UUID v7, so message ids sort by creation time (SPEC.md).
    pub fn new_v7() -> Self {
        MessageId(Uuid::now_v7())
    }
}

impl SessionId {
    pub fn new_random() -> Self {
        SessionId(Uuid::new_v4())
    }
}

impl PaymentId {
    /// UUID v7: payments list newest first by id.
    pub fn new_v7() -> Self {
        PaymentId(Uuid::now_v7())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse("a_b_9").is_ok());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse("Abc").is_err());
        assert!(Username::parse("ab-c").is_err());
        assert!(Username::parse("abé").is_err());
    }

    #[test]
    fn message_ids_sort_by_time() {
        let a = MessageId::new_v7();
        let b = MessageId::new_v7();
        assert!(a < b);
        assert_eq!(a.0.get_version_num(), 7);
    }
}
