//! Paced replication to the followers a commit does not need.
//!
//! A leader commits an entry once a majority holds it: in a three-node
//! cluster, itself and one follower. openraft replicates to every follower
//! as fast as each answers, so under load each follower receives, writes,
//! fsyncs and acknowledges a round of entries per commit round, and on a
//! machine whose nodes share cores (`seshat local`) the spare follower's
//! rounds take CPU from the ones that decide the commit. Here the leader
//! sends a spare follower at most one round of entries per interval
//! ([`DEFAULT_SPARE_INTERVAL`] unless configured); what arrives meanwhile
//! goes in its next, larger, round. Measured on 2 cores (`redis-benchmark -t
//! set -c 50` against `seshat local --nodes 3`, 3 A/B pairs against an
//! interval of 0): the spare follower's CPU per SET fell from 8.5–10.4 to
//! 4.5–5.5 µs, and SET/s rose 4–13%.
//!
//! Which followers are spare: of the voters other than the leader, a commit
//! needs `voters / 2`. The followers that acknowledged an AppendEntries in
//! the last [`HEALTHY_WITHIN`] are ranked by their smoothed round-trip time;
//! the `voters / 2` fastest are the commit's, the others are spare. A spare
//! follower's round trip counts double in that ranking, so that two similar
//! followers do not swap roles with every jitter.
//!
//! Invariants:
//! - Safety does not depend on this: it only delays sends, which Raft allows
//!   for any message.
//! - A commit never waits on pacing while enough followers are healthy: the
//!   ones it needs are never held. When one of them stops answering, it stops
//!   counting as healthy after [`HEALTHY_WITHIN`], and from then on no
//!   follower is held for want of a healthy replacement; until then a commit
//!   waits at most one interval longer per round.
//! - A follower far behind the leader's log (catching up after a restart or
//!   a partition) is never held: only a follower near the tip is paced.
//! - Learners and joint memberships are never paced.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::ServerState;

use crate::raft::{NodeId, Raft};

/// By default a spare follower gets at most one round of entries this often.
pub const DEFAULT_SPARE_INTERVAL: Duration = Duration::from_millis(2);
/// A follower that acknowledged within this counts as able to commit.
pub const HEALTHY_WITHIN: Duration = Duration::from_millis(10);
/// A follower whose next entries are further than this behind the leader's
/// last log index is catching up and is never held.
const CATCHING_UP_ENTRIES: u64 = 1_000;
/// A spare follower's round trip is multiplied by this when ranked.
const SPARE_RTT_HANDICAP: u32 = 2;

/// Shared by the leader's replication streams: who is spare, and when each
/// spare follower may get its next round.
#[derive(Debug)]
pub struct ReplicationPacer {
    me: NodeId,
    interval: Duration,
    raft: OnceLock<Raft>,
    followers: Mutex<HashMap<NodeId, FollowerTiming>>,
    held: AtomicU64,
}

/// What the pacer knows of one follower's recent AppendEntries.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FollowerTiming {
    /// When it last acknowledged an AppendEntries.
    pub last_ack: Option<Instant>,
    /// Smoothed send-to-reply time of its AppendEntries that carried
    /// entries; zero until one has been answered.
    pub rtt: Duration,
    /// When it was last sent entries.
    pub last_sent: Option<Instant>,
    /// Whether it was spare when last sent entries.
    pub spare: bool,
}

impl ReplicationPacer {
    /// A pacer for node `me` that sends a spare follower at most one round
    /// per `interval` (zero: never holds); it holds nothing until
    /// [`Self::attach`].
    pub fn new(me: NodeId, interval: Duration) -> Self {
        ReplicationPacer { me, interval, raft: OnceLock::new(), followers: Mutex::default(), held: AtomicU64::new(0) }
    }

    /// Gives the pacer the Raft handle whose metrics say who the voters are.
    pub fn attach(&self, raft: Raft) {
        let _ = self.raft.set(raft);
    }

    /// AppendEntries rounds held back so far.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// The followers found spare when last sent entries, by id.
    pub fn spare_followers(&self) -> Vec<NodeId> {
        let followers = self.followers.lock().expect("pacer lock poisoned");
        let mut spare: Vec<NodeId> = followers.iter().filter(|(_, f)| f.spare).map(|(id, _)| *id).collect();
        spare.sort_unstable();
        spare
    }

    /// Waits until entries up to `last_index` may be sent to `target` (at
    /// once unless it is a spare follower whose next round is not due), and
    /// records the send; returns its instant.
    pub async fn wait_turn(&self, target: NodeId, last_index: u64) -> Instant {
        if let Some(due) = self.send_at(target, last_index, Instant::now()) {
            tokio::time::sleep_until(due.into()).await;
        }
        let sent = Instant::now();
        self.followers.lock().expect("pacer lock poisoned").entry(target).or_default().last_sent = Some(sent);
        sent
    }

    /// When entries up to `last_index` may be sent to `target`: `None` for
    /// now, or the instant a spare follower's next round is due.
    fn send_at(&self, target: NodeId, last_index: u64, now: Instant) -> Option<Instant> {
        if self.interval.is_zero() {
            return None;
        }
        let raft = self.raft.get()?;
        let metrics = raft.metrics();
        let m = metrics.borrow_watched();
        if m.state != ServerState::Leader || m.current_leader != Some(self.me) {
            return None;
        }
        if m.last_log_index.unwrap_or(0).saturating_sub(last_index) > CATCHING_UP_ENTRIES {
            return None;
        }
        let membership = m.membership_config.membership();
        if membership.get_joint_config().len() != 1 {
            return None;
        }
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        drop(m);
        let mut followers = self.followers.lock().expect("pacer lock poisoned");
        // Forget members that left (a replaced pod comes back with a new id).
        followers.retain(|id, _| voters.contains(id));
        let spare = is_spare(target, self.me, &voters, &followers, now);
        let timing = followers.entry(target).or_default();
        timing.spare = spare;
        if !spare {
            return None;
        }
        let due = timing.last_sent? + self.interval;
        (due > now).then(|| {
            self.held.fetch_add(1, Ordering::Relaxed);
            due
        })
    }

    /// Records `target`'s answer to an AppendEntries at `at`, with the round
    /// trip when it carried entries.
    pub fn acknowledged(&self, target: NodeId, rtt: Option<Duration>, at: Instant) {
        let mut followers = self.followers.lock().expect("pacer lock poisoned");
        let f = followers.entry(target).or_default();
        if let Some(rtt) = rtt {
            // An exponential average over about the last 8 rounds.
            f.rtt = if f.rtt.is_zero() { rtt } else { (f.rtt * 7 + rtt) / 8 };
        }
        f.last_ack = Some(at);
    }
}

/// Whether `target` is a spare follower: the commit has enough healthy,
/// faster followers without it. See the module docs.
pub(crate) fn is_spare(
    target: NodeId,
    me: NodeId,
    voters: &BTreeSet<NodeId>,
    followers: &HashMap<NodeId, FollowerTiming>,
    now: Instant,
) -> bool {
    if target == me || !voters.contains(&target) || !voters.contains(&me) {
        return false;
    }
    let needed = voters.len() / 2;
    let healthy = |id: &NodeId| {
        followers.get(id).and_then(|f| f.last_ack).is_some_and(|at| now.saturating_duration_since(at) <= HEALTHY_WITHIN)
    };
    // Unmeasured (no round of entries answered yet) ranks last; ties go to
    // the lower id. A spare follower's round trip counts double, so that
    // the roles change only when the needed one has become clearly slower,
    // not with every jitter of two similar round trips.
    let rank = |id: &NodeId| {
        let rtt = match followers.get(id) {
            Some(f) if !f.rtt.is_zero() => f.rtt.saturating_mul(if f.spare { SPARE_RTT_HANDICAP } else { 1 }),
            _ => Duration::MAX,
        };
        (rtt, *id)
    };
    let target_rank = if healthy(&target) { rank(&target) } else { (Duration::MAX, NodeId::MAX) };
    let ahead =
        voters.iter().filter(|id| **id != me && **id != target && healthy(id) && rank(id) < target_rank).count();
    ahead >= needed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(ack_ago_ms: Option<u64>, rtt_us: u64, now: Instant) -> FollowerTiming {
        FollowerTiming {
            last_ack: ack_ago_ms.map(|ms| now - Duration::from_millis(ms)),
            rtt: Duration::from_micros(rtt_us),
            last_sent: None,
            spare: false,
        }
    }

    /// The followers `is_spare` picks, leader 1 of `voters`.
    fn spare(voters: &[NodeId], followers: &HashMap<NodeId, FollowerTiming>, now: Instant) -> Vec<NodeId> {
        let voter_set: BTreeSet<NodeId> = voters.iter().copied().collect();
        voters.iter().copied().filter(|t| *t != 1 && is_spare(*t, 1, &voter_set, followers, now)).collect()
    }

    #[test]
    fn the_slower_of_two_healthy_followers_is_spare() {
        let now = Instant::now();
        let followers = HashMap::from([(2, timing(Some(1), 300, now)), (3, timing(Some(1), 500, now))]);
        assert_eq!(spare(&[1, 2, 3], &followers, now), vec![3]);
    }

    #[test]
    fn the_only_follower_able_to_commit_is_never_spare() {
        let now = Instant::now();
        let quiet = HEALTHY_WITHIN.as_millis() as u64 + 1;
        let followers = HashMap::from([(2, timing(Some(quiet), 100, now)), (3, timing(Some(1), 500, now))]);
        // 3 is the only follower able to commit; the quiet 2 is not needed while 3 answers.
        assert_eq!(spare(&[1, 2, 3], &followers, now), vec![2]);
    }

    #[test]
    fn five_voters_keep_two_followers_unpaced() {
        let now = Instant::now();
        let followers = HashMap::from([
            (2, timing(Some(1), 100, now)),
            (3, timing(Some(1), 200, now)),
            (4, timing(Some(1), 300, now)),
            (5, timing(None, 0, now)),
        ]);
        assert_eq!(spare(&[1, 2, 3, 4, 5], &followers, now), vec![4, 5]);
    }

    #[test]
    fn equal_round_trips_rank_by_id_so_exactly_one_is_spare() {
        let now = Instant::now();
        let followers = HashMap::from([(2, timing(Some(1), 300, now)), (3, timing(Some(1), 300, now))]);
        assert_eq!(spare(&[1, 2, 3], &followers, now), vec![3]);
    }

    #[test]
    fn a_spare_follower_stays_spare_until_the_needed_one_is_twice_as_slow() {
        let now = Instant::now();
        let was_spare = FollowerTiming { spare: true, ..timing(Some(1), 300, now) };
        let followers = HashMap::from([(2, timing(Some(1), 500, now)), (3, was_spare)]);
        assert_eq!(spare(&[1, 2, 3], &followers, now), vec![3], "a little faster is not enough to swap");
        let followers = HashMap::from([(2, timing(Some(1), 700, now)), (3, was_spare)]);
        assert_eq!(spare(&[1, 2, 3], &followers, now), vec![2], "more than twice as fast: the roles swap");
    }

    #[test]
    fn small_clusters_and_learners_are_never_paced() {
        let now = Instant::now();
        let followers = HashMap::from([(2, timing(Some(1), 100, now)), (3, timing(Some(1), 100, now))]);
        // Two voters: the one follower is always needed.
        assert!(!is_spare(2, 1, &BTreeSet::from([1, 2]), &followers, now));
        // 3 is a learner here.
        assert!(!is_spare(3, 1, &BTreeSet::from([1, 2]), &followers, now));
        // Not a voter itself (being removed): no pacing.
        assert!(!is_spare(3, 1, &BTreeSet::from([2, 3, 4]), &followers, now));
    }
}
