//! JSON log lines, written straight into the line buffer.
//!
//! The same lines as tracing-subscriber's `json().flatten_event(true)` with
//! no target and no spans — `{"timestamp":"…Z","level":"INFO",<fields>}` —
//! but without its detours: it formats the timestamp into a fresh `String`,
//! runs every field through a serde map serializer and checks each chunk it
//! writes for UTF-8 again. With one access-log line per request that was ~8 %
//! of server CPU on the verify benchmark; this formatter is a fraction of it
//! (bench/RESULTS.md). A unit test holds the two outputs byte-identical after
//! the timestamp.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::json_text::{write_json_str, write_json_str_body};

/// The event formatter for `log.format: json`.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, SystemTime::now())?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(event.metadata().level().as_str())?;
        writer.write_char('"')?;
        let mut fields = Fields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str("}\n")
    }
}

struct Fields<'w, 'a> {
    out: &'w mut Writer<'a>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.out.write_char(',')?;
        write_json_str(self.out, field.name())?;
        self.out.write_char(':')
    }

    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut Self) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| value(self));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |f| write_json_str(f.out, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |f| {
            f.out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |f| {
            f.out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |f| {
            f.out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.entry(field, |f| {
            f.out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.entry(field, |f| {
            f.out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.entry(field, |f| {
            // serde_json's spelling of a float (zmij, as serde_json uses); JSON
            // has no NaN or infinity.
            if value.is_finite() {
                f.out.write_str(zmij::Buffer::new().format_finite(value))
            } else {
                f.out.write_str("null")
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |f| {
            f.out.write_char('"')?;
            write!(Escaping(&mut *f.out), "{value:?}")?;
            f.out.write_char('"')
        });
    }
}

/// Escapes what is written through it as the inside of a JSON string, so a
/// `Debug` value is formatted straight into the line.
struct Escaping<'w, W: fmt::Write>(&'w mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_json_str_body(self.0, s)
    }
}

/// RFC 3339 in UTC with microseconds, as tracing-subscriber's `SystemTime`
/// timer writes it (`2026-11-30T19:35:00.123456Z`). The calendar part is
/// formatted once per second per thread; a line only adds the microseconds.
pub(crate) fn write_timestamp(out: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
    thread_local! {
        /// (Unix second, "YYYY-MM-DDTHH:MM:SS." for it).
        static SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
    }
    let Ok(since) = now.duration_since(UNIX_EPOCH) else {
        return write_calendar(out, now, true);
    };
    let secs = since.as_secs();
    let (cached, mut prefix) = SECOND.get();
    if cached != secs {
        let mut text = String::with_capacity(27);
        write_calendar(&mut text, now, false)?;
        match text.as_bytes().try_into() {
            Ok(p) => {
                prefix = p;
                SECOND.set((secs, prefix));
            }
            // A year past 9999: not cached.
            Err(_) => return write_calendar(out, now, true),
        }
    }
    let mut micros = since.subsec_micros();
    let mut digits = [b'0'; 7];
    for d in digits[..6].iter_mut().rev() {
        *d = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    digits[6] = b'Z';
    out.write_str(std::str::from_utf8(&prefix).expect("ASCII"))?;
    out.write_str(std::str::from_utf8(&digits).expect("ASCII"))
}

/// The calendar part of [`write_timestamp`], up to and including the `.`,
/// then (with `whole`) the microseconds and the `Z`.
fn write_calendar(out: &mut impl fmt::Write, now: SystemTime, whole: bool) -> fmt::Result {
    let t = time::OffsetDateTime::from(now);
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )?;
    if whole {
        write!(out, "{:06}Z", t.microsecond())?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use serde_json::Value;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// A log sink that keeps what is written (also used by
    /// `access_log`'s tests).
    #[derive(Clone, Default)]
    pub(crate) struct Buf(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    fn log_some_events() {
        let err = io::Error::other("disk \"full\"");
        tracing::info!(
            http_request.method = "POST",
            http_request.path = "/v2alpha1/admin/apiKeys:verify",
            status = 200u16,
            duration_ms = 0.123_f64,
            big = u64::MAX,
            neg = -5i64,
            ok = true,
            request_id = "a\"b\\c\nd\te\u{1}f\u{7f}é",
            "HTTP request completed"
        );
        tracing::warn!(error = %err, debug = ?Some("x"), ratio = 1e21_f64, nan = f64::NAN, "something {} happened", 42);
        tracing::error!("plain");
    }

    fn lines(out: &Buf) -> Vec<String> {
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with('\n'));
        text.lines().map(str::to_string).collect()
    }

    /// (timestamp, the rest of the line), checking the line is JSON.
    fn split(line: &str) -> (&str, &str) {
        let _: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let rest = line
            .strip_prefix("{\"timestamp\":\"")
            .unwrap_or_else(|| panic!("timestamp first: {line}"));
        rest.split_at(rest.find('"').unwrap())
    }

    #[test]
    fn lines_equal_tracing_subscribers_json() {
        let ours = Buf::default();
        let theirs = Buf::default();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(ours.clone())
                    .event_format(JsonLines),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(theirs.clone())
                    .with_target(false)
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            );
        tracing::subscriber::with_default(subscriber, log_some_events);
        let (ours, theirs) = (lines(&ours), lines(&theirs));
        assert_eq!(ours.len(), 3);
        assert_eq!(theirs.len(), 3);
        for (o, t) in ours.iter().zip(&theirs) {
            let (ts_o, rest_o) = split(o);
            let (ts_t, rest_t) = split(t);
            // Byte for byte after the timestamp: keys, order, escapes, numbers.
            assert_eq!(rest_o, rest_t);
            // Same shape of timestamp, to the minute (both read the clock).
            assert_eq!(ts_o.len(), ts_t.len(), "{ts_o} vs {ts_t}");
            assert_eq!(ts_o[..16], ts_t[..16], "{ts_o} vs {ts_t}");
        }
        assert!(
            ours[0].contains(r#""request_id":"a\"b\\c\nd\te\u0001f"#),
            "{}",
            ours[0]
        );
    }

    #[test]
    fn timestamps_match_the_calendar() {
        let at = |secs: u64, micros: u64| {
            let mut s = String::new();
            write_timestamp(
                &mut s,
                UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros),
            )
            .unwrap();
            s
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_780_334_005, 999_999), "2026-06-01T17:13:25.999999Z");
        // The same second again: the calendar part comes from the cache.
        assert_eq!(at(1_780_334_005, 42), "2026-06-01T17:13:25.000042Z");
        assert_eq!(at(1_780_334_006, 0), "2026-06-01T17:13:26.000000Z");
        assert_eq!(at(4_107_542_399, 0), "2100-02-28T23:59:59.000000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
        let mut s = String::new();
        write_timestamp(&mut s, UNIX_EPOCH - Duration::from_micros(1)).unwrap();
        assert_eq!(s, "1969-12-31T23:59:59.999999Z");
    }
}
