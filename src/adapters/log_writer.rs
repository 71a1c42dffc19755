//! The log sink: log lines are appended to a shared buffer and a writer
//! thread hands the buffer to stderr in large writes, every
//! [`BatchOptions::interval`] or as soon as [`BatchOptions::flush_at`]
//! bytes are pending.
//!
//! Why not `tracing_appender::non_blocking`: its worker wakes for every line
//! sent while it is idle and flushes whenever its queue runs dry, so at tens
//! of thousands of access-log lines per second the server paid a futex wake
//! and a `write(2)` per line or two (≈15 % of server CPU on the verify
//! benchmark, see bench/RESULTS.md). Here a logging thread takes one
//! uncontended lock and copies its line; nobody is woken until a batch is
//! due.
//!
//! Not lossy: when [`BatchOptions::max_pending`] bytes are waiting (stderr
//! blocked), loggers wait for the writer. Lines written less than one
//! interval before the process is killed may be lost; the guard flushes
//! everything on an orderly exit.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// When the writer thread writes.
#[derive(Clone, Copy, Debug)]
pub struct BatchOptions {
    /// Longest a line waits in the buffer.
    pub interval: Duration,
    /// Pending bytes that make the writer write at once.
    pub flush_at: usize,
    /// Pending bytes at which loggers wait for the writer.
    pub max_pending: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            interval: Duration::from_millis(50),
            flush_at: 32 * 1024,
            max_pending: 8 * 1024 * 1024,
        }
    }
}

struct State {
    buf: Vec<u8>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer (a batch is due, or closing).
    due: Condvar,
    /// Wakes loggers waiting for room.
    room: Condvar,
    opts: BatchOptions,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the buffer invalid
        // (it is only appended to or swapped), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The writing end; cheap to clone, one per `make_writer` call. Each
/// `write` call lands whole (tracing's fmt layer writes an event's line
/// with one call), so lines from different threads never interleave.
#[derive(Clone)]
pub struct BatchWriter(Arc<Shared>);

impl BatchWriter {
    /// Lets `line` append one whole line to the pending buffer, under its
    /// lock (no copy through a scratch buffer); waits while
    /// [`BatchOptions::max_pending`] bytes are pending, as `write` does.
    pub fn append_with(&self, line: impl FnOnce(&mut Vec<u8>)) {
        let shared = &self.0;
        let mut st = shared.lock();
        while st.buf.len() >= shared.opts.max_pending && !st.closed {
            st = shared.room.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        let was_below = st.buf.len() < shared.opts.flush_at;
        line(&mut st.buf);
        if was_below && st.buf.len() >= shared.opts.flush_at {
            shared.due.notify_one();
        }
    }
}

impl Write for BatchWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.append_with(|buf| buf.extend_from_slice(bytes));
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Stops the writer thread and writes what is pending when dropped.
pub struct BatchGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for BatchGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.due.notify_one();
        self.shared.room.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the writer thread over `sink`.
pub fn batched<W: Write + Send + 'static>(
    sink: W,
    opts: BatchOptions,
) -> io::Result<(BatchWriter, BatchGuard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            buf: Vec::with_capacity(opts.flush_at * 2),
            closed: false,
        }),
        due: Condvar::new(),
        room: Condvar::new(),
        opts,
    });
    let worker = shared.clone();
    let thread = std::thread::Builder::new()
        .name("talos-log".into())
        .spawn(move || run(&worker, sink))?;
    Ok((
        BatchWriter(shared.clone()),
        BatchGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

fn run<W: Write>(shared: &Shared, mut sink: W) {
    let mut out: Vec<u8> = Vec::with_capacity(shared.opts.flush_at * 2);
    loop {
        let closed = {
            let mut st = shared.lock();
            if st.buf.len() < shared.opts.flush_at && !st.closed {
                st = shared
                    .due
                    .wait_timeout(st, shared.opts.interval)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            std::mem::swap(&mut st.buf, &mut out);
            st.closed
        };
        shared.room.notify_all();
        if !out.is_empty() {
            // Nowhere to report a failing stderr; the lines are dropped.
            let _ = sink.write_all(&out).and_then(|()| sink.flush());
            out.clear();
            if out.capacity() > shared.opts.max_pending {
                out.shrink_to(shared.opts.flush_at * 2);
            }
        }
        if closed && shared.lock().buf.is_empty() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A sink that records each write it receives.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().concat()).unwrap()
        }
        fn writes(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    fn opts(interval_ms: u64, flush_at: usize, max_pending: usize) -> BatchOptions {
        BatchOptions {
            interval: Duration::from_millis(interval_ms),
            flush_at,
            max_pending,
        }
    }

    #[test]
    fn every_line_arrives_in_order_and_in_few_writes() {
        let sink = Sink::default();
        let (w, guard) = batched(sink.clone(), opts(10_000, 1 << 20, 1 << 24)).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        // One `write` per line, as the fmt layer does.
                        w.write_all(format!("t{t} line {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = sink.text();
        assert_eq!(text.lines().count(), 8_000);
        for t in 0..4 {
            let mine: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("t{t} ")))
                .collect();
            let want: Vec<String> = (0..2_000).map(|i| format!("t{t} line {i}")).collect();
            assert_eq!(mine, want, "thread {t}'s lines, whole and in order");
        }
        // Nothing reached the threshold or the (10 s) interval: the only
        // write is the one at shutdown.
        assert_eq!(sink.writes(), 1);
    }

    #[test]
    fn a_line_is_written_within_the_interval_without_a_flush() {
        let sink = Sink::default();
        let (mut w, _guard) = batched(sink.clone(), opts(20, 1 << 20, 1 << 24)).unwrap();
        writeln!(w, "hello").unwrap();
        let start = Instant::now();
        while sink.text().is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "line never written"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sink.text(), "hello\n");
    }

    #[test]
    fn reaching_flush_at_writes_before_the_interval() {
        let sink = Sink::default();
        let (mut w, _guard) = batched(sink.clone(), opts(60_000, 64, 1 << 24)).unwrap();
        w.write_all(&[b'x'; 100]).unwrap();
        let start = Instant::now();
        while sink.writes() == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "threshold did not wake the writer"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sink.text().len(), 100);
    }

    /// A sink that blocks until released.
    struct Gate(Arc<(Mutex<bool>, Condvar)>, Sink);

    impl Write for Gate {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let (open, cv) = &*self.0;
            let mut o = open.lock().unwrap();
            while !*o {
                o = cv.wait(o).unwrap();
            }
            self.1.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn loggers_wait_when_the_sink_is_stuck_and_nothing_is_lost() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let sink = Sink::default();
        let (w, guard) = batched(Gate(gate.clone(), sink.clone()), opts(1, 10, 100)).unwrap();
        let writer = {
            let mut w = w.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    w.write_all(format!("{i:09}\n").as_bytes()).unwrap();
                }
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !writer.is_finished(),
            "with the sink stuck, the logger must be held at max_pending"
        );
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        writer.join().unwrap();
        drop(guard);
        let want: String = (0..100).map(|i| format!("{i:09}\n")).collect();
        assert_eq!(sink.text(), want);
    }
}
