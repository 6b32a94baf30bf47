//! A session's database writes, applied one at a time in the order they were
//! made, off the actor's thread. Ordering matters: a job is marked running
//! before it can be marked done, and a turn is stored before its client is
//! answered.

use tokio::sync::{mpsc, oneshot};

use crate::db::{self, DbConnection, DbPool, DbResult};

type Write = Box<dyn FnOnce(&mut DbConnection) -> DbResult<bool> + Send>;
type Then = Box<dyn FnOnce(DbResult<bool>) + Send>;

struct Op {
    /// `None`: nothing to write, only `then` once the writes before it are.
    write: Option<Write>,
    then: Option<Then>,
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Op>,
}

impl Writer {
    pub fn start(pool: DbPool, session: String) -> Writer {
        let (tx, mut rx) = mpsc::unbounded_channel::<Op>();
        actix::spawn(async move {
            while let Some(op) = rx.recv().await {
                let result = match op.write {
                    Some(write) => db::run(&pool, write).await,
                    None => Ok(false),
                };
                if let Err(e) = &result {
                    tracing::error!(session = %session, error = %e, "a session write failed");
                }
                if let Some(then) = op.then {
                    then(result);
                }
            }
        });
        Writer { tx }
    }

    /// Runs `f` after every write queued before it; resolves to its result
    /// (the caller reports an error).
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> DbResult<T> + Send + 'static,
    ) -> impl std::future::Future<Output = DbResult<T>> + 'static {
        let (tx, rx) = oneshot::channel();
        self.write(
            move |c| {
                let _ = tx.send(f(c));
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
        write: impl FnOnce(&mut DbConnection) -> DbResult<bool> + Send + 'static,
        then: Option<Box<dyn FnOnce(DbResult<bool>) + Send>>,
    ) {
        self.send(Op {
            write: Some(Box::new(write)),
            then,
        });
    }

    /// Runs `then` once every write queued before it is applied (no
    /// database connection is taken for it).
    pub fn after_pending(&self, then: impl FnOnce() + Send + 'static) {
        self.send(Op {
            write: None,
            then: Some(Box::new(move |_| then())),
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

    fn send(&self, op: Op) {
        if let Err(mpsc::error::SendError(op)) = self.tx.send(op) {
            if let Some(then) = op.then {
                then(Err(db::DbError::Join("the session writer stopped".into())));
            }
        }
    }
}
