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

/// The usage of every model call of one CLI process, kept up to date as the
/// answers stream, so a turn cut short can be charged what its calls used.
#[derive(Debug, Clone, Default)]
pub struct UsageMeter {
    calls: std::sync::Arc<std::sync::Mutex<Vec<CallUsage>>>,
}

impl UsageMeter {
    /// A new call; its index for `update`.
    pub fn begin_call(&self) -> usize {
        self.calls
            .lock()
            .map(|mut calls| {
                calls.push(CallUsage::default());
                calls.len() - 1
            })
            .unwrap_or(0)
    }

    pub fn update(&self, index: usize, usage: &CallUsage) {
        if let Ok(mut calls) = self.calls.lock() {
            if let Some(call) = calls.get_mut(index) {
                *call = usage.clone();
            }
        }
    }

    /// A mark to read the calls made after it.
    pub fn mark(&self) -> usize {
        self.calls.lock().map_or(0, |calls| calls.len())
    }

    /// The calls made since `mark`, as far as they got.
    pub fn since(&self, mark: usize) -> Vec<CallUsage> {
        self.calls
            .lock()
            .map(|calls| calls.get(mark..).unwrap_or_default().to_vec())
            .unwrap_or_default()
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
