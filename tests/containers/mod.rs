//! Seshat on the Docker engine: an image built `FROM scratch` from the
//! host-built server binary, and a cluster of its containers on private
//! networks where partitions are `docker network disconnect` and crashes are
//! `docker kill`. Used by `tests/tests/containers.rs`.
//!
//! - [`engine`]: the Docker CLI with deadlines, labels, stale-resource sweep.
//! - [`image`]: build context (binary + `ldd` libraries) and `docker build`.
//! - [`network`]: internal networks on free random subnets.
//! - [`cluster`]: containers, bootstrap via the admin API, faults, cleanup.
//! - [`Timeline`]: what happened when, for the test's report.

pub mod cluster;
pub mod engine;
pub mod image;
pub mod network;

use std::fmt;
use std::time::{Duration, Instant};

/// Timestamped notes of a scenario, printed at the end (and on failure).
#[derive(Debug)]
pub struct Timeline {
    start: Instant,
    events: Vec<(Duration, String)>,
}

impl Timeline {
    /// A timeline whose zero is now.
    pub fn new() -> Self {
        Self { start: Instant::now(), events: Vec::new() }
    }

    /// Record `what` at the current time (also logged as it happens).
    pub fn note(&mut self, what: impl Into<String>) {
        let what = what.into();
        tracing::info!("{what}");
        self.events.push((self.start.elapsed(), what));
    }

    /// Time since the timeline started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "timeline:")?;
        for (t, what) in &self.events {
            writeln!(f, "  {:>6.1}s  {what}", t.as_secs_f64())?;
        }
        Ok(())
    }
}
