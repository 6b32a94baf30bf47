//! Cross-node wake-ups for event streams (PostgreSQL, cluster only): every
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

/// Listens on its own connection, on a thread of its own, for as long as
/// the process runs; each notification's session id goes to `wake`. A lost
/// connection is made again (streams poll meanwhile; see `api::control`).
pub fn listen_events(database_url: String, wake: broadcast::Sender<String>) {
    let spawned = std::thread::Builder::new()
        .name("event-listener".into())
        .spawn(move || loop {
            match listen_until_lost(&database_url, &wake) {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "the event listener lost its connection; streams poll until it is back");
                    std::thread::sleep(RECONNECT_AFTER);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the event listener; streams poll");
    }
}

/// `Ok` only when nobody can hear wake-ups any more (the process ends).
fn listen_until_lost(url: &str, wake: &broadcast::Sender<String>) -> Result<(), String> {
    let mut conn = diesel::PgConnection::establish(url).map_err(|e| e.to_string())?;
    diesel::sql_query(format!("LISTEN {CHANNEL}"))
        .execute(&mut conn)
        .map_err(|e| e.to_string())?;
    loop {
        for notification in conn.notifications_iter() {
            let notification = notification.map_err(|e| e.to_string())?;
            // No receiver now is fine: nobody streams that session here.
            let _ = wake.send(notification.payload);
        }
        std::thread::sleep(LISTEN_POLL);
    }
}
