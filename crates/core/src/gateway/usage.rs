//! Reads the usage of a model call out of its answer as it streams past:
//! `message_start` and `message_delta` events of an SSE answer, or the
//! `usage` of a JSON one. Nothing is buffered but the current line (or a
//! bounded JSON body).

use serde_json::Value;

/// JSON answers larger than this are not parsed for usage (a Messages API
/// answer with usage is far smaller).
const MAX_JSON_BODY: usize = 8 * 1024 * 1024;

/// What the model reported for one call.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallUsage {
    pub model: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
}

impl CallUsage {
    /// Takes the counts present in a `usage` object: the API reports them
    /// cumulatively, so a later value replaces an earlier one.
    fn take(&mut self, usage: &Value) {
        let fields: [(&str, &mut i64); 4] = [
            ("input_tokens", &mut self.input_tokens),
            ("output_tokens", &mut self.output_tokens),
            (
                "cache_creation_input_tokens",
                &mut self.cache_creation_input_tokens,
            ),
            ("cache_read_input_tokens", &mut self.cache_read_input_tokens),
        ];
        for (name, slot) in fields {
            if let Some(n) = usage[name].as_i64() {
                *slot = n;
            }
        }
    }
}

/// Fed the answer's bytes in order; `finish` gives the usage.
#[derive(Debug)]
pub struct UsageTap {
    sse: bool,
    /// The unfinished SSE line, or the JSON body so far.
    buf: Vec<u8>,
    usage: CallUsage,
}

impl UsageTap {
    pub fn new(sse: bool) -> UsageTap {
        UsageTap {
            sse,
            buf: Vec::new(),
            usage: CallUsage::default(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.sse {
            if self.buf.len() + chunk.len() <= MAX_JSON_BODY {
                self.buf.extend_from_slice(chunk);
            }
            return;
        }
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.buf.extend_from_slice(&rest[..end]);
            let line = std::mem::take(&mut self.buf);
            self.line(&line);
            rest = &rest[end + 1..];
        }
        self.buf.extend_from_slice(rest);
    }

    fn line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        // Only the two events that carry usage are parsed.
        let is_usage_event = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
        if !is_usage_event(b"message_start") && !is_usage_event(b"message_delta") {
            return;
        }
        let Ok(event) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        match event["type"].as_str() {
            Some("message_start") => {
                let message = &event["message"];
                if let Some(model) = message["model"].as_str() {
                    self.usage.model = Some(model.to_owned());
                }
                self.usage.take(&message["usage"]);
            }
            Some("message_delta") => self.usage.take(&event["usage"]),
            _ => {}
        }
    }

    /// What the answer has reported so far.
    pub fn usage(&self) -> &CallUsage {
        &self.usage
    }

    pub fn finish(mut self) -> CallUsage {
        if self.sse {
            let line = std::mem::take(&mut self.buf);
            self.line(&line);
        } else if let Ok(body) = serde_json::from_slice::<Value>(&self.buf) {
            if let Some(model) = body["model"].as_str() {
                self.usage.model = Some(model.to_owned());
            }
            self.usage.take(&body["usage"]);
        }
        self.usage
    }
}

/// The usage of every model call of one CLI process, and who pays for it.
///
/// Each call is paid exactly once, token by token, in one of two ways:
/// - while a turn of the process is open, its calls (a background process's
///   included) wait in the meter; the turn takes what they have used so far
///   when it ends (`close_turn`), as the gateway's floor under the CLI's
///   own reported cost;
/// - what a call uses while no turn is open (it ran between turns, or it
///   was still streaming when its turn ended) is handed back by
///   `finish_call`, for the gateway to charge to the tenant directly.
///
/// The part already paid of each call (`settled`) only grows, under the
/// meter's one lock, so the two ways never take the same tokens twice and
/// between them take all of them.
#[derive(Debug, Clone, Default)]
pub struct UsageMeter {
    state: std::sync::Arc<std::sync::Mutex<MeterState>>,
}

#[derive(Debug, Default)]
struct MeterState {
    turn_open: bool,
    next_id: u64,
    /// Calls not wholly paid yet: still streaming, or finished in a turn
    /// that has not ended.
    calls: std::collections::BTreeMap<u64, MeteredCall>,
}

#[derive(Debug, Default)]
struct MeteredCall {
    /// What the model has reported so far.
    usage: CallUsage,
    /// What of it has been paid.
    settled: CallUsage,
    finished: bool,
}

impl MeteredCall {
    /// The usage not paid yet, now marked paid.
    fn settle(&mut self) -> CallUsage {
        let unpaid = self.usage.minus(&self.settled);
        self.settled = self.settled.max(&self.usage);
        unpaid
    }
}

impl CallUsage {
    /// The tokens of `self` beyond `paid`, field by field (never negative).
    fn minus(&self, paid: &CallUsage) -> CallUsage {
        CallUsage {
            model: self.model.clone(),
            input_tokens: (self.input_tokens - paid.input_tokens).max(0),
            output_tokens: (self.output_tokens - paid.output_tokens).max(0),
            cache_creation_input_tokens: (self.cache_creation_input_tokens
                - paid.cache_creation_input_tokens)
                .max(0),
            cache_read_input_tokens: (self.cache_read_input_tokens - paid.cache_read_input_tokens)
                .max(0),
        }
    }

    fn max(&self, other: &CallUsage) -> CallUsage {
        CallUsage {
            model: other.model.clone().or_else(|| self.model.clone()),
            input_tokens: self.input_tokens.max(other.input_tokens),
            output_tokens: self.output_tokens.max(other.output_tokens),
            cache_creation_input_tokens: self
                .cache_creation_input_tokens
                .max(other.cache_creation_input_tokens),
            cache_read_input_tokens: self
                .cache_read_input_tokens
                .max(other.cache_read_input_tokens),
        }
    }

    /// No tokens at all.
    pub fn is_empty(&self) -> bool {
        self.input_tokens == 0
            && self.output_tokens == 0
            && self.cache_creation_input_tokens == 0
            && self.cache_read_input_tokens == 0
    }

    /// Input tokens of every kind (what a turn records as its input).
    pub fn all_input_tokens(&self) -> i64 {
        self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
    }
}

impl UsageMeter {
    fn state(&self) -> Option<std::sync::MutexGuard<'_, MeterState>> {
        self.state.lock().ok()
    }

    /// A new call; its id for `update` and `finish_call`.
    pub fn begin_call(&self) -> u64 {
        let Some(mut state) = self.state() else {
            return u64::MAX;
        };
        let id = state.next_id;
        state.next_id += 1;
        state.calls.insert(id, MeteredCall::default());
        id
    }

    /// What the call's answer has reported so far (kept current while it
    /// streams, so a turn ending meanwhile pays what was used).
    pub fn update(&self, id: u64, usage: &CallUsage) {
        if let Some(call) = self.state().as_mut().and_then(|s| s.calls.get_mut(&id)) {
            call.usage = usage.clone();
        }
    }

    /// The call's answer has ended with `usage`. Outside a turn, the part
    /// not paid yet is returned, now marked paid: the caller charges it to
    /// the tenant. Inside one, `None`: the turn pays it when it ends.
    pub fn finish_call(&self, id: u64, usage: &CallUsage) -> Option<CallUsage> {
        let mut state = self.state()?;
        let turn_open = state.turn_open;
        let mut call = state.calls.remove(&id)?;
        call.usage = usage.clone();
        call.finished = true;
        if turn_open {
            state.calls.insert(id, call);
            None
        } else {
            Some(call.settle())
        }
    }

    /// A turn of the process starts: calls are its to pay from now on.
    pub fn open_turn(&self) {
        if let Some(mut state) = self.state() {
            state.turn_open = true;
        }
    }

    /// The turn ends: the usage its calls (and any still streaming) have
    /// not paid yet, one entry per call, now marked paid. What a call still
    /// streaming uses after this is charged when it finishes.
    pub fn close_turn(&self) -> Vec<CallUsage> {
        let Some(mut state) = self.state() else {
            return Vec::new();
        };
        state.turn_open = false;
        let mut unpaid = Vec::new();
        state.calls.retain(|_, call| {
            let part = call.settle();
            if !part.is_empty() {
                unpaid.push(part);
            }
            !call.finished
        });
        unpaid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_usage_is_read_across_chunk_boundaries() {
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",",
            "\"usage\":{\"input_tokens\":12,\"output_tokens\":1,\"cache_read_input_tokens\":4}}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"message_delta\"}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\n\n",
        );
        for split in [1, 7, 50, stream.len()] {
            let mut tap = UsageTap::new(true);
            for chunk in stream.as_bytes().chunks(split) {
                tap.feed(chunk);
            }
            assert_eq!(
                tap.finish(),
                CallUsage {
                    model: Some("claude-x".into()),
                    input_tokens: 12,
                    output_tokens: 7,
                    cache_creation_input_tokens: 0,
                    cache_read_input_tokens: 4,
                }
            );
        }
    }

    fn usage(input: i64, output: i64) -> CallUsage {
        CallUsage {
            model: Some("m".into()),
            input_tokens: input,
            output_tokens: output,
            ..CallUsage::default()
        }
    }

    fn total(parts: &[CallUsage]) -> (i64, i64) {
        parts.iter().fold((0, 0), |(i, o), p| {
            (i + p.input_tokens, o + p.output_tokens)
        })
    }

    #[test]
    fn each_call_is_paid_once_by_its_turn_or_directly() {
        let meter = UsageMeter::default();
        // Between turns: charged directly, whole.
        let before = meter.begin_call();
        assert_eq!(meter.finish_call(before, &usage(10, 5)), Some(usage(10, 5)));

        // A call begun before the turn and finished in it is the turn's.
        let straddling_start = meter.begin_call();
        meter.update(straddling_start, &usage(7, 1));
        meter.open_turn();
        let inside = meter.begin_call();
        assert_eq!(meter.finish_call(straddling_start, &usage(7, 3)), None);
        assert_eq!(meter.finish_call(inside, &usage(20, 4)), None);
        // One still streaming when the turn ends: the turn pays what it used.
        let straddling_end = meter.begin_call();
        meter.update(straddling_end, &usage(30, 2));
        let paid_by_turn = meter.close_turn();
        assert_eq!(total(&paid_by_turn), (7 + 20 + 30, 3 + 4 + 2));
        // ... and the rest is charged when it ends.
        assert_eq!(
            meter.finish_call(straddling_end, &usage(30, 9)),
            Some(usage(0, 7))
        );
        // Nothing is left to pay twice.
        meter.open_turn();
        assert!(meter.close_turn().is_empty());
    }

    #[test]
    fn json_usage_is_read_at_the_end() {
        let mut tap = UsageTap::new(false);
        tap.feed(br#"{"model":"m","usage":{"input_tokens":3,"#);
        tap.feed(br#""output_tokens":2}}"#);
        let usage = tap.finish();
        assert_eq!((usage.input_tokens, usage.output_tokens), (3, 2));
        assert_eq!(usage.model.as_deref(), Some("m"));
    }
}
