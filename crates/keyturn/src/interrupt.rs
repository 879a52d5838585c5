//! Ctrl-C and SIGTERM for the commands that write. The first signal stops starting new work (a
//! secret or an account not yet begun is left untouched) and lets what is in flight reach its safe
//! point: a rotation is stored and promoted, or undone by its own failure handling; the command then
//! prints its table, says what was left and the one command that finishes it, and exits 130. A
//! second signal aborts at once and names the secrets whose work it cut off.
//!
//! Commands that only read (`status`, `audit`, `org check`, dry runs, `credential-process`) keep
//! the default: a signal ends them at once, which leaves nothing behind.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static STOPPING: AtomicBool = AtomicBool::new(false);
static IN_FLIGHT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// The exit code of a run that a signal stopped (128 + SIGINT, as shells report it).
pub const EXIT: u8 = 130;

/// What to run after an abort cut off work on these secrets.
pub type AbortAdvice = Box<dyn Fn(&[String]) -> String + Send + Sync>;

/// A run a signal stopped, once it printed what it did: the message says what was left and the
/// command that finishes it; keyturn exits [`EXIT`].
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// Handles SIGINT and SIGTERM (Ctrl-C on Windows) from here on (see the module's comment).
pub fn arm(advice: AbortAdvice) {
    let Some(mut signals) = Signals::install() else {
        tracing::warn!("signal handlers could not be installed: Ctrl-C ends keyturn at once");
        return;
    };
    tokio::spawn(async move {
        let first = signals.next().await;
        STOPPING.store(true, Ordering::SeqCst);
        eprintln!(
            "\nkeyturn: {first}: starting nothing new; the secrets in flight finish (stored, or \
             undone), then the table shows what was done and what was left. Press Ctrl-C again to \
             abort at once."
        );
        signals.next().await;
        let cut: Vec<String> = in_flight();
        if cut.is_empty() {
            eprintln!("keyturn: aborted at once; no secret was in flight");
        } else {
            eprintln!(
                "keyturn: aborted at once, cutting off the work on {} secret(s): {}. {}",
                cut.len(),
                cut.join(", "),
                advice(&cut)
            );
        }
        std::process::exit(EXIT.into());
    });
}

/// The signals that ask a run to stop: SIGINT and SIGTERM.
#[cfg(unix)]
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Option<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Some(Self {
            int: signal(SignalKind::interrupt()).ok()?,
            term: signal(SignalKind::terminate()).ok()?,
        })
    }

    /// Waits for the next signal and says what it was.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "interrupted (Ctrl-C)",
            _ = self.term.recv() => "asked to stop (SIGTERM)",
        }
    }
}

/// The signal that asks a run to stop elsewhere (Windows): Ctrl-C.
#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Option<Self> {
        Some(Self)
    }

    /// Waits for the next Ctrl-C (an error installing the handler reads as none ever coming).
    async fn next(&mut self) -> &'static str {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        "interrupted (Ctrl-C)"
    }
}

/// Whether a signal asked the run to stop starting new work.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

fn in_flight() -> Vec<String> {
    IN_FLIGHT
        .lock()
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default()
}

/// Marks a secret as in flight while it lives, so an abort can name it.
pub struct Busy(String);

impl Busy {
    pub fn enter(secret: &str) -> Busy {
        if let Ok(mut s) = IN_FLIGHT.lock() {
            s.insert(secret.to_string());
        }
        Busy(secret.to_string())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut s) = IN_FLIGHT.lock() {
            s.remove(&self.0);
        }
    }
}

/// The command line this process was started with, changed: every word in `drop_words` removed,
/// every flag in `drop_flags` removed with its value (`--flag v` and `--flag=v`), then `append`
/// added; quoted for a POSIX shell.
pub fn command_line(drop_words: &[&str], drop_flags: &[&str], append: &[String]) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut args = std::env::args();
    words.extend(args.next());
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if drop_words.contains(&arg.as_str()) {
            continue;
        }
        if let Some(flag) = drop_flags.iter().find(|f| {
            arg == **f
                || arg
                    .strip_prefix(**f)
                    .is_some_and(|rest| rest.starts_with('='))
        }) {
            skip_value = arg == *flag;
            continue;
        }
        words.push(arg);
    }
    words.extend(append.iter().cloned());
    words
        .iter()
        .map(|w| {
            shlex::try_quote(w)
                .map(|q| q.into_owned())
                .unwrap_or_else(|_| w.clone())
        })
        .collect::<Vec<_>>()
        .join(" ")
}
