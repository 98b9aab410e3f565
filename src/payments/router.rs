//! Starts payment actors (one per unfinished payment) under the payments
//! supervisor, and resumes every unfinished saga at start-up.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::Addr;

use crate::actors::payment::PaymentActor;
use crate::domain::PaymentId;
use crate::supervision::policy::RestartType;
use crate::supervision::{ChildSpec, Supervisor};

use super::saga::SagaDeps;

#[derive(Clone)]
pub struct PaymentRouter {
    inner: Arc<Inner>,
}

struct Inner {
    supervisor: Supervisor,
    deps: SagaDeps,
    /// Running payment actors; at most `max_active` (the rest wait in the
    /// store and are resumed at the next start-up or on demand).
    running: Mutex<HashMap<PaymentId, Addr<PaymentActor>>>,
    max_active: usize,
    /// Set at shutdown: no saga starts any more (they resume at the next start).
    closing: AtomicBool,
}

impl PaymentRouter {
    pub fn new(supervisor: Supervisor, deps: SagaDeps, max_active: usize) -> Self {
        PaymentRouter {
            inner: Arc::new(Inner {
                supervisor,
                deps,
                running: Mutex::new(HashMap::new()),
                max_active,
                closing: AtomicBool::new(false),
            }),
        }
    }

    /// Starts the saga of `id` unless it runs already; false when full.
    pub fn start(&self, id: PaymentId) -> bool {
        if self.inner.closing.load(Ordering::Acquire) {
            return false;
        }
        let mut running = self.inner.running.lock();
        if running.get(&id).is_some_and(|a| a.connected()) {
            return true;
        }
        if running.len() >= self.inner.max_active {
            return false;
        }
        let actor = PaymentActor::new(id, self.inner.deps.clone(), self.clone());
        let spec = ChildSpec::new(
            format!("payment:{id}"),
            "payment",
            RestartType::Transient,
            16,
        );
        running.insert(id, self.inner.supervisor.spawn(spec, actor, None));
        true
    }

    /// The server is shutting down: sagas stop where they are (their log
    /// says where) and none is started again.
    pub fn close(&self) {
        self.inner.closing.store(true, Ordering::Release);
    }

    pub(crate) fn finished(&self, id: PaymentId) {
        self.inner.running.lock().remove(&id);
    }

    pub fn active(&self) -> usize {
        self.inner.running.lock().len()
    }

    /// Cluster mode, three times per lease: starts the unfinished sagas that
    /// do not run here; each actor takes the saga's lease first and stops at
    /// once if a live node holds it, so only orphans (a dead node's, or
    /// ones that could not start) resume.
    pub async fn sweep(&self) -> Result<(), crate::store::StoreError> {
        self.start_unfinished(tracing::Level::DEBUG)
            .await
            .map(|_| ())
    }

    /// Resumes every unfinished saga from its log (start-up).
    pub async fn resume_all(&self) -> Result<usize, crate::store::StoreError> {
        self.start_unfinished(tracing::Level::INFO).await
    }

    /// Starts (if not running here) each unfinished payment, up to
    /// `max_active`; returns how many there were.
    async fn start_unfinished(
        &self,
        level: tracing::Level,
    ) -> Result<usize, crate::store::StoreError> {
        let unfinished = self
            .inner
            .deps
            .store
            .payments(crate::store::PaymentFilter {
                status: None,
                unfinished: true,
                limit: self.inner.max_active,
            })
            .await?;
        let n = unfinished.len();
        for p in unfinished {
            if level == tracing::Level::INFO {
                tracing::info!(payment = %p.id, step = p.step.as_str(), "resuming saga");
            } else {
                tracing::debug!(payment = %p.id, step = p.step.as_str(), "offering an unfinished saga");
            }
            self.start(p.id);
        }
        Ok(n)
    }
}
