//! The JSON bodies of the HTTP routes, decoded as their `JsonBody` extractor
//! does (`parley::http::fuzzing::decode_body`, the extractor's own function)
//! into each handler's body type; every input is tried as every route's body.
//!
//! Decoding must end in the body or in a `bad_json` / `bad_request` error
//! (HTTP 400 with the SPEC error body), never panic or hang. Where the body
//! decodes, the validation functions the handlers then call run on its
//! fields too (`Username::parse`, `validate_members`).

#![no_main]

use actix_web::ResponseError;
use libfuzzer_sys::fuzz_target;
use parley::domain::Username;
use parley::http::fuzzing::{decode_body, JsonRoute, JSON_ROUTES};
use parley::protocol::{validate_members, ErrorCode};
use serde_json::Value;

/// `limits.max_http_body_bytes` by default: larger bodies are refused
/// `too_large` while they are read, before decoding.
const MAX_BODY_BYTES: usize = 65_536;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_BODY_BYTES {
        return;
    }
    for route in JSON_ROUTES {
        match decode_body(route, data) {
            Ok(()) => validate_fields(route, data),
            Err(e) => {
                assert!(
                    matches!(e.code, ErrorCode::BadJson | ErrorCode::BadRequest),
                    "{route:?} answered {:?}",
                    e.code
                );
                // The response the route sends.
                assert_eq!(e.error_response().status().as_u16(), 400);
            }
        }
    }
});

/// A decoded body is a JSON object with the route's fields, of their types.
fn validate_fields(route: JsonRoute, data: &[u8]) {
    let v: Value = serde_json::from_slice(data).expect("a decoded body is JSON");
    let text = |field: &str| {
        v.get(field)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{route:?} decoded without a string {field}"))
    };
    match route {
        JsonRoute::Credentials => {
            let _ = Username::parse(text("username"));
        }
        JsonRoute::Payment => {
            let _ = Username::parse(text("to"));
        }
        JsonRoute::NewConversation => {
            let members: Vec<String> =
                serde_json::from_value(v["members"].clone()).expect("members are strings");
            let _ = validate_members(members);
        }
        JsonRoute::SendMessage
        | JsonRoute::WalletCredit
        | JsonRoute::Fault
        | JsonRoute::BreakerForce => {}
    }
}
