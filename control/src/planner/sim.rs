//! A simulated Seshat cluster for testing the planner (test-only).
//!
//! The model keeps what matters to membership safety and nothing else: per slot a pod
//! and a volume; per volume a node id, whether it holds Raft state and how much of the
//! log it has; the cluster's voters, learners, leader and commit index. [`Sim::apply`]
//! performs an [`Action`] *and independently re-checks* the safety rules (so a planner
//! bug shows up as a violated invariant, not as a silently wrong simulation), and
//! [`Sim::tick`] lets time pass: elections, client writes, restarts completing.

use std::collections::BTreeMap;

use crate::api::{ClusterStatus, Member, Membership, NodeAddr, NodeId, Role};

use super::{majority, Action, Observed, Slot};

/// Data living on a volume (survives pod restarts, not volume deletion).
#[derive(Debug, Clone)]
pub struct Data {
    pub id: NodeId,
    /// Holds Raft state (initialized, or was ever a member).
    pub state: bool,
    /// Last log index held.
    pub log: u64,
    /// The membership it last heard of (voters, learners).
    pub seen: (Vec<NodeId>, Vec<NodeId>),
}

#[derive(Debug, Clone, Default)]
pub struct SimSlot {
    pub pod: bool,
    pub volume: Option<Data>,
    /// Ticks until a restarting / crashed process answers again (0: up).
    pub down: u32,
    /// Down until explicitly revived (a crashed node).
    pub crashed: bool,
    pub version: String,
}

/// The whole simulated world.
#[derive(Debug, Clone)]
pub struct Sim {
    pub slots: Vec<SimSlot>,
    pub workload: u32,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub leader: Option<NodeId>,
    pub term: u64,
    /// Leader's last log index.
    pub last: u64,
    /// Highest index acknowledged to a client.
    pub committed: u64,
    pub next_id: NodeId,
    pub initialized_before: bool,
    /// Version new pods start with (the workload template).
    pub template_version: String,
    /// Client writes each tick (0 for a quiet cluster).
    pub writes_per_tick: u64,
    /// Log of actions applied, for failure messages.
    pub history: Vec<String>,
    /// Advertised addresses per ordinal (default [`addr`]; real ports for HTTP fakes).
    pub addrs: Vec<NodeAddr>,
}

pub fn addr(ordinal: u32) -> NodeAddr {
    NodeAddr {
        raft_addr: format!("n{ordinal}:7379"),
        resp_addr: format!("n{ordinal}:6379"),
        http_addr: format!("n{ordinal}:8080"),
    }
}

impl Sim {
    /// An empty world: no pods, no volumes.
    pub fn empty(version: &str) -> Self {
        Self {
            slots: vec![SimSlot::default(); super::MAX_REPLICAS as usize],
            workload: 0,
            voters: vec![],
            learners: vec![],
            leader: None,
            term: 0,
            last: 0,
            committed: 0,
            next_id: 100,
            initialized_before: false,
            template_version: version.into(),
            writes_per_tick: 1,
            history: vec![],
            addrs: (0..super::MAX_REPLICAS).map(addr).collect(),
        }
    }

    /// A healthy running cluster of `n` voters on ordinals `0..n`, leader on `leader`.
    pub fn running(n: u32, leader: u32, version: &str) -> Self {
        let mut sim = Self::empty(version);
        sim.workload = n;
        sim.last = 10;
        sim.committed = 10;
        sim.term = 1;
        for o in 0..n {
            sim.create_pod(o);
            let id = sim.id_at(o).unwrap();
            sim.voters.push(id);
        }
        sim.voters.sort_unstable();
        for o in 0..n {
            let seen = (sim.voters.clone(), vec![]);
            let d = sim.slots[o as usize].volume.as_mut().unwrap();
            d.state = true;
            d.log = 10;
            d.seen = seen;
        }
        sim.leader = sim.id_at(leader);
        sim.initialized_before = true;
        sim
    }

    pub fn id_at(&self, o: u32) -> Option<NodeId> {
        self.slots[o as usize].volume.as_ref().map(|d| d.id)
    }

    fn ordinal_of(&self, id: NodeId) -> Option<u32> {
        (0..self.slots.len() as u32).find(|o| self.id_at(*o) == Some(id))
    }

    pub fn up(&self, o: u32) -> bool {
        let s = &self.slots[o as usize];
        s.pod && s.down == 0 && !s.crashed && s.volume.is_some()
    }

    /// The node with this id answers (its pod runs on the volume holding it).
    pub fn live(&self, id: NodeId) -> bool {
        self.ordinal_of(id).is_some_and(|o| self.up(o))
    }

    fn data(&self, id: NodeId) -> Option<&Data> {
        self.ordinal_of(id).and_then(|o| self.slots[o as usize].volume.as_ref())
    }

    fn create_pod(&mut self, o: u32) {
        let version = self.template_version.clone();
        let next = &mut self.next_id;
        let s = &mut self.slots[o as usize];
        s.pod = true;
        s.down = 0;
        s.crashed = false;
        s.version = version;
        if s.volume.is_none() {
            s.volume = Some(Data { id: *next, state: false, log: 0, seen: (vec![], vec![]) });
            *next += 1;
        }
    }

    /// Replace ordinal `o`'s volume with an empty one (a new node id at the same address).
    pub fn wipe(&mut self, o: u32) {
        self.slots[o as usize].volume = None;
        if self.slots[o as usize].pod {
            self.create_pod(o);
        }
    }

    /// Crash ordinal `o` until [`Sim::revive`].
    pub fn crash(&mut self, o: u32) {
        self.slots[o as usize].crashed = true;
    }

    pub fn revive(&mut self, o: u32) {
        self.slots[o as usize].crashed = false;
    }

    /// Healthy voters: live and holding the leader's log (within lag 0 in the sim).
    fn healthy(&self, set: &[NodeId]) -> usize {
        set.iter().filter(|id| self.live(**id) && self.data(**id).is_some_and(|d| d.log + 256 >= self.last)).count()
    }

    /// Voters whose data holds every acknowledged write.
    fn durable(&self, set: &[NodeId]) -> usize {
        set.iter().filter(|id| self.data(**id).is_some_and(|d| d.log >= self.committed)).count()
    }

    /// The observation a driver would build.
    pub fn observe(&self) -> Observed {
        let membership = |voters: &[NodeId], learners: &[NodeId]| Membership {
            voters: voters.iter().map(|id| self.member(*id)).collect(),
            learners: learners.iter().map(|id| self.member(*id)).collect(),
            log_index: Some(1),
            joint: false,
        };
        let mut slots = vec![];
        for (o, s) in self.slots.iter().enumerate() {
            let o = o as u32;
            let mut slot = Slot::absent(o, self.addrs[o as usize].clone());
            slot.exists = s.pod;
            slot.volume = s.volume.is_some();
            slot.version = s.pod.then(|| s.version.clone());
            if self.up(o) {
                let d = s.volume.as_ref().unwrap();
                let member = self.voters.contains(&d.id) || self.learners.contains(&d.id);
                let is_leader = self.leader == Some(d.id);
                let role = if is_leader {
                    Role::Leader
                } else if self.voters.contains(&d.id) {
                    Role::Follower
                } else if self.learners.contains(&d.id) {
                    Role::Learner
                } else if d.state {
                    Role::Follower
                } else {
                    Role::Uninitialized
                };
                let mship =
                    if member { membership(&self.voters, &self.learners) } else { membership(&d.seen.0, &d.seen.1) };
                let replication: BTreeMap<NodeId, Option<u64>> = if is_leader {
                    self.voters
                        .iter()
                        .chain(self.learners.iter())
                        .filter(|id| **id != d.id)
                        .map(|id| (*id, self.data(*id).map(|d| d.log)))
                        .collect()
                } else {
                    BTreeMap::new()
                };
                slot.ready = member && self.leader.is_some() && d.log + 256 >= self.last;
                slot.status = Some(ClusterStatus {
                    node_id: d.id,
                    addr: self.addrs[o as usize].clone(),
                    role,
                    term: self.term,
                    leader_id: if member { self.leader } else { None },
                    last_log_index: Some(if is_leader { self.last } else { d.log }),
                    last_applied: Some(d.log),
                    committed: Some(if member { self.committed } else { d.log }),
                    snapshot_index: None,
                    purged_index: None,
                    membership: mship,
                    replication,
                    version: "sim".into(),
                });
            }
            slots.push(slot);
        }
        Observed { workload_replicas: self.workload, slots, initialized_before: self.initialized_before }
    }

    fn member(&self, id: NodeId) -> Member {
        Member {
            id,
            addr: self.ordinal_of(id).map(|o| self.addrs[o as usize].clone()).unwrap_or_else(|| NodeAddr {
                raft_addr: format!("gone-{id}:7379"),
                resp_addr: format!("gone-{id}:6379"),
                http_addr: format!("gone-{id}:8080"),
            }),
        }
    }

    /// Checks that a voter change keeps a healthy majority in both configs and touches one node.
    fn check_change(&self, old: &[NodeId], new: &[NodeId]) -> Result<(), String> {
        let delta = old.iter().filter(|i| !new.contains(i)).count() + new.iter().filter(|i| !old.contains(i)).count();
        if delta > 1 {
            return Err(format!("changed {delta} voters at once: {old:?} -> {new:?}"));
        }
        for set in [old, new] {
            if self.healthy(set) < majority(set.len()) {
                return Err(format!("no healthy majority in {set:?}"));
            }
        }
        Ok(())
    }

    fn set_voters(&mut self, new: Vec<NodeId>, removed: Option<NodeId>) -> Result<(), String> {
        let old = self.voters.clone();
        self.check_change(&old, &new)?;
        if let Some(l) = self.leader {
            if !new.contains(&l) {
                return Err(format!("removed the leader {l} without a transfer"));
            }
        }
        self.learners.retain(|id| !new.contains(id) && Some(*id) != removed);
        self.voters = new;
        // The config entry commits (joint consensus) only once a majority of both
        // configs holds the whole log: the live members have caught up by then.
        let last = self.last;
        for id in self.voters.clone() {
            if self.live(id) {
                if let Some(d) = self.data_mut(id) {
                    d.log = last;
                }
            }
        }
        self.remember_membership();
        Ok(())
    }

    /// Members (live or not) hear the new config; removed ones keep their last view.
    fn remember_membership(&mut self) {
        let seen = (self.voters.clone(), self.learners.clone());
        let members: Vec<NodeId> = self.voters.iter().chain(&self.learners).copied().collect();
        for s in &mut self.slots {
            if let Some(d) = &mut s.volume {
                if members.contains(&d.id) {
                    d.seen = seen.clone();
                }
            }
        }
    }

    fn data_mut(&mut self, id: NodeId) -> Option<&mut Data> {
        let o = self.ordinal_of(id)?;
        self.slots[o as usize].volume.as_mut()
    }

    /// Performs `action`, returning a description of the safety rule it broke, if any.
    pub fn apply(&mut self, action: &Action) -> Result<(), String> {
        self.history.push(action.to_string());
        match action {
            Action::ScaleWorkload { replicas } => {
                let n = *replicas;
                if n < self.workload {
                    for o in n..self.workload {
                        if let Some(id) = self.id_at(o) {
                            if self.voters.contains(&id) || self.learners.contains(&id) {
                                return Err(format!("shrank away ordinal {o} while member {id}"));
                            }
                        }
                        self.slots[o as usize].pod = false;
                    }
                }
                for o in self.workload..n {
                    self.create_pod(o);
                }
                self.workload = n;
            }
            Action::Bootstrap { ordinal } => {
                if self.slots.iter().any(|s| s.volume.as_ref().is_some_and(|d| d.state)) {
                    return Err("bootstrapped while some node holds Raft state".into());
                }
                if self.initialized_before {
                    return Err("re-bootstrapped a cluster initialized before".into());
                }
                let id = self.id_at(*ordinal).ok_or("bootstrap of a slot without volume")?;
                if !self.up(*ordinal) {
                    return Err("bootstrap of a down node".into());
                }
                self.voters = vec![id];
                self.learners.clear();
                self.leader = Some(id);
                self.term += 1;
                self.last = 1;
                self.committed = 1;
                let d = self.data_mut(id).unwrap();
                d.state = true;
                d.log = 1;
                self.initialized_before = true;
                self.remember_membership();
            }
            Action::AddLearner { node_id, .. } => {
                if self.leader.is_none() {
                    return Err("added a learner without a leader".into());
                }
                if !self.live(*node_id) {
                    return Err(format!("added unreachable learner {node_id}"));
                }
                if !self.learners.contains(node_id) && !self.voters.contains(node_id) {
                    self.learners.push(*node_id);
                    self.learners.sort_unstable();
                }
                // The blocking add returns once the learner caught up.
                let last = self.last;
                let d = self.data_mut(*node_id).unwrap();
                d.state = true;
                d.log = last;
                self.remember_membership();
            }
            Action::Promote { node_id, voters } => {
                if !self.learners.contains(node_id) {
                    return Err(format!("promoted {node_id} which is not a learner"));
                }
                if self.data(*node_id).map(|d| d.log).unwrap_or(0) + 256 < self.last {
                    return Err(format!("promoted lagging learner {node_id}"));
                }
                self.set_voters(voters.clone(), None)?;
            }
            Action::RemoveMember { node_id, voters } | Action::RemoveStaleMember { node_id, voters } => {
                if self.leader == Some(*node_id) {
                    return Err(format!("removed leader {node_id}"));
                }
                self.set_voters(voters.clone(), Some(*node_id))?;
                if self.voters.contains(node_id) || self.learners.contains(node_id) {
                    return Err(format!("remove left {node_id} a member"));
                }
            }
            Action::TransferLeader { from, to } => {
                if self.leader != Some(*from) {
                    return Err(format!("transfer from non-leader {from}"));
                }
                if !self.voters.contains(to) || !self.live(*to) {
                    return Err(format!("transfer to unusable node {to}"));
                }
                self.leader = Some(*to);
                self.term += 1;
            }
            Action::DeleteVolume { ordinal } => {
                let s = &self.slots[*ordinal as usize];
                if s.pod {
                    return Err(format!("deleted the volume of running ordinal {ordinal}"));
                }
                if let Some(d) = &s.volume {
                    if self.voters.contains(&d.id) || self.learners.contains(&d.id) {
                        return Err(format!("deleted the volume of member {}", d.id));
                    }
                }
                self.slots[*ordinal as usize].volume = None;
            }
            Action::RestartMember { ordinal } => {
                let o = *ordinal;
                if (0..self.workload).any(|x| !self.up(x) && x != o) {
                    return Err(format!("restarted {o} while another slot is down"));
                }
                let id = self.id_at(o);
                if id.is_some() && id == self.leader && self.voters.len() > 1 {
                    return Err(format!("restarted leader at ordinal {o} without a transfer"));
                }
                let s = &mut self.slots[o as usize];
                s.down = 2;
                s.version = self.template_version.clone();
            }
            Action::Wait { .. } | Action::Degraded { .. } | Action::Done => {}
        }
        self.check_invariants()
    }

    /// Invariants that must hold in every state reached.
    pub fn check_invariants(&self) -> Result<(), String> {
        if !self.voters.is_empty() && self.durable(&self.voters) < majority(self.voters.len()) {
            return Err(format!(
                "acknowledged writes up to {} are no longer on a majority of {:?}",
                self.committed, self.voters
            ));
        }
        Ok(())
    }

    /// Time passes: restarts finish, elections happen, clients write.
    pub fn tick(&mut self) {
        for s in &mut self.slots {
            s.down = s.down.saturating_sub(1);
        }
        let leader_ok = self.leader.is_some_and(|l| self.live(l) && self.voters.contains(&l));
        if !leader_ok {
            self.leader = None;
            let live: Vec<NodeId> = self.voters.iter().copied().filter(|id| self.live(*id)).collect();
            // A node wins an election only with a live majority and the longest log.
            if !self.voters.is_empty() && live.len() >= majority(self.voters.len()) {
                self.leader =
                    live.iter().copied().max_by_key(|id| (self.data(*id).map(|d| d.log), std::cmp::Reverse(*id)));
                self.term += 1;
            }
        }
        let Some(_) = self.leader else { return };
        // Writes commit only with a live majority; every live member receives them.
        let live_voters = self.voters.iter().filter(|id| self.live(**id)).count();
        if live_voters < majority(self.voters.len()) {
            return;
        }
        self.last += self.writes_per_tick;
        self.committed = self.last;
        let last = self.last;
        let members: Vec<NodeId> = self.voters.iter().chain(&self.learners).copied().collect();
        for id in members {
            if self.live(id) {
                if let Some(d) = self.data_mut(id) {
                    d.log = last;
                }
            }
        }
    }
}
