//! Logging set-up: `tracing` to journald on the appliance, to stderr elsewhere, and the
//! [`Redacted`] wrapper for ids in log fields.
//!
//! What it is: [`init`] installs the process-wide subscriber once, at start-up; [`dispatch`]
//! builds the same subscriber without installing it (tests, tools). The journald layer is
//! used when its socket answers (`tracing_journald::layer()` fails with `NotFound` when
//! there is none, and does not panic); otherwise events go to stderr as plain text. The
//! filter is `RUST_LOG` when set, the caller's default otherwise, in `EnvFilter` syntax.
//!
//! What it is not: a place for personal data. Log fields carry ids only through
//! [`Redacted`] (last three characters shown, as `ResidentId`'s `Debug` does); PINs and
//! passphrases have no `Display` and a redacted `Debug`, so they cannot be logged by
//! accident. This module does not write files.

use std::fmt;

use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::EnvFilter;

/// Where events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    /// The systemd journal (the appliance).
    Journald,
    /// Standard error, as text (development machines, containers, CI).
    Stderr,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggingError {
    /// `RUST_LOG` (or the default filter) is not a valid filter directive.
    #[error("bad log filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// A global subscriber was installed already (`init` called twice).
    #[error("logging was already set up")]
    AlreadySet(#[from] tracing::subscriber::SetGlobalDefaultError),
}

/// Installs the process-wide subscriber: journald if its socket answers, else stderr.
///
/// `default_filter` (for example `"info"` or `"jpki_kiosk=debug,info"`) applies when
/// `RUST_LOG` is unset.
pub fn init(default_filter: &str) -> Result<LogSink, LoggingError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(rust_log.as_deref(), default_filter)?;
    let (dispatch, sink) = dispatch(filter, std::io::stderr);
    tracing::dispatcher::set_global_default(dispatch)?;
    Ok(sink)
}

/// The filter from `RUST_LOG` if given, else from `default_filter`.
pub fn filter(rust_log: Option<&str>, default_filter: &str) -> Result<EnvFilter, LoggingError> {
    let directives = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or(default_filter);
    Ok(EnvFilter::builder().parse(directives)?)
}

/// Builds the subscriber [`init`] installs, with `fallback` in place of stderr when there
/// is no journald socket.
pub fn dispatch<W>(filter: EnvFilter, fallback: W) -> (Dispatch, LogSink)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let journald = tracing_journald::layer().ok();
    let sink = match journald {
        Some(_) => LogSink::Journald,
        None => LogSink::Stderr,
    };
    let text = journald
        .is_none()
        .then(|| tracing_subscriber::fmt::layer().with_writer(fallback).with_ansi(false));
    let subscriber = tracing_subscriber::registry().with(filter).with(journald).with(text);
    (Dispatch::new(subscriber), sink)
}

/// An id for a log field, shown as its last three characters: `*******001`.
///
/// `tracing::info!(resident = %Redacted(id.as_str()), "registry checked")`.
#[derive(Clone, Copy)]
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(self.0))
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redacted({})", redact(self.0))
    }
}

/// Replaces all but the last three characters of `id` with `*` (one per character).
pub fn redact(id: &str) -> String {
    let n = id.chars().count();
    let hidden = n.saturating_sub(3);
    let mut out = "*".repeat(hidden);
    out.extend(id.chars().skip(hidden));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_the_last_three_characters() {
        assert_eq!(redact("1000000001"), "*******001");
        assert_eq!(redact("AB"), "AB");
        assert_eq!(redact(""), "");
        assert_eq!(redact("カード番号123"), "*****123");
        assert_eq!(format!("{}", Redacted("1000000001")), "*******001");
        assert_eq!(format!("{:?}", Redacted("1000000001")), "Redacted(*******001)");
        // The same form as the registry's own ids.
        let rid = crate::registry::ResidentId::new("1000000001").unwrap();
        assert_eq!(redact(rid.as_str()), rid.redacted());
    }

    #[test]
    fn rust_log_wins_over_the_default_and_bad_filters_are_errors() {
        assert_eq!(
            filter(Some("jpki_kiosk=trace"), "info").unwrap().to_string(),
            "jpki_kiosk=trace"
        );
        assert_eq!(filter(None, "warn").unwrap().to_string(), "warn");
        assert_eq!(filter(Some(" "), "warn").unwrap().to_string(), "warn");
        assert!(matches!(filter(Some("jpki_kiosk=loud"), "info"), Err(LoggingError::Filter(_))));
    }
}
