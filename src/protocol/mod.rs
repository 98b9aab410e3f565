//! The wire contract (SPEC.md): the only module that knows the JSON shape of
//! frames (and, in `admin`, of the admin HTTP answers). Client frames are parsed and validated here into typed requests;
//! server frames are serialized here once and shared by every recipient.

pub mod admin;
mod client;
mod codes;
mod inbox;
mod json;
mod server;

pub use client::{
    parse_client_frame, validate_members, ClientFrame, ClientRequest, FrameError, SendTarget,
};
pub use codes::ErrorCode;
pub use inbox::{InboxPaging, DEFAULT_INBOX_LIMIT, MAX_INBOX_LIMIT};
pub use json::parse_strict;
pub use server::{ConversationView, InvitationView, MessageView, PaymentView, ServerFrame};

/// Text limits from SPEC.md.
pub const MAX_TEXT_CHARS: usize = 4096;
pub const MAX_CLIENT_MSG_ID_CHARS: usize = 64;
pub const MAX_REF_CHARS: usize = 64;
pub const MAX_NAME_CHARS: usize = 128;
