//! A session's event numbering and live fan-out: every event gets the next
//! per-session `seq` and goes to each subscriber over its own bounded
//! channel. A subscriber whose buffer is full (or who left) is dropped; it
//! resumes from the stored events with `Last-Event-ID`.
//!
//! Events that announce a change are held back until it is stored (a
//! barrier): a turn's closing events (`done`, `error`, `job_status`, ...)
//! until the turn is, `job_status: running` until the job row says so,
//! `permission_resolved` until the approval row does. A client that sees
//! the event and then reads the history, the job or the approvals finds
//! them up to date. Later events wait behind held ones, so subscribers
//! still get every event in `seq` order.

use std::collections::VecDeque;

use serde_json::Value;
use tokio::sync::mpsc;

use super::turn::TurnEvent;
use crate::db::models::event::Event;

/// Events buffered per subscriber before it counts as too slow.
pub const SUBSCRIBER_BUFFER: usize = 1024;

/// Holds back events from its first one until released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    id: u64,
    first_seq: i64,
}

pub struct Hub {
    session_id: String,
    /// The seq the next event gets.
    pub next_seq: i64,
    subscribers: Vec<mpsc::Sender<TurnEvent>>,
    /// Open barriers, oldest (and lowest `first_seq`) first.
    barriers: VecDeque<Barrier>,
    /// Numbered events waiting behind a barrier, in `seq` order.
    outbox: VecDeque<TurnEvent>,
    barriers_made: u64,
}

impl Hub {
    pub fn new(session_id: String, next_seq: i64) -> Hub {
        Hub {
            session_id,
            next_seq,
            subscribers: Vec::new(),
            barriers: VecDeque::new(),
            outbox: VecDeque::new(),
            barriers_made: 0,
        }
    }

    /// Numbers an event and publishes it, or queues it behind an open
    /// barrier; returns the row to store.
    pub fn emit(&mut self, kind: &str, data: Value) -> (Event, TurnEvent) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let row = Event {
            session_id: self.session_id.clone(),
            seq,
            kind: kind.to_owned(),
            payload: data.to_string(),
            created_at: crate::db::now(),
        };
        let event = TurnEvent {
            seq,
            kind: kind.to_owned(),
            data,
        };
        if self.barriers.is_empty() {
            self.publish(&event);
        } else {
            self.outbox.push_back(event.clone());
        }
        (row, event)
    }

    /// Holds back every event emitted from now on until `release`.
    pub fn hold(&mut self) -> Barrier {
        self.barriers_made += 1;
        let barrier = Barrier {
            id: self.barriers_made,
            first_seq: self.next_seq,
        };
        self.barriers.push_back(barrier);
        barrier
    }

    /// Lifts a barrier and publishes what no older barrier still holds.
    pub fn release(&mut self, barrier: Barrier) {
        self.barriers.retain(|b| *b != barrier);
        let through = self.published_through();
        while self.outbox.front().is_some_and(|e| e.seq <= through) {
            if let Some(event) = self.outbox.pop_front() {
                self.publish(&event);
            }
        }
    }

    /// The seq of the last event let out (every older one was too).
    pub fn published_through(&self) -> i64 {
        self.barriers
            .front()
            .map_or(self.next_seq - 1, |b| b.first_seq - 1)
    }

    fn publish(&mut self, event: &TurnEvent) {
        if !self.subscribers.is_empty() {
            self.subscribers
                .retain(|s| s.try_send(event.clone()).is_ok());
        }
    }

    /// A new live subscriber; it sees every event published from now on.
    pub fn subscribe(&mut self) -> mpsc::Receiver<TurnEvent> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        self.subscribers.push(tx);
        rx
    }

    /// The seq of the last event emitted (0 when none).
    pub fn last_seq(&self) -> i64 {
        self.next_seq - 1
    }
}

/// A stored event as the stream sends it.
pub fn to_stream_event(row: &Event) -> TurnEvent {
    TurnEvent {
        seq: row.seq,
        kind: row.kind.clone(),
        data: serde_json::from_str(&row.payload).unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(rx: &mut mpsc::Receiver<TurnEvent>) -> Vec<i64> {
        let mut out = Vec::new();
        while let Ok(event) = rx.try_recv() {
            out.push(event.seq);
        }
        out
    }

    #[test]
    fn held_events_and_later_ones_wait_for_their_release_in_order() {
        let mut hub = Hub::new("s".into(), 1);
        let mut rx = hub.subscribe();
        hub.emit("delta", Value::Null);
        let first = hub.hold();
        hub.emit("done", Value::Null);
        hub.emit("turn_started", Value::Null);
        let second = hub.hold();
        hub.emit("error", Value::Null);
        assert_eq!(seqs(&mut rx), vec![1]);
        assert_eq!(hub.published_through(), 1);
        hub.release(first);
        assert_eq!(seqs(&mut rx), vec![2, 3]);
        assert_eq!(hub.published_through(), 3);
        hub.emit("delta", Value::Null);
        assert_eq!(seqs(&mut rx), Vec::<i64>::new());
        hub.release(second);
        assert_eq!(seqs(&mut rx), vec![4, 5]);
        hub.emit("delta", Value::Null);
        assert_eq!(seqs(&mut rx), vec![6]);
    }

    #[test]
    fn a_younger_barrier_released_first_still_waits_for_the_older() {
        let mut hub = Hub::new("s".into(), 1);
        let mut rx = hub.subscribe();
        let older = hub.hold();
        let empty = hub.hold();
        hub.release(empty);
        hub.emit("error", Value::Null);
        let younger = hub.hold();
        hub.emit("error", Value::Null);
        hub.release(younger);
        assert_eq!(seqs(&mut rx), Vec::<i64>::new());
        hub.release(older);
        assert_eq!(seqs(&mut rx), vec![1, 2]);
    }
}
