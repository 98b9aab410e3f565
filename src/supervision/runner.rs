//! The runner: drives one actor's `ContextFut` under `catch_unwind`, so a
//! panic anywhere in the actor (a handler, `started`, `stopping`, `stopped`,
//! a spawned future) is a failure of that actor alone. On a restart the same
//! context is restarted in place: the mailbox and every `Addr` stay valid,
//! queued messages wait for the new incarnation, and `Supervised::restarting`
//! gives the actor fresh state before `started` recovers it.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use actix::dev::{channel, ContextFut};
use actix::prelude::*;
use tokio::sync::mpsc;

use std::cell::RefCell;
use std::rc::Rc;

use super::failure::{supervised, supervised_with, Failure, PoisonBook};
use super::supervisor::{ChildId, Decision, Exit, Supervisor};

/// Orders from the supervisor to a child's runner.
#[derive(Debug)]
pub enum Command {
    /// Restart in place after `delay` (a sibling failed, or the parent
    /// restarts this subtree).
    Restart { delay: Duration },
    /// Stop the actor (running `stopping`/`stopped`) and wait for a restart
    /// or a shutdown.
    Hold,
    /// Stop the actor and end the runner.
    Shutdown,
}

/// How long a runner waits for a graceful stop before killing the actor.
const STOP_GRACE_POLLS: usize = 64;

pub(super) fn start<A>(
    actor: A,
    arbiter: Option<&ArbiterHandle>,
    supervisor: Supervisor,
    id: ChildId,
    commands: mpsc::Receiver<Command>,
    poison_tries: u32,
    mailbox: usize,
) -> Addr<A>
where
    A: Actor<Context = Context<A>> + Supervised + Send,
{
    let (tx, rx) = channel::channel(mailbox);
    let run = move || {
        let ctx = Context::with_receiver(rx);
        let fut = ctx.into_future(actor);
        let book = Rc::new(RefCell::new(PoisonBook::new(poison_tries)));
        actix_rt::spawn(run(fut, supervisor, id, commands, book));
    };
    match arbiter {
        Some(a) => {
            a.spawn_fn(run);
        }
        None => run(),
    }
    Addr::new(tx)
}

enum Event {
    Ended,
    Failed(Failure),
    Command(Command),
}

/// Polls the actor until it ends, fails or gets a command.
fn step<'a, A>(
    fut: &'a mut ContextFut<A, Context<A>>,
    commands: &'a mut mpsc::Receiver<Command>,
    book: &'a Rc<RefCell<PoisonBook>>,
) -> impl Future<Output = Event> + 'a
where
    A: Actor<Context = Context<A>>,
{
    let mut commands_open = true;
    poll_fn(move |cx| {
        if commands_open {
            match commands.poll_recv(cx) {
                Poll::Ready(Some(c)) => return Poll::Ready(Event::Command(c)),
                Poll::Ready(None) => commands_open = false,
                Poll::Pending => {}
            }
        }
        match supervised_with(book, || Pin::new(&mut *fut).poll(cx)) {
            Ok(Poll::Ready(())) => Poll::Ready(Event::Ended),
            Ok(Poll::Pending) => Poll::Pending,
            Err(f) => Poll::Ready(Event::Failed(f)),
        }
    })
}

/// Stops the actor gracefully (its `stopping`/`stopped` run); a panic there
/// or an actor that will not stop is killed (`terminate`: no more callbacks).
async fn stop_actor<A>(fut: &mut ContextFut<A, Context<A>>)
where
    A: Actor<Context = Context<A>>,
{
    if supervised(|| fut.ctx().stop()).is_err() {
        fut.ctx().terminate();
        return;
    }
    let mut polls = 0;
    let done = poll_fn(|cx| {
        polls += 1;
        match supervised(|| Pin::new(&mut *fut).poll(cx)) {
            Ok(Poll::Ready(())) => Poll::Ready(true),
            Ok(Poll::Pending) if polls < STOP_GRACE_POLLS => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            _ => Poll::Ready(false),
        }
    })
    .await;
    if !done {
        fut.ctx().terminate();
    }
}

async fn run<A>(
    mut fut: ContextFut<A, Context<A>>,
    supervisor: Supervisor,
    id: ChildId,
    mut commands: mpsc::Receiver<Command>,
    book: Rc<RefCell<PoisonBook>>,
) where
    A: Actor<Context = Context<A>> + Supervised,
{
    let failed = |f: Failure| {
        if let Some(fp) = f.fingerprint {
            if book.borrow_mut().record(fp) {
                tracing::warn!(
                    trace_id = f.trace_id.map(|t| t.to_string()).unwrap_or_default(),
                    "poison message: it crashed its actor too often; further deliveries are refused"
                );
            }
        }
        supervisor.child_exited(id, Exit::Failed(f))
    };
    let mut held = false;
    loop {
        let event = if held {
            match commands.recv().await {
                Some(c) => Event::Command(c),
                None => Event::Command(Command::Shutdown),
            }
        } else {
            step(&mut fut, &mut commands, &book).await
        };
        let mut decision = match event {
            Event::Ended => supervisor.child_exited(id, Exit::Normal),
            Event::Failed(f) => failed(f),
            Event::Command(Command::Restart { delay }) => {
                // A sibling failed (or the subtree restarts): this one stops
                // properly (`stopping`/`stopped` run) before it starts afresh.
                if !held {
                    stop_actor(&mut fut).await;
                }
                Decision::Restart { delay }
            }
            Event::Command(Command::Hold) => {
                if !held {
                    stop_actor(&mut fut).await;
                }
                Decision::Hold
            }
            Event::Command(Command::Shutdown) => {
                if !held {
                    stop_actor(&mut fut).await;
                }
                Decision::Stop
            }
        };
        // A panic inside `restarting` is a failure like any other: decide again.
        loop {
            match decision {
                Decision::Restart { delay } => {
                    // Always through a timer, so a crash loop cannot starve the thread.
                    tokio::time::sleep(delay).await;
                    match supervised(|| fut.restart()) {
                        Ok(true) => {
                            held = false;
                            supervisor.child_restarted(id);
                        }
                        Ok(false) => {
                            // Nobody holds an address any more: nothing to serve.
                            supervisor.child_gone(id);
                            return;
                        }
                        Err(f) => {
                            decision = failed(f);
                            continue;
                        }
                    }
                }
                Decision::Hold => held = true,
                Decision::Stop => {
                    // Dropping a live context runs its `stopped`; keep a panic
                    // there from escaping (it would abort the process).
                    let _ = supervised(move || drop(fut));
                    supervisor.child_gone(id);
                    return;
                }
            }
            break;
        }
    }
}
