//! The socket side of a session: the upgrade, the pump task (socket to
//! mailbox) and the writer task (outbound queue to socket).

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, Closed};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::actor::{Inbound, SessionActor};
use super::handle::Outbound;
use crate::actors::Deps;
use crate::domain::{now_ms, SessionId, TraceContext, Username};
use crate::limits::{FrameGuard, Refusal, Slot};
use crate::supervision::policy::RestartType;
use crate::supervision::{ChildSpec, Envelope};
use crate::traces::{self, ActorRef};

/// Upgrades the request and starts the session's actor and tasks.
pub fn start_session(
    req: &HttpRequest,
    body: web::Payload,
    deps: Deps,
    user: Username,
    trace: TraceContext,
    slot: Slot,
) -> Result<HttpResponse, actix_web::Error> {
    let settings = &deps.settings.session;
    let max_frame = settings.max_frame_bytes;
    // Oversized frames are refused from their headers (limits/frames.rs);
    // actix-ws's own checks below wait for the whole frame.
    let refusal = Refusal::default();
    let guarded = FrameGuard::new(body.into_inner(), max_frame, refusal.clone());
    let mut raw: actix_web::dev::Payload = actix_web::dev::Payload::Stream {
        payload: Box::pin(guarded),
    };
    let body = web::Payload::from_request(req, &mut raw).into_inner()?;
    let (response, ws, stream) = actix_ws::handle(req, body)?;
    let stream = stream
        .max_frame_size(max_frame)
        .aggregate_continuations()
        .max_continuation_size(max_frame);
    let (tx, rx) = mpsc::channel(settings.outbound_queue);
    let id = SessionId::new_random();
    let writer = actix_rt::spawn(write_loop(ws.clone(), rx, id));
    let sessions = deps.sessions.clone();
    let spec = ChildSpec::new(
        format!("session:{id}"),
        "session",
        RestartType::Transient,
        settings.mailbox,
    )
    .with_label(user.as_str());
    let actor = SessionActor::new(id, user, now_ms(), trace, deps, tx, ws, writer);
    let addr = sessions.spawn(spec, actor, None);
    actix_rt::spawn(async move {
        // The connection's place in `limits.max_connections`, freed when
        // its reader ends, however it ends.
        let _slot = slot;
        let mut stream = stream;
        while let Some(item) = stream.next().await {
            let (inbound, last) = match item {
                Ok(AggregatedMessage::Text(t)) => (Inbound::Text(t), false),
                Ok(AggregatedMessage::Binary(_)) => (Inbound::Binary, false),
                Ok(AggregatedMessage::Ping(b)) => (Inbound::Ping(b), false),
                Ok(AggregatedMessage::Pong(_)) => (Inbound::Pong, false),
                Ok(AggregatedMessage::Close(_)) => (Inbound::Closed, true),
                Err(actix_ws::ProtocolError::Overflow) => (Inbound::TooLarge, true),
                Err(_) if refusal.refused() => (Inbound::TooLarge, true),
                Err(e) => (Inbound::ProtocolError(e.to_string()), true),
            };
            // `send` waits while the mailbox is full: the socket is not read
            // meanwhile, which pushes back on the client through TCP. An
            // error with the mailbox still open means the actor failed on
            // this frame and is being restarted in place: read on.
            let sent = addr.send(Envelope::new(trace, inbound)).await;
            if last || (sent.is_err() && !addr.connected()) {
                return;
            }
        }
        let _ = addr.send(Envelope::new(trace, Inbound::Closed)).await;
    });
    Ok(response)
}

/// Drains the outbound queue into the socket until a close or an error.
async fn write_loop(mut ws: actix_ws::Session, mut rx: mpsc::Receiver<Outbound>, id: SessionId) {
    while let Some(out) = rx.recv().await {
        let sent: Result<(), Closed> = match out {
            Outbound::Text(t, trace, queued) => {
                let hot = crate::telemetry::hot();
                hot.frame_out(&t);
                let sent = ws.text(t).await;
                if sent.is_ok() {
                    traces::hop(
                        trace,
                        "session",
                        ActorRef::Session(id),
                        "delivered",
                        queued.elapsed(),
                    );
                }
                sent
            }
            Outbound::Ping => ws.ping(b"").await,
            Outbound::Pong(b) => ws.pong(&b).await,
            Outbound::Close(reason) => {
                let _ = ws.close(Some(reason)).await;
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
    // Every sender is gone: the session ended without a close of its own.
    let _ = ws.close(None).await;
}
