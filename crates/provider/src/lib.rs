//! The simulated payment provider (`parley provider`, and by default one
//! in-process on a loopback port): charges, refunds and lookups by
//! idempotency key over HTTP, with settings for latency, failures, declines
//! and outages. Idempotency works as Stripe's does: the same key with the
//! same body gets the stored answer again; the same key with another body
//! gets 409.

mod routes;
mod state;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

pub use state::{Charge, ProviderBehaviour, ProviderState};

/// How the simulated provider behaves; every field a `parley provider` flag.
#[derive(Debug, Clone, Default)]
pub struct ProviderOptions {
    pub latency: Duration,
    /// 0.0..=1.0: share of requests answered 503 without doing anything.
    pub failure_rate: f64,
    /// 0.0..=1.0: share of new charges declined (a stored answer).
    pub decline_rate: f64,
    /// Seconds since start during which every request gets 503.
    pub outages: Vec<(u64, u64)>,
    /// At most this many idempotency keys are kept; new keys beyond get 503.
    pub max_keys: usize,
}

/// A running provider: its port and a handle to stop it.
pub struct RunningProvider {
    pub port: u16,
    pub handle: ServerHandle,
    pub state: Arc<ProviderState>,
}

/// Binds `listener` and serves `state` on it (in the current actix system).
pub fn serve(listener: TcpListener, state: Arc<ProviderState>) -> std::io::Result<RunningProvider> {
    let port = listener.local_addr()?.port();
    let data = web::Data::from(state.clone());
    let server =
        HttpServer::new(move || App::new().app_data(data.clone()).configure(routes::routes))
            .workers(1)
            .disable_signals()
            .shutdown_timeout(1)
            .listen(listener)?
            .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(RunningProvider {
        port,
        handle,
        state,
    })
}
