//! ReadIndex leadership confirmation that asks only a quorum, and not the
//! followers' Raft cores.
//!
//! A ReadIndex read needs proof that, at a moment after the read arrived, no
//! newer leader could have committed a write this leader lacks. openraft gets
//! it from a heartbeat to every follower, each handled by that follower's
//! Raft core: under a read load that was about a third of all the nodes' CPU.
//! A round here asks only as many followers as make a quorum with the leader
//! (one of the two in a three-node cluster), the one that answered first
//! last time, with a small `ConfirmLeader` RPC that the follower answers from
//! its persisted vote. The others are asked only when that one is slow.
//!
//! Why a confirmed round is linearizable (the invariants it rests on):
//! 1. *Read index.* The reads run once the state machine has applied both
//!    an entry proposed under this leader's own vote (its first entry, a
//!    blank one: every entry committed by an earlier leader precedes it, by
//!    Leader Completeness) and the commit index the metrics showed when the
//!    round started. That is openraft's read index, `max(noop, committed)`.
//! 2. *No newer leader before the round.* A follower confirms only while its
//!    persisted vote is not above this leader's: it has granted no newer
//!    leader. The log store records a vote before `save_vote` returns, and
//!    openraft sends a grant only after that, so any grant to a newer leader
//!    comes after the confirmation, which came after the reads arrived. A
//!    newer leader needs grants from a quorum, and every quorum shares a
//!    member with this leader plus its confirmers (the leader's own vote is
//!    checked again when the round ends). So no newer leader was elected
//!    before the reads arrived.
//! 3. *The quorum is counted in the effective membership.* It is read from
//!    the Raft metrics at the start of the round and must be the same, and
//!    not joint, at its end. A configuration that drops a member takes two
//!    replicated entries, and then an election timeout, before a leader can
//!    be elected without it; a round ends well within the election timeout.
//!
//! Any doubt (not leader in the metrics, no entry of this leader applied yet,
//! a joint membership, a refusal, no quorum within the round's deadline)
//! gives [`Unconfirmed`], and the caller falls back to openraft's
//! `ensure_linearizable`, which decides and reports errors as before.

use std::io;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use openraft::async_runtime::WatchReceiver;
use openraft::ServerState;

use super::log_store::LogStore;
use super::network::PeerClient;
use super::state_machine::StateMachine;
use super::{NodeId, Raft, Vote};

/// How long the preferred followers get before the others are asked too
/// (at most a quarter of the round's deadline, for short election timeouts).
const ASK_OTHERS_AFTER: Duration = Duration::from_millis(10);

/// Why a round was not confirmed here; the caller asks openraft instead.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unconfirmed {
    /// The metrics do not show this node leading with a committed vote.
    #[error("not the leader")]
    NotLeader,
    /// The state machine has not applied an entry of this leader yet.
    #[error("no entry of this leader applied yet")]
    NoEntryOfThisLeader,
    /// Joint membership: openraft counts its quorums.
    #[error("membership change in progress")]
    Joint,
    /// A follower has granted a newer vote.
    #[error("follower {0} has a newer vote")]
    Refused(NodeId),
    /// Too few answers before the deadline.
    #[error("{confirmed} of {needed} confirmations before the deadline")]
    NoQuorum { confirmed: usize, needed: usize },
    /// The vote or the membership changed during the round.
    #[error("vote or membership changed during the round")]
    Changed,
    /// The state machine did not reach the read index before the deadline.
    #[error("the read index was not applied before the deadline")]
    NotApplied,
}

/// What a round started from: the leadership it confirms.
struct RoundStart {
    vote: Vote,
    committed_index: Option<u64>,
    membership_log_index: Option<u64>,
}

/// A follower the confirmer may ask.
struct Follower {
    id: NodeId,
    client: PeerClient,
}

/// Confirms this node's leadership for a batch of ReadIndex reads. One per
/// node, owned by the ReadIndex batcher's task: rounds never overlap.
pub(crate) struct LeaderConfirmer {
    my_id: NodeId,
    raft: Raft,
    log: LogStore,
    state_machine: StateMachine,
    /// The whole round's deadline, kept well inside the election timeout.
    deadline: Duration,
    /// The other voters, in the order to ask them: the latest to confirm first.
    followers: Vec<Follower>,
}

impl LeaderConfirmer {
    /// A confirmer for node `my_id`; a round gives up after `deadline`.
    pub(crate) fn new(
        my_id: NodeId,
        raft: Raft,
        log: LogStore,
        state_machine: StateMachine,
        deadline: Duration,
    ) -> Self {
        LeaderConfirmer { my_id, raft, log, state_machine, deadline, followers: Vec::new() }
    }

    /// Returns `Ok` once a quorum has confirmed that no leader newer than
    /// this one was elected before the call (see the module docs).
    pub(crate) async fn confirm(&mut self) -> Result<(), Unconfirmed> {
        let start = self.start_round()?;
        let applied = self.state_machine.read().last_applied;
        if applied.is_none_or(|a| *a.committed_leader_id() != *start.vote.leader_id()) {
            return Err(Unconfirmed::NoEntryOfThisLeader);
        }
        // A majority of n voters is n/2 + 1 (rounded down), this leader being
        // one: of f = n - 1 followers, (f + 1)/2 = ceil(f/2) must confirm.
        let needed = self.followers.len().div_ceil(2);
        let confirmed = self.ask(start.vote, needed).await?;
        if confirmed < needed {
            return Err(Unconfirmed::NoQuorum { confirmed, needed });
        }
        if !self.unchanged_since(&start) {
            return Err(Unconfirmed::Changed);
        }
        if self.state_machine.read().last_applied.map(|l| l.index) < start.committed_index {
            self.raft
                .wait(Some(self.deadline))
                .applied_index_at_least(start.committed_index, "read index")
                .await
                .map_err(|_| Unconfirmed::NotApplied)?;
        }
        Ok(())
    }

    /// Checks, from the metrics, that this node leads with a committed vote
    /// in a uniform membership, and brings `followers` in line with that
    /// membership's other voters (a client whose address moved is replaced).
    fn start_round(&mut self) -> Result<RoundStart, Unconfirmed> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        if m.state != ServerState::Leader || m.current_leader != Some(self.my_id) || !m.vote.is_committed() {
            return Err(Unconfirmed::NotLeader);
        }
        let membership = m.membership_config.membership();
        if membership.get_joint_config().len() != 1 {
            return Err(Unconfirmed::Joint);
        }
        let raft_addr = |id: &NodeId| membership.get_node(id).map_or("", |n| n.raft_addr.as_str());
        let my_id = self.my_id;
        let is_follower = |id: &NodeId| *id != my_id && membership.voter_ids().any(|v| v == *id);
        self.followers.retain(|f| is_follower(&f.id) && raft_addr(&f.id) == f.client.addr());
        for id in membership.voter_ids().filter(|id| *id != my_id) {
            if !self.followers.iter().any(|f| f.id == id) {
                // No append budget: this client never sends entries.
                let client = PeerClient::new(my_id, id, raft_addr(&id).to_string(), 0);
                self.followers.push(Follower { id, client });
            }
        }
        Ok(RoundStart {
            vote: m.vote,
            committed_index: m.local_committed.map(|l| l.index),
            membership_log_index: m.membership_config.log_id().map(|l| l.index),
        })
    }

    /// Whether this node still leads with the round's vote and membership,
    /// by the metrics and by its own persisted vote.
    fn unchanged_since(&self, start: &RoundStart) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        m.state == ServerState::Leader
            && m.vote == start.vote
            && m.membership_config.log_id().map(|l| l.index) == start.membership_log_index
            && self.log.vote().is_some_and(|v| v.leader_id() == start.vote.leader_id())
    }

    /// Asks the `needed` first followers, then the rest if those have not
    /// all confirmed after [`ASK_OTHERS_AFTER`]; returns how many confirmed
    /// before `needed` was reached or the deadline passed.
    async fn ask(&mut self, vote: Vote, needed: usize) -> Result<usize, Unconfirmed> {
        if needed == 0 {
            return Ok(0);
        }
        let ttl = self.deadline;
        let mut queue = self.followers.iter_mut();
        let mut asking = FuturesUnordered::new();
        asking.extend(queue.by_ref().take(needed).map(|f| ask_one(f, vote, ttl)));
        let deadline = tokio::time::sleep(ttl);
        let ask_others = tokio::time::sleep(ASK_OTHERS_AFTER.min(ttl / 4));
        tokio::pin!(deadline, ask_others);
        let mut others_asked = false;
        let mut confirmed = Vec::with_capacity(needed);
        while confirmed.len() < needed {
            tokio::select! {
                answer = asking.next(), if !asking.is_empty() => match answer {
                    Some((id, Ok(true))) => confirmed.push(id),
                    Some((id, Ok(false))) => return Err(Unconfirmed::Refused(id)),
                    Some((id, Err(e))) => {
                        tracing::debug!(follower = id, error = %e, "leader confirmation failed");
                        if !others_asked {
                            others_asked = true;
                            asking.extend(queue.by_ref().map(|f| ask_one(f, vote, ttl)));
                        }
                    }
                    None => {}
                },
                _ = &mut ask_others, if !others_asked => {
                    others_asked = true;
                    asking.extend(queue.by_ref().map(|f| ask_one(f, vote, ttl)));
                }
                _ = &mut deadline => break,
            }
            if asking.is_empty() && others_asked {
                break;
            }
        }
        drop(asking);
        // The quickest to confirm go first next time, in the order they did.
        for (rank, id) in confirmed.iter().enumerate() {
            if let Some(at) = self.followers.iter().position(|f| f.id == *id) {
                self.followers[rank..=at].rotate_right(1);
            }
        }
        Ok(confirmed.len())
    }
}

/// A follower's answer to [`Request::ConfirmLeader`](super::network::wire::Request::ConfirmLeader):
/// true while its vote `mine` is not above the leader's, so it has granted
/// no vote to a newer leader. The committed flag plays no part: only which
/// leader a vote is for.
pub(crate) fn grants_no_newer_leader(mine: Option<Vote>, leader: &Vote) -> bool {
    mine.is_none_or(|mine| mine.leader_id() <= leader.leader_id())
}

async fn ask_one(follower: &mut Follower, vote: Vote, ttl: Duration) -> (NodeId, io::Result<bool>) {
    (follower.id, follower.client.confirm_leader(vote, ttl).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_confirms_only_leaders_at_least_as_new_as_its_vote() {
        let leader = Vote::new_committed(5, 2);
        assert!(grants_no_newer_leader(None, &leader), "a node that never voted");
        assert!(grants_no_newer_leader(Some(Vote::new(4, 9)), &leader), "an older term");
        assert!(grants_no_newer_leader(Some(Vote::new(5, 2)), &leader), "voted for this leader, not yet committed");
        assert!(grants_no_newer_leader(Some(Vote::new_committed(5, 2)), &leader), "following this leader");
        assert!(grants_no_newer_leader(Some(Vote::new(5, 1)), &leader), "a lower candidate of the same term");
        assert!(!grants_no_newer_leader(Some(Vote::new(5, 3)), &leader), "a higher candidate of the same term");
        assert!(!grants_no_newer_leader(Some(Vote::new(6, 1)), &leader), "a newer term");
        assert!(!grants_no_newer_leader(Some(Vote::new_committed(6, 1)), &leader), "following a newer leader");
    }
}
