//! A session's event numbering and live fan-out: every event gets the next
//! per-session `seq` and goes to each subscriber over its own bounded
//! channel. A subscriber whose buffer is full (or who left) is dropped; it
//! resumes from the stored events with `Last-Event-ID`.
//!
//! Stored before told: what announces a change waits until the change is
//! stored. The stream is one ordered outbox; `gate` puts a gate in it,
//! opened by the write it stands for once applied (from the writer's queue,
//! no round trip through the actor). Everything behind a closed gate waits,
//! so subscribers get every event in `seq` order, and a client that sees
//! `done`, `job_status` or `permission_request` and then reads the history,
//! the job or the approvals finds them up to date. Live output (deltas,
//! tool calls) with no gate before it goes out at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use crate::db::models::event::Event;
use crate::domain::event::{NumberedEvent, StreamEvent};

/// Events buffered per subscriber before it counts as too slow.
pub const SUBSCRIBER_BUFFER: usize = 1024;

pub struct Hub {
    session_id: String,
    /// The seq the next event gets.
    next_seq: i64,
    stream: Arc<Mutex<Stream>>,
}

/// Subscribers and what waits behind a gate; shared with the writer's
/// queue, which opens the gates.
#[derive(Default)]
struct Stream {
    subscribers: Vec<mpsc::Sender<NumberedEvent>>,
    outbox: VecDeque<Entry>,
}

enum Entry {
    Event(NumberedEvent, Option<Client>),
    /// Tells a waiting client something (an approval to answer).
    Call(Box<dyn FnOnce() + Send>),
    Gate(Arc<AtomicBool>),
}

/// Opens its gate in the session's stream; the stream then lets out what
/// waited behind it (up to the next closed gate).
pub struct Gate {
    open: Arc<AtomicBool>,
    stream: Arc<Mutex<Stream>>,
}

impl Gate {
    pub fn open(self) {
        self.open.store(true, Ordering::SeqCst);
        lock(&self.stream).drain();
    }
}

/// A turn's own streaming client (`chat/stream`): dropped for good the first
/// time it cannot take an event, so it never sees a gap.
#[derive(Clone)]
pub struct Client(Arc<ClientInner>);

struct ClientInner {
    tx: mpsc::Sender<NumberedEvent>,
    dropped: AtomicBool,
}

impl Client {
    pub fn new(tx: mpsc::Sender<NumberedEvent>) -> Client {
        Client(Arc::new(ClientInner {
            tx,
            dropped: AtomicBool::new(false),
        }))
    }

    fn send(&self, event: NumberedEvent) {
        if !self.0.dropped.load(Ordering::Relaxed) && self.0.tx.try_send(event).is_err() {
            self.0.dropped.store(true, Ordering::Relaxed);
        }
    }
}

impl Stream {
    fn push(&mut self, entry: Entry) {
        self.outbox.push_back(entry);
        self.drain();
    }

    /// Lets out everything up to the first closed gate.
    fn drain(&mut self) {
        while let Some(entry) = self.outbox.front() {
            if let Entry::Gate(open) = entry {
                if !open.load(Ordering::SeqCst) {
                    return;
                }
            }
            match self.outbox.pop_front() {
                Some(Entry::Event(event, client)) => {
                    if !self.subscribers.is_empty() {
                        self.subscribers
                            .retain(|s| s.try_send(event.clone()).is_ok());
                    }
                    if let Some(client) = client {
                        client.send(event);
                    }
                }
                Some(Entry::Call(call)) => call(),
                Some(Entry::Gate(_)) | None => {}
            }
        }
    }
}

impl Hub {
    /// Numbering starts once `start_after` says where the stored events end.
    pub fn new(session_id: String) -> Hub {
        Hub {
            session_id,
            next_seq: 1,
            stream: Arc::default(),
        }
    }

    /// Events are numbered from `max_seq + 1` on.
    pub fn start_after(&mut self, max_seq: i64) {
        self.next_seq = max_seq + 1;
    }

    /// Numbers an event: the row to store and the event to publish.
    pub fn number(&mut self, event: StreamEvent) -> (Event, NumberedEvent) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let row = Event {
            session_id: self.session_id.clone(),
            seq,
            kind: event.name().to_owned(),
            payload: event.data_json(),
            created_at: crate::db::now(),
        };
        (row, NumberedEvent { seq, event })
    }

    /// Sends the event to the subscribers and to `client`, behind whatever
    /// gate is still closed.
    pub fn publish(&self, event: NumberedEvent, client: Option<Client>) {
        lock(&self.stream).push(Entry::Event(event, client));
    }

    /// Runs `call` in stream order: after what was published before it.
    pub fn then(&self, call: impl FnOnce() + Send + 'static) {
        lock(&self.stream).push(Entry::Call(Box::new(call)));
    }

    /// Holds back everything published from now on until the gate opens:
    /// open it once the write it stands for is applied.
    pub fn gate(&self) -> Gate {
        let open = Arc::new(AtomicBool::new(false));
        lock(&self.stream).push(Entry::Gate(open.clone()));
        Gate {
            open,
            stream: self.stream.clone(),
        }
    }

    /// A new live subscriber; it sees every event let out from now on.
    pub fn subscribe(&self) -> mpsc::Receiver<NumberedEvent> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        lock(&self.stream).subscribers.push(tx);
        rx
    }

    /// Whether any subscriber is still listening (the ones that left are
    /// forgotten).
    pub fn has_subscribers(&self) -> bool {
        let mut stream = lock(&self.stream);
        stream.subscribers.retain(|s| !s.is_closed());
        !stream.subscribers.is_empty()
    }

    /// The seq of the last event emitted (0 when none).
    pub fn last_seq(&self) -> i64 {
        self.next_seq - 1
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A stored event as the stream sends it; `None` (logged) for a row no
/// version of the server wrote.
pub fn to_stream_event(row: &Event) -> Option<NumberedEvent> {
    match StreamEvent::from_stored(&row.kind, &row.payload) {
        Ok(event) => Some(NumberedEvent {
            seq: row.seq,
            event,
        }),
        Err(e) => {
            tracing::warn!(session_id = %row.session_id, seq = row.seq, kind = %row.kind, error = %e, "a stored event cannot be read; skipped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta() -> StreamEvent {
        StreamEvent::Delta(crate::domain::event::TextDelta { text: "x".into() })
    }

    fn seqs(rx: &mut mpsc::Receiver<NumberedEvent>) -> Vec<i64> {
        let mut out = Vec::new();
        while let Ok(event) = rx.try_recv() {
            out.push(event.seq);
        }
        out
    }

    fn emit(hub: &mut Hub) {
        let (_, event) = hub.number(delta());
        hub.publish(event, None);
    }

    #[test]
    fn events_behind_a_closed_gate_wait_for_it_in_order() {
        let mut hub = Hub::new("s".into());
        let mut rx = hub.subscribe();
        emit(&mut hub);
        let first = hub.gate();
        emit(&mut hub);
        emit(&mut hub);
        let second = hub.gate();
        emit(&mut hub);
        assert_eq!(seqs(&mut rx), vec![1]);
        first.open();
        assert_eq!(seqs(&mut rx), vec![2, 3]);
        emit(&mut hub);
        assert_eq!(seqs(&mut rx), Vec::<i64>::new());
        second.open();
        assert_eq!(seqs(&mut rx), vec![4, 5]);
        emit(&mut hub);
        assert_eq!(seqs(&mut rx), vec![6]);
    }

    #[test]
    fn a_younger_gate_opened_first_still_waits_for_the_older() {
        let mut hub = Hub::new("s".into());
        let mut rx = hub.subscribe();
        let older = hub.gate();
        emit(&mut hub);
        let younger = hub.gate();
        emit(&mut hub);
        younger.open();
        assert_eq!(seqs(&mut rx), Vec::<i64>::new());
        older.open();
        assert_eq!(seqs(&mut rx), vec![1, 2]);
    }

    #[test]
    fn a_slow_turn_client_is_dropped_for_good() {
        let mut hub = Hub::new("s".into());
        let (tx, mut rx) = mpsc::channel(1);
        let client = Client::new(tx);
        for _ in 0..3 {
            let (_, event) = hub.number(delta());
            hub.publish(event, Some(client.clone()));
        }
        assert_eq!(seqs(&mut rx), vec![1]);
        let (_, event) = hub.number(delta());
        hub.publish(event, Some(client));
        assert_eq!(seqs(&mut rx), Vec::<i64>::new(), "no gap after a drop");
    }
}
