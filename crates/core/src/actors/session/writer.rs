//! A session's database writes, applied one at a time in the order they were
//! made, off the actor's thread. Ordering matters: a job is marked running
//! before it can be marked done, and a turn is stored before its client is
//! answered. A write that fails (the database locked or away) is tried
//! again with backoff for up to `STORE_RETRY_SECONDS`; a turn's record that
//! still cannot be stored goes to the spool (see `db::spool`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use diesel::Connection;

use crate::db::models::lease::{self, Lease};
use crate::db::{self, DbConnection, DbPool, DbResult};

type Write = Box<dyn FnMut(&mut DbConnection) -> DbResult<bool> + Send>;
type Then = Box<dyn FnOnce(DbResult<bool>) + Send>;
/// Keeps what a write would have stored when the database stays away;
/// `true` once it is kept.
type Fallback = Box<dyn FnOnce() -> bool + Send>;

/// The first wait between tries; doubled up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

struct Op {
    /// `None`: nothing to write, only `then` once the writes before it are.
    write: Option<Write>,
    then: Option<Then>,
    fallback: Option<Fallback>,
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Op>,
    /// Ops queued and not yet done: an actor with writes in flight stays.
    pending: Arc<AtomicUsize>,
}

/// Runs `write` on a pooled connection, handing the closure back so it can
/// be tried again. Under a cluster `lease`, in one transaction with the
/// check that the lease is still this node's (see `lease::hold`).
async fn attempt(pool: &DbPool, lease: Option<Lease>, mut write: Write) -> (Write, DbResult<bool>) {
    let pool = pool.clone();
    let joined = crate::blocking::spawn(move || {
        let result = pool
            .get()
            .map_err(db::DbError::from)
            .and_then(|mut c| match &lease {
                None => write(&mut c),
                Some(lease) => c.transaction(|c| {
                    lease::hold(c, lease)?;
                    write(c)
                }),
            });
        (write, result)
    })
    .await;
    match joined {
        Ok(done) => done,
        // A panicking write is not tried again.
        Err(e) => (
            Box::new(|_: &mut DbConnection| Ok(false)),
            Err(db::DbError::Join(e.to_string())),
        ),
    }
}

impl Writer {
    pub fn start(
        pool: DbPool,
        session: String,
        retry_for: Duration,
        lease: Option<Lease>,
    ) -> Writer {
        let (tx, mut rx) = mpsc::unbounded_channel::<Op>();
        let pending = Arc::new(AtomicUsize::new(0));
        let done = pending.clone();
        actix::spawn(async move {
            while let Some(op) = rx.recv().await {
                let mut result = Ok(false);
                if let Some(mut write) = op.write {
                    let deadline = Instant::now() + retry_for;
                    let mut backoff = FIRST_BACKOFF;
                    loop {
                        let (back, tried) = attempt(&pool, lease.clone(), write).await;
                        write = back;
                        result = tried;
                        let retryable = matches!(&result, Err(e) if e.is_retryable());
                        if !retryable || Instant::now() + backoff > deadline {
                            break;
                        }
                        if let Err(e) = &result {
                            tracing::warn!(session = %session, error = %e, "a session write failed; trying again");
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
                if let Err(e) = &result {
                    tracing::error!(session = %session, error = %e, "a session write failed");
                    // A write refused for a lost lease is not kept: the
                    // session's new holder writes from here on.
                    let lost = matches!(e, db::DbError::LeaseLost(_));
                    if let Some(fallback) = op.fallback.filter(|_| !lost) {
                        if crate::blocking::run(fallback).await.unwrap_or(false) {
                            result = Ok(false);
                        }
                    }
                }
                if let Some(then) = op.then {
                    then(result);
                }
                done.fetch_sub(1, Ordering::SeqCst);
            }
        });
        Writer { tx, pending }
    }

    /// Runs `f` after every write queued before it; resolves to its result
    /// (the caller reports an error).
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> DbResult<T> + Send + 'static,
    ) -> impl std::future::Future<Output = DbResult<T>> + 'static {
        let (tx, rx) = oneshot::channel();
        let mut call = Some((f, tx));
        // Run once: its own error is the caller's to report, not to retry.
        self.write(
            move |c| {
                if let Some((f, tx)) = call.take() {
                    let _ = tx.send(f(c));
                }
                Ok(false)
            },
            None,
        );
        async move {
            rx.await.unwrap_or_else(|_| {
                Err(db::DbError::Join(
                    "the session's database call did not run".into(),
                ))
            })
        }
    }

    /// Queues a write; `then` runs with its result once it is applied.
    pub fn write(
        &self,
        write: impl FnMut(&mut DbConnection) -> DbResult<bool> + Send + 'static,
        then: Option<Box<dyn FnOnce(DbResult<bool>) + Send>>,
    ) {
        self.send(Op {
            write: Some(Box::new(write)),
            then,
            fallback: None,
        });
    }

    /// Like `write`, with `fallback` keeping what it would have stored when
    /// the database stays away longer than the retries; `then` then hears
    /// success, the write being kept for later.
    pub fn write_or_keep(
        &self,
        write: impl FnMut(&mut DbConnection) -> DbResult<bool> + Send + 'static,
        fallback: impl FnOnce() -> bool + Send + 'static,
        then: Option<Box<dyn FnOnce(DbResult<bool>) + Send>>,
    ) {
        self.send(Op {
            write: Some(Box::new(write)),
            then,
            fallback: Some(Box::new(fallback)),
        });
    }

    /// Runs `then` once every write queued before it is applied (no
    /// database connection is taken for it).
    pub fn after_pending(&self, then: impl FnOnce() + Send + 'static) {
        self.send(Op {
            write: None,
            then: Some(Box::new(move |_| then())),
            fallback: None,
        });
    }

    /// Resolves once every write queued before it is applied.
    pub fn flushed(&self) -> impl std::future::Future<Output = ()> + 'static {
        let (tx, rx) = oneshot::channel();
        self.after_pending(move || {
            let _ = tx.send(());
        });
        async move {
            let _ = rx.await;
        }
    }

    /// Whether every op queued so far is done.
    pub fn is_idle(&self) -> bool {
        self.pending.load(Ordering::SeqCst) == 0
    }

    fn send(&self, op: Op) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if let Err(mpsc::error::SendError(op)) = self.tx.send(op) {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            if let Some(then) = op.then {
                then(Err(db::DbError::Join("the session writer stopped".into())));
            }
        }
    }
}
