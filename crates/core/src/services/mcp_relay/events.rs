//! Server-sent events as MCP servers send them: complete events cut from a
//! byte buffer, each with its name and joined `data:` lines.

/// One event: its `event:` name (`message` when unnamed) and its data.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Event {
    pub name: String,
    pub data: String,
}

/// The first complete event of `buffer`, removed from it; `None` until a
/// blank line ends one.
pub(super) fn next(buffer: &mut Vec<u8>) -> Option<Event> {
    let end = end(buffer)?;
    let raw: Vec<u8> = buffer.drain(..end).collect();
    let text = String::from_utf8_lossy(&raw);
    let mut name = None;
    let mut data = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        } else if let Some(value) = line.strip_prefix("event:") {
            name = Some(value.trim().to_owned());
        }
    }
    Some(Event {
        name: name.unwrap_or_else(|| "message".into()),
        data: data.join("\n"),
    })
}

/// Where the first complete event of `buffer` ends (past its blank line).
fn end(buffer: &[u8]) -> Option<usize> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    lf.into_iter().chain(crlf).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines_with_their_names() {
        let mut buffer =
            b"event: endpoint\r\ndata: /messages/?id=1\r\n\r\ndata: {\"a\":\ndata: 1}\n\npartial"
                .to_vec();
        assert_eq!(
            next(&mut buffer),
            Some(Event {
                name: "endpoint".into(),
                data: "/messages/?id=1".into()
            })
        );
        assert_eq!(
            next(&mut buffer),
            Some(Event {
                name: "message".into(),
                data: "{\"a\":\n1}".into()
            })
        );
        assert_eq!(next(&mut buffer), None);
        assert_eq!(buffer, b"partial");
    }
}
