//! Server-Sent Events framing (WHATWG HTML §9.2), incremental.
//!
//! Bytes arrive in arbitrary chunks; the parser keeps the partial line and the event being
//! built, and emits complete events on a blank line. Lines end in CRLF, LF or CR. Comment lines
//! (`:`) are skipped. The caller enforces the byte cap; a single line can never grow past it
//! because the caller stops feeding once the cap is reached.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; `message` when absent.
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` seen.
    pub id: Option<String>,
}

/// Incremental SSE parser.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended in CR: a following LF belongs to it.
    pending_cr: bool,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
    bom_checked: bool,
}

impl SseParser {
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Feed a chunk; returns the events it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let mut bytes = chunk;
        if !self.bom_checked && !bytes.is_empty() {
            // A UTF-8 BOM may begin the stream; it can be split across chunks only in theory,
            // and then it is treated as data, which the JSON parser later rejects loudly.
            if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
                bytes = rest;
            }
            self.bom_checked = true;
        }
        for &b in bytes {
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.pending_cr = true;
                    self.end_line(&mut out);
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    /// End of stream: a final event without its blank line is discarded, per the spec.
    pub fn finish(self) {}

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = Some(value.into_owned()),
            b"data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(&value);
                }
                None => self.data = Some(value.into_owned()),
            },
            b"id" if !value.contains('\0') => self.id = Some(value.into_owned()),
            _ => {} // `retry` and unknown fields do not matter to a probe.
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        let Some(data) = self.data.take() else {
            // No data field: nothing is dispatched (the id still sticks).
            return;
        };
        out.push(SseEvent {
            event: event.unwrap_or_else(|| "message".to_string()),
            data,
            id: self.id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(input: &[u8]) -> Vec<SseEvent> {
        SseParser::new().feed(input)
    }

    #[test]
    fn parses_events_with_every_line_ending() {
        for nl in ["\n", "\r\n", "\r"] {
            let text = format!(
                ": comment{nl}event: endpoint{nl}data: /messages?s=1{nl}{nl}data: a{nl}data:b{nl}id: 7{nl}{nl}"
            );
            let events = parse_all(text.as_bytes());
            assert_eq!(events.len(), 2, "line ending {nl:?}");
            assert_eq!(events[0].event, "endpoint");
            assert_eq!(events[0].data, "/messages?s=1");
            assert_eq!(events[1].event, "message");
            assert_eq!(events[1].data, "a\nb");
            assert_eq!(events[1].id.as_deref(), Some("7"));
        }
    }

    #[test]
    fn priming_event_has_empty_data_and_events_without_data_are_not_dispatched() {
        let events = parse_all(b"id: 0\ndata:\n\nid: 1\n\nevent: x\ndata: {}\n\n");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data, "");
        assert_eq!(events[1].data, "{}");
        assert_eq!(events[1].id.as_deref(), Some("1"));
    }

    #[test]
    fn unterminated_final_event_is_dropped_and_bom_is_skipped() {
        let events = parse_all(b"\xEF\xBB\xBFdata: 1\n\ndata: 2\n");
        assert_eq!(
            events,
            vec![SseEvent {
                event: "message".into(),
                data: "1".into(),
                id: None
            }]
        );
    }

    proptest! {
        /// However the stream is cut into chunks, the same events come out.
        #[test]
        fn chunking_does_not_change_events(
            datas in proptest::collection::vec("[a-z{}\":, ]{0,20}", 1..6),
            nl in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let mut text = String::new();
            for (i, d) in datas.iter().enumerate() {
                text.push_str(&format!(": keepalive{nl}id: {i}{nl}data: {d}{nl}{nl}"));
            }
            let bytes = text.as_bytes();
            let whole = parse_all(bytes);
            prop_assert_eq!(whole.len(), datas.len());
            for (e, d) in whole.iter().zip(&datas) {
                prop_assert_eq!(&e.data, d);
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut parser = SseParser::new();
            let mut pieces = Vec::new();
            let mut start = 0;
            for p in points {
                pieces.extend(parser.feed(&bytes[start..p]));
                start = p;
            }
            pieces.extend(parser.feed(&bytes[start..]));
            prop_assert_eq!(pieces, whole);
        }
    }
}
