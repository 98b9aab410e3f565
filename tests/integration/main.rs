//! The one integration-test binary: real HTTP, real WebSockets, a real SQLite
//! file in a temp dir, the server on port 0 in its own actix system.

mod helpers;

mod abuse;
mod abuse_http;
mod accounts;
mod admin;
mod alerts;
mod authz;
mod bad_input;
mod chat;
mod cluster;
mod cluster_link;
mod inbox;
mod invitations;
mod lifecycle;
mod limits;
mod load;
mod metrics;
mod payments;
mod presence;
mod read_state;
mod redis_restart;
mod store_conformance;
mod supervision;
mod traces;
mod web_console;
mod web_contacts;
mod web_invitations;
mod web_presence;
mod web_read;
mod web_traces;
mod web_ui;
