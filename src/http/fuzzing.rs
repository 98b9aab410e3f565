//! The JSON bodies of the HTTP routes, decoded as their handlers decode
//! them, for the fuzz target `http_bodies` (fuzz/). Not an API.

use super::{accounts, admin, chat, extract, payments, ApiError};
use crate::domain::TraceId;

/// The routes that take a JSON body, by the body type their handler reads.
#[derive(Clone, Copy, Debug)]
pub enum JsonRoute {
    /// `POST /api/register` and `POST /api/login`.
    Credentials,
    /// `POST /api/conversations`.
    NewConversation,
    /// `POST /api/conversations/{id}/messages`.
    SendMessage,
    /// `POST /api/payments`.
    Payment,
    /// `POST /admin/wallets/{username}/credit`.
    WalletCredit,
    /// `POST /admin/faults`.
    Fault,
    /// `POST /admin/breakers/{name}`.
    BreakerForce,
}

pub const JSON_ROUTES: [JsonRoute; 7] = [
    JsonRoute::Credentials,
    JsonRoute::NewConversation,
    JsonRoute::SendMessage,
    JsonRoute::Payment,
    JsonRoute::WalletCredit,
    JsonRoute::Fault,
    JsonRoute::BreakerForce,
];

/// Decodes `body` as the route's `JsonBody` extractor does, into the
/// handler's own body type.
pub fn decode_body(route: JsonRoute, body: &[u8]) -> Result<(), ApiError> {
    let trace = TraceId::random();
    match route {
        JsonRoute::Credentials => {
            extract::decode_json::<accounts::Credentials>(body, trace).map(drop)
        }
        JsonRoute::NewConversation => {
            extract::decode_json::<chat::NewConversation>(body, trace).map(drop)
        }
        JsonRoute::SendMessage => extract::decode_json::<chat::SendBody>(body, trace).map(drop),
        JsonRoute::Payment => extract::decode_json::<payments::PayBody>(body, trace).map(drop),
        JsonRoute::WalletCredit => {
            extract::decode_json::<payments::CreditBody>(body, trace).map(drop)
        }
        JsonRoute::Fault => extract::decode_json::<admin::FaultBody>(body, trace).map(drop),
        JsonRoute::BreakerForce => extract::decode_json::<admin::ForceBody>(body, trace).map(drop),
    }
}
