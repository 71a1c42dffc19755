//! The access-log line, one per HTTP request.
//!
//! With JSON logs and no OpenTelemetry layer, the line is formatted straight
//! into the log writer's buffer ([`BatchWriter::append_with`]) instead of
//! going through a `tracing` event: the event's dispatch, its field visitor
//! and the formatter's writer indirection were about 8 % of a verify cache
//! hit's instructions (callgrind, bench/RESULTS.md evening round), and the
//! access log is the one line every request writes. The bytes are those the
//! event would have produced (a test holds them equal), and the line still
//! obeys the log filter: it is written only when an INFO event of
//! `talos::adapters::http` would be. Otherwise (text logs, OpenTelemetry
//! on) the HTTP adapter emits the event ([`crate::adapters::http::access_event`]).

use std::sync::OnceLock;
use std::time::SystemTime;

use super::json_text::{push_json_str, VecText};
use super::log_format::write_timestamp;
use super::log_writer::BatchWriter;

static DIRECT: OnceLock<BatchWriter> = OnceLock::new();

/// Sends access-log lines straight to `writer` (JSON logs, no OpenTelemetry
/// layer). The first call wins.
pub fn write_directly_to(writer: BatchWriter) {
    let _ = DIRECT.set(writer);
}

/// One request's line.
pub struct AccessLine<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub request_id: &'a str,
}

impl AccessLine<'_> {
    /// Writes the line straight into the log buffer, if that is set up
    /// ([`write_directly_to`]) and the filter lets an INFO event of the HTTP
    /// adapter through. False when the caller must emit the `tracing` event
    /// itself ([`crate::adapters::http::access_event`]).
    pub fn write_direct(&self) -> bool {
        let Some(w) = DIRECT.get() else {
            return false;
        };
        if tracing::enabled!(target: "talos::adapters::http", tracing::Level::INFO) {
            w.append_with(|buf| self.write_json(buf, SystemTime::now()));
        }
        true
    }

    /// The line as `log_format::JsonLines` formats the `tracing` event.
    fn write_json(&self, out: &mut Vec<u8>, now: SystemTime) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        write_timestamp(&mut VecText(out), now).expect("writing to a Vec cannot fail");
        out.extend_from_slice(
            b"\",\"level\":\"INFO\",\"message\":\"HTTP request completed\",\"http_request.method\":",
        );
        push_json_str(out, self.method);
        out.extend_from_slice(b",\"http_request.path\":");
        push_json_str(out, self.path);
        out.extend_from_slice(b",\"status\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.status).as_bytes());
        out.extend_from_slice(b",\"duration_ms\":");
        if self.duration_ms.is_finite() {
            out.extend_from_slice(
                zmij::Buffer::new()
                    .format_finite(self.duration_ms)
                    .as_bytes(),
            );
        } else {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b",\"request_id\":");
        push_json_str(out, self.request_id);
        out.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::adapters::log_format::tests::Buf;

    /// After the timestamp, everything up to the end of the line.
    fn after_timestamp(line: &str) -> &str {
        let rest = line.strip_prefix("{\"timestamp\":\"").expect(line);
        &rest[rest.find('"').expect(line)..]
    }

    #[test]
    fn the_direct_line_is_the_events_line() {
        let lines = [
            AccessLine {
                method: "POST",
                path: "/v2alpha1/admin/apiKeys:verify",
                status: 200,
                duration_ms: 0.007,
                request_id: "5c20171e-96c4-4022-b645-fec0ff60570c",
            },
            AccessLine {
                method: "GET",
                path: "/a\"b\\c\u{1}é",
                status: 404,
                duration_ms: 12_345.678,
                request_id: "",
            },
            AccessLine {
                method: "OTHER",
                path: "/",
                status: 503,
                duration_ms: f64::NAN,
                request_id: "x\ny",
            },
        ];
        let events = Buf::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(events.clone())
                .event_format(crate::adapters::log_format::JsonLines),
        );
        tracing::subscriber::with_default(subscriber, || {
            for l in &lines {
                crate::adapters::http::access_event(l);
            }
        });
        let events = String::from_utf8(events.0.lock().unwrap().clone()).unwrap();
        let events: Vec<&str> = events.split_inclusive('\n').collect();
        assert_eq!(events.len(), lines.len());
        for (l, event) in lines.iter().zip(events) {
            let mut direct = Vec::new();
            l.write_json(&mut direct, SystemTime::now());
            let direct = String::from_utf8(direct).unwrap();
            assert!(direct.ends_with('\n'));
            let _: serde_json::Value = serde_json::from_str(&direct).unwrap();
            assert_eq!(after_timestamp(&direct), after_timestamp(event));
            assert_eq!(direct.len(), event.len(), "{direct} vs {event}");
        }
    }
}
