//! A session's event numbering and live fan-out: every event gets the next
//! per-session `seq` and goes to each subscriber over its own bounded
//! channel. A subscriber whose buffer is full (or who left) is dropped; it
//! resumes from the stored events with `Last-Event-ID`.

use serde_json::Value;
use tokio::sync::mpsc;

use super::turn::TurnEvent;
use crate::db::models::event::Event;

/// Events buffered per subscriber before it counts as too slow.
pub const SUBSCRIBER_BUFFER: usize = 1024;

pub struct Hub {
    session_id: String,
    /// The seq the next event gets.
    pub next_seq: i64,
    subscribers: Vec<mpsc::Sender<TurnEvent>>,
}

impl Hub {
    pub fn new(session_id: String, next_seq: i64) -> Hub {
        Hub {
            session_id,
            next_seq,
            subscribers: Vec::new(),
        }
    }

    /// Numbers an event and publishes it; returns the row to store.
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
        if !self.subscribers.is_empty() {
            self.subscribers
                .retain(|s| s.try_send(event.clone()).is_ok());
        }
        (row, event)
    }

    /// A new live subscriber; it sees every event emitted from now on.
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
