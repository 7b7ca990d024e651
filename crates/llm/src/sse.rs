//! Server-sent events at the frame level: [`SseFrameParser`] turns the bytes
//! of a `text/event-stream` body, in chunks of any size, into [`SseFrame`]s.
//!
//! It is the one SSE parser of the workspace: the Anthropic stream reader
//! (`message_stream`) feeds it response chunks, and so do
//! `cadre watch` and the daemon's tests, which read `GET /v1/jobs/{id}/events`.
//!
//! It follows the WHATWG event-stream rules that matter to a client: lines
//! end with LF, CRLF or a lone CR (also when a chunk ends between CR and LF);
//! a line starting with `:` is a comment (keep-alives); `field: value` drops
//! one leading space of the value; `data:` lines join with `\n`; a blank line
//! ends the frame, and a frame without any `data:` line is not dispatched.
//! `retry:` and unknown fields are ignored.

use crate::error::{Error, Result, StreamError};

/// Longest line accepted before the stream is declared broken.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// One dispatched server-sent event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseFrame {
    /// The frame's `id:` field, if it had one. A client resuming a stream
    /// sends the last id it saw as `Last-Event-ID`.
    pub id: Option<String>,
    /// The frame's `event:` field (the event name), if it had one.
    pub event: Option<String>,
    /// The frame's `data:` lines, joined by `\n`.
    pub data: String,
}

/// Incremental `text/event-stream` parser: feed chunks with
/// [`push`](Self::push), get every frame they complete.
#[derive(Debug, Default)]
pub struct SseFrameParser {
    /// Bytes after the last complete line.
    pending: Vec<u8>,
    /// The frame being built.
    frame: SseFrame,
    /// Whether the frame being built has any `data:` line.
    has_data: bool,
    /// The previous chunk ended in `\r`: skip a leading `\n`.
    skip_lf: bool,
}

impl SseFrameParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; returns every frame it completed, in order. Bytes of
    /// an unfinished line or frame wait for the next chunk.
    ///
    /// Fails ([`Error::Decode`]) on a line that is not UTF-8, and
    /// ([`Error::Stream`]) when a line grows past 64 MiB without ending.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseFrame>> {
        let mut frames = Vec::new();
        let mut rest = chunk;
        if self.skip_lf {
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
            self.skip_lf = false;
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (line, tail) = rest.split_at(pos);
            let is_cr = tail[0] == b'\r';
            rest = &tail[1..];
            if is_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.skip_lf = true,
                    Some(_) => {}
                }
            }
            if self.pending.is_empty() {
                self.line(line, &mut frames)?;
            } else {
                let mut joined = std::mem::take(&mut self.pending);
                joined.extend_from_slice(line);
                self.line(&joined, &mut frames)?;
            }
        }
        self.pending.extend_from_slice(rest);
        if self.pending.len() > MAX_LINE {
            return Err(Error::Stream(StreamError {
                kind: None,
                message: format!("SSE line longer than {MAX_LINE} bytes"),
                request_id: None,
            }));
        }
        Ok(frames)
    }

    /// Applies one complete line (without its ending).
    fn line(&mut self, line: &[u8], frames: &mut Vec<SseFrame>) -> Result<()> {
        if line.is_empty() {
            let frame = std::mem::take(&mut self.frame);
            if std::mem::take(&mut self.has_data) {
                frames.push(frame);
            }
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|e| Error::decode(e, line))?;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.frame.data.push('\n');
                }
                self.frame.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.frame.event = Some(value.to_owned()),
            // An id with a NUL is ignored (WHATWG).
            "id" if !value.contains('\0') => self.frame.id = Some(value.to_owned()),
            // `retry:` and anything else carry nothing a client here acts on.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn frame(id: Option<&str>, event: Option<&str>, data: &str) -> SseFrame {
        SseFrame {
            id: id.map(str::to_owned),
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    fn feed(chunks: &[&[u8]]) -> Vec<SseFrame> {
        let mut parser = SseFrameParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(parser.push(chunk).unwrap());
        }
        out
    }

    #[test]
    fn parser_handles_split_chunks_and_line_endings() {
        let frames = feed(&[
            b"event: ping\r",
            b"\ndata: {\"a\"",
            b":1}\r\n\r",
            b"\n: comment\n",
            b"data: x\ndata: y\n\n",
        ]);
        assert_eq!(
            frames,
            vec![
                frame(None, Some("ping"), "{\"a\":1}"),
                frame(None, None, "x\ny")
            ]
        );
    }

    #[test]
    fn frames_keep_their_id_and_event_and_wait_for_the_blank_line() {
        let mut parser = SseFrameParser::new();
        let frames = parser
            .push(b"id: 4\nevent: note\ndata: {\"a\":1}\n\n: keep-alive\n\nid: 5\ndata: x\ndata: y\n\nid: 6\nda")
            .unwrap();
        assert_eq!(
            frames,
            vec![
                frame(Some("4"), Some("note"), "{\"a\":1}"),
                frame(Some("5"), None, "x\ny")
            ]
        );
        assert_eq!(
            parser.push(b"ta: z\n\n").unwrap(),
            vec![frame(Some("6"), None, "z")]
        );
    }

    #[test]
    fn every_line_ending_and_every_split_point_give_the_same_frames() {
        let body =
            "id: 1\nevent: job_status\ndata: {\"é\":\"ü\"}\n\n:ka\n\nid: 2\ndata:\ndata:  two\n\n";
        let expected = vec![
            frame(Some("1"), Some("job_status"), "{\"é\":\"ü\"}"),
            frame(Some("2"), None, "\n two"),
        ];
        for ending in ["\n", "\r\n", "\r"] {
            let text = body.replace('\n', ending);
            let bytes = text.as_bytes();
            for split in 0..=bytes.len() {
                let (a, b) = bytes.split_at(split);
                assert_eq!(
                    feed(&[a, b]),
                    expected,
                    "ending {ending:?}, split at {split}"
                );
            }
        }
    }

    #[test]
    fn frames_without_data_are_not_dispatched() {
        assert_eq!(
            feed(&[b"event: x\nid: 7\n\nretry: 10\n\ndata\n\n"]),
            vec![frame(None, None, "")]
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_is_an_error() {
        let mut parser = SseFrameParser::new();
        assert!(matches!(
            parser.push(b"data: \xff\n\n"),
            Err(Error::Decode { .. })
        ));
    }
}
