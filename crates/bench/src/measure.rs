//! What the benchmarks measure with: per-thread CPU time from `/proc`, peak
//! resident memory (`VmHWM`), and a `tracing` layer that times the model
//! client's `create_message` span and SQLite statements. That layer costs
//! CPU in the engine and on sqlx's threads (a span per call, an event per
//! statement) which a production run, logging warnings only, does not pay:
//! it records only while [`TimingSwitch`] is on, which only the overhead
//! benchmark does, so every other CPU figure is the engine's as it ships.
//!
//! CPU is attributed by thread name. The engine runs on a runtime whose
//! threads are named [`ENGINE_THREADS`], the simulator on one named
//! [`SIM_THREADS`]; sqlx runs every SQLite statement on a dedicated thread per
//! connection named `sqlx-sqlite-worker-N` (the kernel keeps 15 bytes of a
//! thread name, hence [`SQLITE_THREADS`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Thread-name prefix of the engine's runtime.
pub const ENGINE_THREADS: &str = "cadre-rt";
/// Thread-name prefix of the simulator's runtime.
pub const SIM_THREADS: &str = "sim-rt";
/// Thread-name prefix of sqlx's SQLite connection threads (as the kernel truncates it).
pub const SQLITE_THREADS: &str = "sqlx-sqlite";

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds per thread-name group at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CpuSnapshot {
    /// Group ("engine", "sqlite", "sim", "other") -> CPU seconds of its live threads.
    pub groups: BTreeMap<&'static str, f64>,
    /// CPU seconds of the whole process (dead threads included).
    pub process: f64,
}

impl CpuSnapshot {
    /// Reads `/proc/self/task/*/stat` and `/proc/self/stat`. Empty where unavailable.
    pub fn take() -> CpuSnapshot {
        let mut snap = CpuSnapshot::default();
        if let Ok(text) = std::fs::read_to_string("/proc/self/stat")
            && let Some((_, secs)) = parse_stat(&text)
        {
            snap.process = secs;
        }
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return snap;
        };
        for task in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            if let Some((name, secs)) = parse_stat(&text) {
                *snap.groups.entry(group_of(&name)).or_default() += secs;
            }
        }
        snap
    }

    /// CPU seconds spent by `group` since `earlier`.
    pub fn since(&self, earlier: &CpuSnapshot, group: &str) -> f64 {
        let now = self.groups.get(group).copied().unwrap_or(0.0);
        let then = earlier.groups.get(group).copied().unwrap_or(0.0);
        (now - then).max(0.0)
    }
}

/// The group a thread belongs to, by name.
pub fn group_of(name: &str) -> &'static str {
    if name.starts_with(ENGINE_THREADS) {
        "engine"
    } else if name.starts_with(SQLITE_THREADS) {
        "sqlite"
    } else if name.starts_with(SIM_THREADS) {
        "sim"
    } else {
        "other"
    }
}

/// Parses a `/proc/.../stat` line into (comm, utime + stime in seconds).
/// The comm is in parentheses and may itself contain spaces or parentheses.
pub fn parse_stat(text: &str) -> Option<(String, f64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_owned();
    // Fields after ") ": state(3) ppid(4) ... utime(14) stime(15).
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let utime: f64 = rest.get(11)?.parse().ok()?;
    let stime: f64 = rest.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / TICKS_PER_SEC))
}

/// Peak resident set size of this process in KiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| status_field_kib(&s, "VmHWM:"))
}

/// Reads a `Name:   1234 kB` line of `/proc/*/status`.
pub fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Totals the [`TimingLayer`] accumulates (process-wide; reset between benchmarks).
#[derive(Debug, Default)]
pub struct Timings {
    /// Nanoseconds spent inside `create_message` polls (client-side model I/O).
    pub model_busy_ns: AtomicU64,
    /// `create_message` spans closed.
    pub model_calls: AtomicU64,
    /// Nanoseconds SQLite spent executing writing statements.
    pub store_write_ns: AtomicU64,
    /// Writing statements executed.
    pub store_writes: AtomicU64,
    /// Nanoseconds SQLite spent executing reading statements.
    pub store_read_ns: AtomicU64,
    /// Reading statements executed.
    pub store_reads: AtomicU64,
}

/// A copy of [`Timings`] at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TimingTotals {
    /// See [`Timings::model_busy_ns`].
    pub model_busy: Duration,
    /// See [`Timings::model_calls`].
    pub model_calls: u64,
    /// See [`Timings::store_write_ns`].
    pub store_write: Duration,
    /// See [`Timings::store_writes`].
    pub store_writes: u64,
    /// See [`Timings::store_read_ns`].
    pub store_read: Duration,
    /// See [`Timings::store_reads`].
    pub store_reads: u64,
}

impl Timings {
    /// The current totals.
    pub fn totals(&self) -> TimingTotals {
        TimingTotals {
            model_busy: Duration::from_nanos(self.model_busy_ns.load(Ordering::Relaxed)),
            model_calls: self.model_calls.load(Ordering::Relaxed),
            store_write: Duration::from_nanos(self.store_write_ns.load(Ordering::Relaxed)),
            store_writes: self.store_writes.load(Ordering::Relaxed),
            store_read: Duration::from_nanos(self.store_read_ns.load(Ordering::Relaxed)),
            store_reads: self.store_reads.load(Ordering::Relaxed),
        }
    }
}

impl TimingTotals {
    /// The difference `self - earlier`.
    pub fn since(&self, earlier: &TimingTotals) -> TimingTotals {
        TimingTotals {
            model_busy: self.model_busy.saturating_sub(earlier.model_busy),
            model_calls: self.model_calls.saturating_sub(earlier.model_calls),
            store_write: self.store_write.saturating_sub(earlier.store_write),
            store_writes: self.store_writes.saturating_sub(earlier.store_writes),
            store_read: self.store_read.saturating_sub(earlier.store_read),
            store_reads: self.store_reads.saturating_sub(earlier.store_reads),
        }
    }
}

/// The process-wide timing totals.
pub static TIMINGS: Timings = Timings {
    model_busy_ns: AtomicU64::new(0),
    model_calls: AtomicU64::new(0),
    store_write_ns: AtomicU64::new(0),
    store_writes: AtomicU64::new(0),
    store_read_ns: AtomicU64::new(0),
    store_reads: AtomicU64::new(0),
};

/// Name of the model client's instrumented span.
const MODEL_SPAN: &str = "create_message";

/// Busy-time bookkeeping stored in a span's extensions.
struct Busy {
    entered: Option<Instant>,
}

/// A `tracing` layer that adds the busy (polled) time of `cadre_llm`'s
/// `create_message` spans to [`TIMINGS`], and the `elapsed_secs` of every
/// `sqlx::query` statement event, split by whether the statement writes.
/// Install it with a filter that admits only `cadre_llm` spans at INFO and
/// `sqlx::query` events at DEBUG (see [`timing_filter`]).
#[derive(Debug, Default)]
pub struct TimingLayer;

/// Whether [`TimingLayer`] records (see [`TimingSwitch`]).
static TIMING_ON: AtomicBool = AtomicBool::new(false);

/// Turns [`TimingLayer`] on while it lives: the span and statement events it
/// needs are produced only then.
#[derive(Debug)]
pub struct TimingSwitch(());

impl TimingSwitch {
    /// Starts recording.
    pub fn on() -> TimingSwitch {
        TIMING_ON.store(true, Ordering::SeqCst);
        TimingSwitch(())
    }
}

impl Drop for TimingSwitch {
    fn drop(&mut self) {
        TIMING_ON.store(false, Ordering::SeqCst);
    }
}

/// The targets [`TimingLayer`] needs, and nothing else, while a
/// [`TimingSwitch`] is on (asked at every span and event, not cached).
pub fn timing_filter() -> impl tracing_subscriber::layer::Filter<tracing_subscriber::Registry> {
    use tracing_subscriber::filter::FilterExt;
    tracing_subscriber::filter::Targets::new()
        .with_target("cadre_llm", tracing::Level::INFO)
        .with_target("sqlx::query", tracing::Level::DEBUG)
        .and(tracing_subscriber::filter::filter_fn(|_| {
            TIMING_ON.load(Ordering::Relaxed)
        }))
}

impl<S> Layer<S> for TimingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() == MODEL_SPAN
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(Busy { entered: None });
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(busy) = span.extensions_mut().get_mut::<Busy>()
        {
            busy.entered = Some(Instant::now());
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(busy) = span.extensions_mut().get_mut::<Busy>()
            && let Some(entered) = busy.entered.take()
        {
            TIMINGS
                .model_busy_ns
                .fetch_add(entered.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && span.extensions().get::<Busy>().is_some()
        {
            TIMINGS.model_calls.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut visitor = StatementVisitor::default();
        event.record(&mut visitor);
        let Some(secs) = visitor.elapsed_secs else {
            return;
        };
        let ns = (secs * 1e9) as u64;
        if visitor.writes {
            TIMINGS.store_write_ns.fetch_add(ns, Ordering::Relaxed);
            TIMINGS.store_writes.fetch_add(1, Ordering::Relaxed);
        } else {
            TIMINGS.store_read_ns.fetch_add(ns, Ordering::Relaxed);
            TIMINGS.store_reads.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Pulls `summary` and `elapsed_secs` out of a `sqlx::query` event.
#[derive(Debug, Default)]
struct StatementVisitor {
    elapsed_secs: Option<f64>,
    writes: bool,
}

impl tracing::field::Visit for StatementVisitor {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            self.writes = statement_writes(value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.writes = statement_writes(&format!("{value:?}"));
        }
    }
}

/// True for statements that change the database (by their first keyword).
pub fn statement_writes(sql: &str) -> bool {
    let first = sql
        .trim_start_matches(|c: char| c == '"' || c.is_whitespace())
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "BEGIN" | "COMMIT" | "WITH"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn stat_lines_parse_even_with_odd_thread_names() {
        let line = "4242 (sqlx-sqlite-wor) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat(line), Some(("sqlx-sqlite-wor".to_owned(), 3.0)));
        let odd = "7 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 100 0 0 0";
        assert_eq!(parse_stat(odd), Some(("a (b) c".to_owned(), 1.0)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn threads_are_grouped_by_name() {
        assert_eq!(group_of("cadre-rt-w"), "engine");
        assert_eq!(group_of("sqlx-sqlite-wor"), "sqlite");
        assert_eq!(group_of("sim-rt"), "sim");
        assert_eq!(group_of("main"), "other");
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t   1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(status_field_kib(status, "VmHWM:"), Some(1234));
        assert_eq!(status_field_kib(status, "VmSwap:"), None);
        assert!(peak_rss_kib().is_some_and(|k| k > 0));
    }

    #[test]
    fn this_process_has_cpu_accounting() {
        let before = CpuSnapshot::take();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let after = CpuSnapshot::take();
        assert!(after.process >= before.process);
        assert!(!after.groups.is_empty());
    }

    #[test]
    fn statements_are_classified_by_their_first_keyword() {
        assert!(statement_writes("INSERT INTO events …"));
        assert!(statement_writes("update subtasks SET"));
        assert!(!statement_writes("SELECT seq FROM events"));
        assert!(!statement_writes(""));
    }
}
