//! Lease-based leader election (`coordination.k8s.io/v1`), so that of the
//! operator's replicas exactly one reconciles at a time.
//!
//! The algorithm is client-go's:
//! - A candidate takes the Lease when nobody holds it, or when the holder's record
//!   has not changed for `lease_duration` *as measured by the candidate's own
//!   monotonic clock* since it first saw that record. Comparing against the
//!   `renewTime` written by another machine would trust that machine's wall clock.
//! - Every write is a `replace` carrying the `resourceVersion` that was read, so two
//!   candidates racing for the same expired Lease cannot both win: the API server
//!   rejects the second write with 409 Conflict.
//! - The holder renews every `renew_interval`. If it cannot renew for
//!   `renew_deadline` (< `lease_duration`), it steps down *before* the Lease can
//!   expire for others, so two replicas never both believe they lead (given bounded
//!   clock-rate drift, the same assumption client-go makes).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// Errors of one election round.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// The API server refused or failed a Lease request.
    #[error("lease request failed: {0}")]
    Kube(#[from] kube::Error),
}

/// Timing and identity of an elector.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// Lease name (one per operator installation).
    pub lease_name: String,
    /// Unique identity of this replica (its pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// The holder steps down when it could not renew for this long; `< lease_duration`.
    pub renew_deadline: Duration,
    /// Interval between renewals (holder) and between attempts (candidate).
    pub renew_interval: Duration,
}

impl ElectionConfig {
    /// 15 s lease, renewed every 5 s, given up after 10 s without a successful renewal.
    pub fn new(lease_name: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            lease_name: lease_name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew_interval: Duration::from_secs(5),
        }
    }
}

/// The part of a Lease record that changes on every renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<String>,
    transitions: Option<i32>,
}

impl Record {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.map(|t| t.0.to_string()),
            transitions: spec.lease_transitions,
        }
    }
}

/// One replica's side of the election.
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: ElectionConfig,
    /// The last record seen and when (local monotonic clock) it was first seen.
    observed: Option<(Record, Instant)>,
}

impl LeaderElector {
    /// An elector over Leases in `api`'s namespace.
    pub fn new(api: Api<Lease>, cfg: ElectionConfig) -> Self {
        Self { api, cfg, observed: None }
    }

    fn now() -> MicroTime {
        MicroTime(Timestamp::now())
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.cfg.lease_duration.as_secs()).unwrap_or(i32::MAX).max(1)
    }

    /// One attempt to acquire or renew. `Ok(true)`: this replica holds the Lease now.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, ElectionError> {
        let now = Self::now();
        let Some(current) = self.api.get_opt(&self.cfg.lease_name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.cfg.lease_name.clone()), ..ObjectMeta::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.cfg.identity.clone()),
                    lease_duration_seconds: Some(self.lease_seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observed = Some((Record::of(&created), Instant::now()));
                    Ok(true)
                }
                // Another candidate created it first.
                Err(kube::Error::Api(s)) if s.is_already_exists() || s.is_conflict() => Ok(false),
                Err(e) => Err(e.into()),
            };
        };

        let record = Record::of(&current);
        let first_seen = match &self.observed {
            Some((seen, at)) if *seen == record => *at,
            _ => Instant::now(),
        };
        self.observed = Some((record.clone(), first_seen));

        let held_by_me = record.holder.as_deref() == Some(self.cfg.identity.as_str());
        let spec = current.spec.clone().unwrap_or_default();
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.cfg.lease_duration);
        let expired = first_seen.elapsed() >= duration;
        if !held_by_me && record.holder.is_some() && !expired {
            return Ok(false);
        }

        let mut lease = current;
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if !held_by_me {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.cfg.identity.clone());
        spec.lease_duration_seconds = Some(self.lease_seconds());
        spec.renew_time = Some(now);
        // `lease` still carries the resourceVersion we read: a concurrent writer makes
        // this replace fail with 409 instead of silently sharing leadership.
        match self.api.replace(&self.cfg.lease_name, &PostParams::default(), &lease).await {
            Ok(updated) => {
                self.observed = Some((Record::of(&updated), Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the Lease up (best effort) so a standby takes over without waiting for
    /// expiry. Only clears it when this replica still holds it.
    pub async fn release(&mut self) -> Result<(), ElectionError> {
        let Some(mut lease) = self.api.get_opt(&self.cfg.lease_name).await? else {
            return Ok(());
        };
        if Record::of(&lease).holder.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(Self::now());
        match self.api.replace(&self.cfg.lease_name, &PostParams::default(), &lease).await {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs the election until `leading` has no receivers left, publishing `true`
    /// while this replica holds the Lease and `false` as soon as it may not.
    pub async fn run(mut self, leading: watch::Sender<bool>) {
        let mut last_renewal: Option<Instant> = None;
        while !leading.is_closed() {
            let is_leader = *leading.borrow();
            let mut retry_soon = false;
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    last_renewal = Some(Instant::now());
                    if !is_leader {
                        tracing::info!(identity = %self.cfg.identity, lease = %self.cfg.lease_name, "acquired leadership");
                        leading.send_replace(true);
                    }
                }
                Ok(false) => {
                    if is_leader {
                        tracing::warn!(identity = %self.cfg.identity, "lease taken by another replica; stepping down");
                        leading.send_replace(false);
                    }
                    last_renewal = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "leader election round failed");
                    // Past the deadline without a renewal another replica may take the
                    // Lease legitimately: stop acting before that can happen.
                    if is_leader && last_renewal.is_none_or(|t| t.elapsed() >= self.cfg.renew_deadline) {
                        tracing::error!(identity = %self.cfg.identity, "could not renew the lease in time; stepping down");
                        leading.send_replace(false);
                        last_renewal = None;
                    }
                    // A leader retries faster than its cadence while the deadline runs.
                    retry_soon = *leading.borrow();
                }
            }
            let pause = if retry_soon { self.cfg.renew_interval / 4 } else { self.cfg.renew_interval };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = leading.closed() => {}
            }
        }
        if let Err(e) = self.release().await {
            tracing::warn!(error = %e, "could not release the lease");
        }
    }
}
