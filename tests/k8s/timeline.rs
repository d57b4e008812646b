//! The timeline of a scenario: every notable change, stamped with the time since the
//! scenario began, printed as it happens and kept for the final report.
//!
//! Sources: the scenario itself (its steps and checks), the node agent (process starts,
//! signals, exits, volume wipes), and the watchers of `observe` (pods, the cluster's
//! status, the operator's Events). One shared [`Timeline`] serves all of them; a new
//! scenario [`Timeline::begin`]s a fresh one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A shared, append-only log of one scenario at a time.
#[derive(Clone)]
pub struct Timeline {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    scenario: String,
    start: Instant,
    lines: Vec<String>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Timeline {
    /// An empty timeline for the set-up phase.
    pub fn new() -> Self {
        Self { inner: Arc::new(Mutex::new(Inner { scenario: "setup".into(), start: Instant::now(), lines: vec![] })) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Appends only: a panic elsewhere cannot leave it inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts scenario `name`: the clock restarts and earlier lines are dropped.
    pub fn begin(&self, name: &str) {
        let mut g = self.lock();
        g.scenario = name.to_owned();
        g.start = Instant::now();
        g.lines.clear();
        println!("\n=== {name}");
    }

    /// Time since the scenario began.
    pub fn elapsed(&self) -> Duration {
        self.lock().start.elapsed()
    }

    /// Records (and prints) one line.
    pub fn note(&self, text: impl AsRef<str>) {
        let mut g = self.lock();
        let line = format!("+{:7.2}s  {}", g.start.elapsed().as_secs_f64(), text.as_ref());
        println!("[{}] {line}", g.scenario);
        g.lines.push(line);
    }

    /// The current scenario's lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lock().lines.clone()
    }
}
