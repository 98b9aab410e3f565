//! WAL checkpoints on a thread of their own. SQLite's automatic checkpoint
//! runs inside whichever commit pushes the WAL past 1,000 pages: that commit
//! then copies the pages into the database file and fsyncs it, and every
//! message waiting on it was acked 10 to 30 ms late (the p99.9 of
//! `parley load chat`). Here this thread runs a PASSIVE checkpoint (it never
//! blocks the writer or readers) every `every` from its own connection, and
//! the writer restarts the WAL from its beginning once a checkpoint has
//! caught up. The writer's own automatic checkpoint stays as a backstop at
//! 64 MiB of WAL (see `schema::configure_writer`).

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

use crate::store::StoreError;
use crate::store::StoreResult;

/// Stops the thread when dropped (with the last clone of the store).
pub struct Checkpointer {
    _stop: mpsc::SyncSender<()>,
}

pub fn spawn(path: &Path, every: Duration) -> StoreResult<Checkpointer> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let (stop, stopped) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("parley-sqlite-checkpoint".into())
        .spawn(move || {
            // Disconnected (the store is gone) ends the loop; a timeout is a tick.
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let started = std::time::Instant::now();
                let result: Result<(i64, i64, i64), _> =
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    });
                match result {
                    Ok((_, wal_pages, _)) => {
                        metrics::histogram!("parley_store_checkpoint_seconds")
                            .record(started.elapsed().as_secs_f64());
                        metrics::gauge!("parley_store_wal_pages").set(wal_pages as f64);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "WAL checkpoint failed; retried next tick")
                    }
                }
            }
        })
        .map_err(|e| StoreError::backend("cannot start the checkpoint thread").caused_by(e))?;
    Ok(Checkpointer { _stop: stop })
}
