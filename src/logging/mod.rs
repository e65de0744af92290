//! NodePass's log lines on stdout: `YYYY-MM-DD HH:MM:SS.mmm  <LEVEL>  message`, local time,
//! the level word in ANSI colour, and the EVENT level the master reads statistics from.
//! Go NodePass always colours; we colour only when `main` says so ([`set_colour`]: stdout
//! is a terminal and `NO_COLOR` is unset), so journald, files and pipes get plain text.
//!
//! A small `log::Log` of our own rather than `env_logger`: the line format, the EVENT level
//! (a record with target [`EVENT_TARGET`]) and NodePass's level filter (`event` shows only
//! EVENT lines) are each a few lines here, while env_logger would need a custom formatter,
//! a custom filter and its `RUST_LOG` parsing turned off. Each line is built in a
//! thread-local buffer and written with one `write` under the stdout lock, so lines from
//! different threads never interleave.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::config::LogLevel;

mod flood;
mod peer;
mod time;

pub use flood::{Flood, Hit, FLOOD_REPORT_EVERY};
pub use peer::{peer, PeerText, PEER_TEXT_MAX};
use time::now_local;
pub use time::{utc_fields, LocalTime};

/// The `log` target that marks a record as an EVENT line (logged at `Error` level).
pub const EVENT_TARGET: &str = "np::event";

/// Log an EVENT line (e.g. `CHECK_POINT|…`): `np_event!("CHECK_POINT|MODE={}", mode)`.
#[macro_export]
macro_rules! np_event {
    ($($arg:tt)+) => {
        ::log::error!(target: $crate::logging::EVENT_TARGET, $($arg)+)
    };
}

/// The level word of one printed line, in NodePass's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// `DEBUG`, blue.
    Debug,
    /// `INFO`, green.
    Info,
    /// `WARN`, yellow.
    Warn,
    /// `ERROR`, red.
    Error,
    /// `EVENT`, cyan: statistics lines for the master.
    Event,
}

impl Severity {
    /// The word printed between the colour codes.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
            Severity::Event => "EVENT",
        }
    }

    /// The ANSI colour escape that precedes the word.
    pub fn colour(self) -> &'static str {
        match self {
            Severity::Debug => "\x1b[34m",
            Severity::Info => "\x1b[32m",
            Severity::Warn => "\x1b[33m",
            Severity::Error => "\x1b[31m",
            Severity::Event => "\x1b[36m",
        }
    }

    /// The severity of a `log` record: EVENT by target, otherwise by level; `Trace` has
    /// no NodePass word and is never printed.
    pub fn of(level: log::Level, target: &str) -> Option<Severity> {
        if target == EVENT_TARGET {
            return Some(Severity::Event);
        }
        match level {
            log::Level::Error => Some(Severity::Error),
            log::Level::Warn => Some(Severity::Warn),
            log::Level::Info => Some(Severity::Info),
            log::Level::Debug => Some(Severity::Debug),
            log::Level::Trace => None,
        }
    }
}

/// Whether `log=threshold` prints a line of `severity`: that level and above; `event`
/// only EVENT lines; `none` nothing.
pub fn shows(threshold: LogLevel, severity: Severity) -> bool {
    let floor = match threshold {
        LogLevel::None => return false,
        LogLevel::Event => return severity == Severity::Event,
        LogLevel::Debug => Severity::Debug,
        LogLevel::Info => Severity::Info,
        LogLevel::Warn => Severity::Warn,
        LogLevel::Error => Severity::Error,
    };
    severity >= floor
}

/// One complete line, `\n` included, exactly as NodePass prints it (level word in colour).
pub fn format_line(time: &LocalTime, severity: Severity, msg: fmt::Arguments<'_>) -> String {
    let mut line = String::with_capacity(64);
    write_line(&mut line, time, severity, true, msg);
    line
}

/// One complete line without ANSI escapes (what a pipe, a file or `NO_COLOR` gets).
pub fn format_plain_line(time: &LocalTime, severity: Severity, msg: fmt::Arguments<'_>) -> String {
    let mut line = String::with_capacity(64);
    write_line(&mut line, time, severity, false, msg);
    line
}

fn write_line(
    out: &mut String,
    t: &LocalTime,
    severity: Severity,
    colour: bool,
    msg: fmt::Arguments<'_>,
) {
    let (start, end) = if colour {
        (severity.colour(), "\x1b[0m")
    } else {
        ("", "")
    };
    let _ = writeln!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}  {start}{}{end}  {}",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.millis,
        severity.word(),
        msg
    );
}

/// Whether the level word is coloured (default: yes, as Go NodePass). `main` turns it off
/// when stdout is not a terminal or `NO_COLOR` is set.
pub fn set_colour(on: bool) {
    COLOUR.store(on, Ordering::Relaxed);
}

static COLOUR: AtomicBool = AtomicBool::new(true);

/// Install the logger (first call) and set the level filter (every call).
pub fn init(level: LogLevel) {
    LOGGER.threshold.store(level_code(level), Ordering::Relaxed);
    // A second `set_logger` fails harmlessly: the logger is already ours.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(match level {
        LogLevel::None => log::LevelFilter::Off,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Error | LogLevel::Event => log::LevelFilter::Error,
    });
}

/// Log an EVENT line; the function form of [`np_event!`](crate::np_event).
pub fn event(msg: fmt::Arguments<'_>) {
    log::error!(target: EVENT_TARGET, "{msg}");
}

static LOGGER: NodepassLogger = NodepassLogger {
    threshold: AtomicU8::new(1),
};

const LEVELS: [LogLevel; 6] = [
    LogLevel::Debug,
    LogLevel::Info,
    LogLevel::Warn,
    LogLevel::Error,
    LogLevel::Event,
    LogLevel::None,
];

fn level_code(level: LogLevel) -> u8 {
    LEVELS.iter().position(|l| *l == level).unwrap_or(1) as u8
}

struct NodepassLogger {
    threshold: AtomicU8,
}

impl NodepassLogger {
    fn severity(&self, metadata: &log::Metadata<'_>) -> Option<Severity> {
        let threshold = LEVELS[usize::from(self.threshold.load(Ordering::Relaxed)) % LEVELS.len()];
        let severity = Severity::of(metadata.level(), metadata.target())?;
        // Dependencies (rustls, monoio) speak only when something is wrong.
        let ours =
            metadata.target().starts_with("nodepass") || metadata.target().starts_with("np::");
        (shows(threshold, severity) && (ours || severity >= Severity::Warn)).then_some(severity)
    }
}

impl log::Log for NodepassLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.severity(metadata).is_some()
    }

    fn log(&self, record: &log::Record<'_>) {
        let Some(severity) = self.severity(record.metadata()) else {
            return;
        };
        let time = now_local();
        let emit = |buf: &mut String| {
            buf.clear();
            let colour = COLOUR.load(Ordering::Relaxed);
            write_line(buf, &time, severity, colour, *record.args());
            // One write under the lock: stdout's LineWriter passes a complete line straight through.
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(buf.as_bytes());
            let _ = out.flush();
        };
        let reused = LINE.try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                emit(&mut buf);
                if buf.capacity() > 64 * 1024 {
                    *buf = String::with_capacity(256);
                }
            }
            Err(_) => emit(&mut String::new()),
        });
        if reused.is_err() {
            emit(&mut String::new());
        }
    }

    fn flush(&self) {
        let _ = std::io::stdout().lock().flush();
    }
}

thread_local! {
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(256));
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Log as _;

    const T: LocalTime = LocalTime {
        year: 2026,
        month: 1,
        day: 2,
        hour: 3,
        minute: 4,
        second: 5,
        millis: 67,
    };

    #[test]
    fn lines_have_nodepass_layout_and_colours() {
        let table = [
            (Severity::Debug, "\x1b[34mDEBUG\x1b[0m"),
            (Severity::Info, "\x1b[32mINFO\x1b[0m"),
            (Severity::Warn, "\x1b[33mWARN\x1b[0m"),
            (Severity::Error, "\x1b[31mERROR\x1b[0m"),
            (Severity::Event, "\x1b[36mEVENT\x1b[0m"),
        ];
        for (severity, word) in table {
            assert_eq!(
                format_line(&T, severity, format_args!("hello {}", 42)),
                format!("2026-01-02 03:04:05.067  {word}  hello 42\n")
            );
        }
    }

    #[test]
    fn plain_lines_have_the_same_layout_without_escapes() {
        let line = format_plain_line(&T, Severity::Warn, format_args!("hello"));
        assert_eq!(line, "2026-01-02 03:04:05.067  WARN  hello\n");
    }

    #[test]
    fn level_filter_shows_the_level_and_above_event_only_or_nothing() {
        use Severity::*;
        let all = [Debug, Info, Warn, Error, Event];
        let table: [(LogLevel, &[Severity]); 6] = [
            (LogLevel::Debug, &all),
            (LogLevel::Info, &[Info, Warn, Error, Event]),
            (LogLevel::Warn, &[Warn, Error, Event]),
            (LogLevel::Error, &[Error, Event]),
            (LogLevel::Event, &[Event]),
            (LogLevel::None, &[]),
        ];
        for (threshold, shown) in table {
            for severity in all {
                assert_eq!(
                    shows(threshold, severity),
                    shown.contains(&severity),
                    "log={} {severity:?}",
                    threshold.as_str()
                );
            }
        }
    }

    #[test]
    fn event_target_makes_an_event_and_trace_is_never_printed() {
        assert_eq!(
            Severity::of(log::Level::Error, EVENT_TARGET),
            Some(Severity::Event)
        );
        assert_eq!(
            Severity::of(log::Level::Error, "nodepass::app"),
            Some(Severity::Error)
        );
        assert_eq!(Severity::of(log::Level::Trace, "nodepass::app"), None);
    }

    #[test]
    fn dependency_records_pass_only_at_warn_and_above() {
        let logger = NodepassLogger {
            threshold: AtomicU8::new(level_code(LogLevel::Debug)),
        };
        let md = |level, target| log::Metadata::builder().level(level).target(target).build();
        assert!(logger.enabled(&md(log::Level::Debug, "nodepass::control")));
        assert!(logger.enabled(&md(log::Level::Error, EVENT_TARGET)));
        assert!(!logger.enabled(&md(log::Level::Debug, "rustls::client")));
        assert!(logger.enabled(&md(log::Level::Warn, "rustls::client")));
        logger
            .threshold
            .store(level_code(LogLevel::Event), Ordering::Relaxed);
        assert!(!logger.enabled(&md(log::Level::Error, "nodepass::control")));
        assert!(logger.enabled(&md(log::Level::Error, EVENT_TARGET)));
    }
}
