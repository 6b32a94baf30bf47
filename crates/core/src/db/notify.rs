//! Cross-node notifications on PostgreSQL. Identity changes (a key made or
//! revoked, a tenant's limits changed) go out on `cca_identity` from any
//! server on the database, so each drops its cached identities at once.
//!
//! Wake-ups for event streams (cluster only): every
//! insert of a session's events also runs `pg_notify('cca_events',
//! <session id>)` in its transaction, so the notification goes out at
//! commit, once the events can be read. A node's listener hears it and wakes
//! the streams it serves for that session, which then read the new events
//! from the table. The payload is only the id: notifications are capped at
//! 8000 bytes, and the table is the one source of the events and their order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::{Connection, RunQueryDsl};
use tokio::sync::broadcast;

pub const CHANNEL: &str = "cca_events";
pub const IDENTITY_CHANNEL: &str = "cca_identity";

/// How often the listener looks for notifications already received (no
/// query is sent; `PQconsumeInput` reads what the socket holds).
const LISTEN_POLL: Duration = Duration::from_millis(20);
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

static NOTIFY_EVENTS: AtomicBool = AtomicBool::new(false);

/// From now on, event inserts notify (a node of a cluster; a server alone
/// has no one to tell, and NOTIFY serialises commits).
pub fn enable_event_notifications() {
    NOTIFY_EVENTS.store(true, Ordering::Relaxed);
}

/// Tells the listeners of every node that `session_id` has new events (at
/// the commit of the caller's transaction). No-op unless enabled.
pub fn notify_events(conn: &mut diesel::PgConnection, session_id: &str) -> diesel::QueryResult<()> {
    if !NOTIFY_EVENTS.load(Ordering::Relaxed) {
        return Ok(());
    }
    diesel::sql_query(format!("SELECT pg_notify('{CHANNEL}', $1)"))
        .bind::<diesel::sql_types::Text, _>(session_id)
        .execute(conn)?;
    Ok(())
}

/// Tells every server listening on this database that keys or tenants
/// changed. Nothing to do on SQLite (one server per database file).
pub fn notify_identity_change(conn: &mut super::DbConnection) -> super::DbResult<()> {
    if let super::DbConnection::Postgres(pg) = conn {
        diesel::sql_query(format!("SELECT pg_notify('{IDENTITY_CHANNEL}', '')")).execute(pg)?;
    }
    Ok(())
}

/// Where notifications go: event wake-ups (cluster only) and identity
/// changes.
#[derive(Clone)]
pub struct Listeners {
    pub events: Option<broadcast::Sender<String>>,
    pub identity_changed: std::sync::Arc<dyn Fn() + Send + Sync>,
    /// `false` once the server that listens is gone: the listener then
    /// closes its connection and ends.
    pub wanted: std::sync::Arc<dyn Fn() -> bool + Send + Sync>,
}

/// Listens on its own connection, on a thread of its own, for as long as
/// the process runs. A lost connection is made again (streams poll
/// meanwhile, see `api::control`; cached identities are dropped, since
/// changes may have been missed).
pub fn listen(database_url: String, listeners: Listeners) {
    let spawned = std::thread::Builder::new()
        .name("db-listener".into())
        .spawn(move || loop {
            match listen_until_lost(&database_url, &listeners) {
                Ok(()) => return,
                Err(_) if !(listeners.wanted)() => return,
                Err(e) => {
                    (listeners.identity_changed)();
                    tracing::warn!(error = %e, "the database listener lost its connection; streams poll until it is back");
                    std::thread::sleep(RECONNECT_AFTER);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the database listener; streams poll and cached identities expire on their own");
    }
}

/// `Ok` only when nobody listens any more (the server is gone).
fn listen_until_lost(url: &str, listeners: &Listeners) -> Result<(), String> {
    // As the pool's connections: nothing of libpq's may crash the process's
    // exit while this thread still holds its connection (see `pg_exit`).
    super::pg_exit::skip_openssl_exit_cleanup();
    let gss_env = std::env::var("PGGSSENCMODE").ok();
    let url = super::pg_exit::without_gss_by_default(url, gss_env.as_deref());
    let mut conn = diesel::PgConnection::establish(&url).map_err(|e| e.to_string())?;
    diesel::sql_query(format!("LISTEN {IDENTITY_CHANNEL}"))
        .execute(&mut conn)
        .map_err(|e| e.to_string())?;
    if listeners.events.is_some() {
        diesel::sql_query(format!("LISTEN {CHANNEL}"))
            .execute(&mut conn)
            .map_err(|e| e.to_string())?;
    }
    // Changes made before this connection listened were not heard.
    (listeners.identity_changed)();
    loop {
        if !(listeners.wanted)() {
            return Ok(());
        }
        for notification in conn.notifications_iter() {
            let notification = notification.map_err(|e| e.to_string())?;
            if notification.channel == IDENTITY_CHANNEL {
                (listeners.identity_changed)();
            } else if let Some(events) = &listeners.events {
                // No receiver now is fine: nobody streams that session here.
                let _ = events.send(notification.payload);
            }
        }
        std::thread::sleep(LISTEN_POLL);
    }
}
