//! A simulated payment provider run by the test itself, so the test can
//! change its behaviour, read its charges, stop it and start it again on
//! the same port with the same memory.

use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;

use parley_provider::{self as provider, ProviderOptions, ProviderState};

pub struct TestProvider {
    pub port: u16,
    pub state: Arc<ProviderState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

fn run(
    listener: TcpListener,
    state: Arc<ProviderState>,
) -> (tokio::sync::oneshot::Sender<()>, JoinHandle<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let running = provider::serve(listener, state).expect("provider");
            let _ = rx.await;
            running.handle.stop(false).await;
        })
    });
    (tx, thread)
}

impl TestProvider {
    pub fn start(options: ProviderOptions) -> TestProvider {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(ProviderState::new(options));
        let (tx, thread) = run(listener, state.clone());
        TestProvider {
            port,
            state,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server (connections refused from now on); memory is kept.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            tokio::task::spawn_blocking(move || t.join())
                .await
                .expect("join")
                .expect("provider thread");
        }
    }

    /// Serves again on the same port with the same memory.
    pub fn restart(&mut self) {
        let listener =
            TcpListener::bind(("127.0.0.1", self.port)).expect("rebind the provider port");
        let (tx, thread) = run(listener, self.state.clone());
        self.stop = Some(tx);
        self.thread = Some(thread);
    }
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
