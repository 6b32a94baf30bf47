//! A session's events as a client reads them: the stored ones after its
//! position (a page at a time), then live ones, with no gap and no repeat;
//! a `Reset` first when its position is not in the stored numbering. In a
//! cluster, the events of a session another node runs are read from
//! storage as they are stored.

use std::time::Duration;

use futures_util::{stream, StreamExt};
use tokio_stream::wrappers::ReceiverStream;

use super::{sessions, Requester, Services};
use crate::actors::session::hub::to_stream_event;
use crate::actors::session::messages::Subscription;
use crate::db::models::event;
use crate::domain::event::NumberedEvent;
use crate::error::ServiceError;

/// Stored events read per query while replaying.
const REPLAY_PAGE: i64 = 500;

/// What a client's stream carries.
pub enum FeedItem {
    Event(NumberedEvent),
    Reset(Reset),
}

/// The client's position is not in this session's stored numbering: the
/// events after it were purged, or it is past the last one (`ahead`; a
/// reconnect then resumes from the head). The client reloads the history.
pub struct Reset {
    pub reason: &'static str,
    pub session_name: String,
    pub last_event_id: i64,
    pub ahead: bool,
}

impl Reset {
    fn new(session_name: &str, last_event_id: i64, ahead: bool) -> Reset {
        let reason = if ahead {
            "the requested id is past the session's last event; reload the history"
        } else {
            "events after the requested id are no longer stored; reload the history"
        };
        Reset {
            reason,
            session_name: session_name.to_owned(),
            last_event_id,
            ahead,
        }
    }
}

/// The events of session `name` after `after` (none: from now on), then
/// live. Subscribes first, then replays from the database, then drops live
/// events already replayed.
pub async fn feed(
    services: &Services,
    who: &Requester,
    name: &str,
    after: Option<i64>,
) -> Result<Feed, ServiceError> {
    if let Some(events) = from_storage(services, who, name, after).await? {
        return Ok(events);
    }
    let (
        session,
        Subscription {
            live,
            pending,
            last_seq,
        },
    ) = sessions::subscribe(services, who, name).await?;
    // Without a position the client starts live.
    let requested = after.unwrap_or(last_seq).max(0);
    // A position past the last event (a session deleted and made again under
    // the same name, a typo) is not this session's numbering: the client is
    // told the head and goes live from there, instead of waiting for an id
    // that may never come.
    let ahead = requested > last_seq;
    let after = requested.min(last_seq);
    let mut reset = ahead;
    let mut first_page = Vec::new();
    if after < last_seq {
        // The first page now: it decides whether a reset comes first.
        let (session_id, tenant) = (session.id.clone(), who.tenant().clone());
        let (rows, oldest) = crate::db::run(&services.pool, move |c| {
            let rows = event::list_after(c, &tenant, &session_id, after, last_seq, REPLAY_PAGE)?;
            Ok((rows, event::min_seq(c, &session_id)?))
        })
        .await?;
        // Events between the client's position and the oldest one kept
        // were purged (retention): it must reload the history.
        let first = rows
            .first()
            .map(|e| e.seq)
            .or(pending.first().map(|e| e.seq))
            .or(oldest);
        reset = first.is_none_or(|first| first > after + 1);
        first_page = rows;
    }
    let head = reset.then(|| Ok(FeedItem::Reset(Reset::new(&session.name, last_seq, ahead))));
    let replay = Replay {
        pool: services.pool.clone(),
        tenant: who.tenant().clone(),
        session_id: session.id.clone(),
        sent: after,
        upto: last_seq,
        more: first_page.len() as i64 == REPLAY_PAGE,
        page: first_page.iter().filter_map(to_stream_event).collect(),
        pending: Some(pending),
    };
    // Every event up to `last_seq` is stored or pending; later ones come live.
    let live = ReceiverStream::new(live)
        .filter(move |e| std::future::ready(e.seq > last_seq))
        .map(|e| Ok(FeedItem::Event(e)));
    let events = stream::iter(head)
        .chain(replay.stream().map(|e| e.map(FeedItem::Event)))
        .chain(live)
        // A replay that cannot go on ends the stream rather than leave a
        // gap: the client resumes with `Last-Event-ID`.
        .take_while(|e| std::future::ready(e.is_ok()))
        .filter_map(|e| std::future::ready(e.ok()))
        .boxed_local();
    Ok(events)
}

/// A session's events as a client reads them.
pub type Feed = futures_util::stream::LocalBoxStream<'static, FeedItem>;

/// In a cluster, the stream of a session another node runs: served here
/// from storage, woken by the database's notifications of new events
/// (`db::notify`), polling once a second when none come. `None` when the
/// session runs here or nowhere (this node subscribes to its own actor).
async fn from_storage(
    services: &Services,
    who: &Requester,
    name: &str,
    after: Option<i64>,
) -> Result<Option<Feed>, ServiceError> {
    let node = &services.node;
    if !node.is_clustered() {
        return Ok(None);
    }
    let session = sessions::load(services, who, name).await?;
    // Held here: the stream is this node's own.
    if services
        .held_leases
        .holds(who.tenant().as_str(), &session.name)
    {
        return Ok(None);
    }
    // Listening before reading: no wake-up falls between the two.
    let wake = node.event_wakeups();
    let (id, me) = (session.id.clone(), node.instance_id().to_owned());
    let (tenant, name) = (who.tenant().0.clone(), session.name.clone());
    let elsewhere = crate::db::run(&services.pool, move |c| {
        let runs_elsewhere =
            crate::db::models::lease::owner_of_named(c, &tenant, &name, &me)?.is_some();
        let stored = (event::max_seq(c, &id)?, event::min_seq(c, &id)?);
        Ok(runs_elsewhere.then_some(stored))
    })
    .await?;
    let Some((last_seq, oldest)) = elsewhere else {
        return Ok(None);
    };
    let requested = after.unwrap_or(last_seq).max(0);
    let ahead = requested > last_seq;
    let start = requested.min(last_seq);
    let purged = start < last_seq && oldest.is_none_or(|first| first > start + 1);
    let head =
        (ahead || purged).then(|| FeedItem::Reset(Reset::new(&session.name, last_seq, ahead)));
    let tail = Tail {
        pool: services.pool.clone(),
        tenant: who.tenant().clone(),
        session_id: session.id,
        sent: start,
        wake,
        page: std::collections::VecDeque::new(),
    };
    Ok(Some(
        stream::iter(head)
            .chain(tail.stream().map(FeedItem::Event))
            .boxed_local(),
    ))
}

/// How often a stream served from storage looks for new events when no
/// notification woke it (the listener is down, or a wake-up was missed).
const TAIL_POLL: Duration = Duration::from_secs(1);

/// A session's stored events from `sent` on, read as they are stored.
struct Tail {
    pool: crate::db::DbPool,
    tenant: crate::db::models::TenantId,
    session_id: String,
    sent: i64,
    wake: tokio::sync::broadcast::Receiver<String>,
    page: std::collections::VecDeque<NumberedEvent>,
}

impl Tail {
    fn stream(self) -> impl futures_util::Stream<Item = NumberedEvent> {
        stream::unfold(self, |mut tail| async move {
            let event = tail.next().await?;
            Some((event, tail))
        })
    }

    /// The next stored event; `None` once the session is gone (deleted) or
    /// storage cannot be read (the client resumes with `Last-Event-ID`).
    async fn next(&mut self) -> Option<NumberedEvent> {
        loop {
            if let Some(event) = self.page.pop_front() {
                self.sent = event.seq;
                return Some(event);
            }
            let (tenant, session_id, after) =
                (self.tenant.clone(), self.session_id.clone(), self.sent);
            let rows = crate::db::run(&self.pool, move |c| {
                let rows =
                    event::list_after(c, &tenant, &session_id, after, i64::MAX, REPLAY_PAGE)?;
                let exists = !rows.is_empty()
                    || crate::db::models::session::find_by_id(c, &session_id)?.is_some();
                Ok((rows, exists))
            })
            .await;
            match rows {
                Ok((rows, _)) if !rows.is_empty() => {
                    self.page = rows.iter().filter_map(to_stream_event).collect();
                    continue;
                }
                Ok((_, false)) => return None,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot read stored events to stream");
                    return None;
                }
            }
            self.woken().await;
        }
    }

    /// Waits for a notification about this session, or `TAIL_POLL`.
    async fn woken(&mut self) {
        let poll = tokio::time::sleep(TAIL_POLL);
        tokio::pin!(poll);
        loop {
            tokio::select! {
                heard = self.wake.recv() => match heard {
                    Ok(id) if id == self.session_id => return,
                    Ok(_) => {}
                    // Missed some: one of them may have been ours.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        poll.as_mut().await;
                        return;
                    }
                },
                () = &mut poll => return,
            }
        }
    }
}

/// The stored events a client missed, read a page at a time as it takes
/// them (a slow client never makes the server hold them all), then the
/// ones not yet stored when it subscribed.
struct Replay {
    pool: crate::db::DbPool,
    tenant: crate::db::models::TenantId,
    session_id: String,
    /// The last seq handed out.
    sent: i64,
    /// The last seq to replay (later ones come live).
    upto: i64,
    /// Whether storage may hold more after `page`.
    more: bool,
    page: std::collections::VecDeque<NumberedEvent>,
    pending: Option<Vec<NumberedEvent>>,
}

impl Replay {
    fn stream(self) -> impl futures_util::Stream<Item = Result<NumberedEvent, ()>> {
        stream::unfold(Some(self), |replay| async move {
            let mut replay = replay?;
            match replay.next().await {
                Ok(Some(event)) => Some((Ok(event), Some(replay))),
                Ok(None) => None,
                Err(()) => Some((Err(()), None)),
            }
        })
    }

    async fn next(&mut self) -> Result<Option<NumberedEvent>, ()> {
        loop {
            if let Some(event) = self.page.pop_front() {
                // Pending events may have been stored meanwhile: once each.
                if event.seq > self.sent {
                    self.sent = event.seq;
                    return Ok(Some(event));
                }
                continue;
            }
            if self.more {
                let (tenant, session_id) = (self.tenant.clone(), self.session_id.clone());
                let (after, upto) = (self.sent, self.upto);
                let rows = crate::db::run(&self.pool, move |c| {
                    event::list_after(c, &tenant, &session_id, after, upto, REPLAY_PAGE)
                })
                .await
                .map_err(|e| tracing::error!(error = %e, "cannot read stored events to replay"))?;
                self.more = rows.len() as i64 == REPLAY_PAGE;
                self.page = rows.iter().filter_map(to_stream_event).collect();
                continue;
            }
            match self.pending.take() {
                Some(pending) => self.page = pending.into(),
                None => return Ok(None),
            }
        }
    }
}
