//! Scenarios 1–3: create a cluster, scale it 3 → 5 → 3, lose a pod (with and without
//! its data). Each runs a writing client throughout and checks that no acknowledged
//! write was lost.

use std::time::Duration;

use anyhow::{ensure, Context as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use kube::ResourceExt;
use serde_json::json;
use seshat_control::api::Role;
use seshat_tests::wait::poll;

use super::cluster::{kubectl_get_seshat, Cluster, Status};
use super::membership::MembershipWatch;
use super::observe::{Observer, OpEvent};
use super::suite::Suite;
use super::timeline::Timeline;
use super::writer::{WriteReport, Writer};

/// Bound of every "converge" wait: generous for a 2-core CI machine, yet bounded.
pub const CONVERGE: Duration = Duration::from_secs(240);
/// Clients of each scenario's workload.
pub const CLIENTS: usize = 4;

/// Fails unless the writes were clean: nothing acknowledged lost, nothing phantom, no
/// linearizability violation, and enough acknowledged writes to mean something.
pub fn check_writes(r: &WriteReport) -> anyhow::Result<()> {
    ensure!(r.lost.is_empty(), "{} acknowledged writes lost / phantom values:\n{}", r.lost.len(), r.lost.join("\n"));
    ensure!(!r.violation, "history not linearizable: {}", r.linearizable);
    ensure!(r.acked_writes >= 20, "only {} acknowledged writes: the client did not really write", r.acked_writes);
    Ok(())
}

/// True when exactly ordinals `0..n` have pods, all Ready and none terminating.
async fn pods_ready(c: &Cluster, n: usize) -> Option<()> {
    let pods = c.pods().await.ok()?;
    let ready = |p: &Pod| {
        p.metadata.deletion_timestamp.is_none()
            && c.ordinal(&p.name_any()).is_some_and(|o| (o as usize) < n)
            && p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    (pods.len() == n && pods.iter().all(ready)).then_some(())
}

/// Waits until the cluster is settled at `n`: every pod of `0..n` Ready and no other,
/// the status describes the current generation and says `n/n` Running with `n` healthy
/// voters, the leader label is on exactly the status' leader, and the leader Service's
/// Endpoints name that pod. (The pod check keeps a status written before a pod
/// disappeared from passing for the present.)
pub async fn settle(c: &Cluster, n: usize, tl: &Timeline) -> anyhow::Result<Status> {
    settle_within(c, n, tl, CONVERGE).await
}

/// [`settle`] with its own bound.
pub async fn settle_within(c: &Cluster, n: usize, tl: &Timeline, timeout: Duration) -> anyhow::Result<Status> {
    let what = format!("{n}/{n} Running with {n} voters, every pod Ready");
    c.wait_status(timeout, &what, |s| s.settled(n)).await?;
    poll(timeout, &what, || async {
        let (st, generation) = c.status_and_generation().await.ok()?;
        pods_ready(c, n).await?;
        (st.settled(n) && st.observed_generation == generation).then_some(())
    })
    .await?;
    let leader = poll(Duration::from_secs(60), "leader label and leader Endpoints on the status' leader", || async {
        let st = c.status().await.ok()?;
        let leader = st.leader.filter(|_| st.phase.as_deref() == Some("Running"))?.pod;
        let labelled = c.labelled_leaders().await.ok()?;
        let eps = c.leader_endpoints().await.ok()?;
        (labelled == [leader.clone()] && eps.len() == 1 && eps[0].0 == leader).then_some(leader)
    })
    .await?;
    let st = c.status().await?;
    tl.note(format!("settled: {} (label and leader Endpoints on {leader})", st.summary()));
    Ok(st)
}

fn reasons(events: &[OpEvent]) -> Vec<&str> {
    events.iter().map(|e| e.reason.as_str()).collect()
}

fn count(events: &[OpEvent], reason: &str) -> usize {
    events.iter().filter(|e| e.reason == reason).count()
}

/// Scenario 1: a 3-replica cluster comes up.
pub async fn create(s: &Suite) -> anyhow::Result<WriteReport> {
    let (c, tl) = (&s.cluster, &s.tl);
    let _obs = Observer::start(&s.client, &c.ns, &c.name, tl);
    let members = MembershipWatch::start(c, 3, tl);
    c.create(s.cluster_spec(3, "seshat:e2e-1")).await?;
    tl.note("SeshatCluster kv created: replicas 3, image seshat:e2e-1, PDB disabled");
    let writer = Writer::start("s1", &c.resp_addrs(3), CLIENTS);
    let st = settle(c, 3, tl).await?;
    let leader = st.leader.clone().context("leader")?;
    let ordinal = c.ordinal(&leader.pod).context("leader ordinal")?;
    let raft = c.node_status(ordinal).await.context("GET /cluster on the leader")?;
    ensure!(raft.role == Role::Leader, "{} labelled leader answers as {:?}", leader.pod, raft.role);
    ensure!(
        raft.membership.voters.len() == 3 && raft.membership.learners.is_empty(),
        "membership {:?}",
        raft.membership
    );
    ensure!(raft.node_id.to_string() == leader.node_id, "status leader id {} vs {}", leader.node_id, raft.node_id);
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), &c.ns);
    let ip = pods.get(&leader.pod).await?.status.and_then(|s| s.pod_ip).unwrap_or_default();
    ensure!(c.leader_endpoints().await? == [(leader.pod.clone(), ip.clone())], "leader Endpoints");
    tl.note(format!(
        "raft leader {} (node {}) = labelled pod = leader Service endpoint {ip}",
        leader.pod, raft.node_id
    ));
    let (header, row) = kubectl_get_seshat(c)?;
    tl.note(format!("kubectl get seshat:\n    {header}\n    {row}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    ensure!(cols.get(1) == Some(&"3/3") && cols.get(2) == Some(&leader.pod.as_str()), "kubectl shows {row:?}");
    ensure!(cols.get(3) == Some(&"Running"), "kubectl shows {row:?}");
    members.check_one_at_a_time()?;
    let writes = writer.finish(&c.resp_addrs(3), tl).await?;
    check_writes(&writes)?;
    Ok(writes)
}

/// Scenario 2: 3 → 5 → 3 with `kubectl patch`.
pub async fn scale(s: &Suite) -> anyhow::Result<WriteReport> {
    let (c, tl) = (&s.cluster, &s.tl);
    let obs = Observer::start(&s.client, &c.ns, &c.name, tl);
    let members = MembershipWatch::start(c, 5, tl);
    let writer = Writer::start("s2", &c.resp_addrs(5), CLIENTS);
    let patch = |n: u32| {
        let body = json!({ "spec": { "replicas": n } }).to_string();
        super::operator::kubectl(&["patch", "seshat", &c.name, "-n", &c.ns, "--type=merge", "-p", &body], None)
    };
    patch(5)?;
    tl.note("kubectl patch seshat kv replicas=5");
    settle(c, 5, tl).await?;
    let up = members.check_one_at_a_time()?;
    let ev = obs.op_events();
    ensure!(count(&ev, "AddLearner") >= 2 && count(&ev, "Promote") >= 2, "scale-up events: {:?}", reasons(&ev));
    tl.note(format!("scaled up: {up} observed membership steps, voters changing one at a time"));

    patch(3)?;
    tl.note("kubectl patch seshat kv replicas=3");
    settle(c, 3, tl).await?;
    let want: Vec<String> = (0..3).map(|i| c.pvc(i)).collect();
    let pvcs = poll(Duration::from_secs(60), "PVCs of kv-3 and kv-4 deleted (whenScaled: Delete)", || async {
        let pvcs = c.pvcs().await.ok()?;
        (pvcs.iter().cloned().collect::<Vec<_>>() == want).then_some(pvcs)
    })
    .await?;
    tl.note(format!("PVCs left: {pvcs:?} (whenScaled: Delete)"));
    let all = members.check_one_at_a_time()?;
    let ev = obs.op_events();
    ensure!(
        count(&ev, "RemoveMember") >= 2 && count(&ev, "DeleteVolume") >= 2,
        "scale-down events: {:?}",
        reasons(&ev)
    );
    tl.note(format!("voters changed one at a time over {all} observed membership steps; events {:?}", reasons(&ev)));
    let writes = writer.finish(&c.resp_addrs(3), tl).await?;
    check_writes(&writes)?;
    Ok(writes)
}

/// A follower's ordinal and node id (ordinal `not` excluded).
async fn pick_follower(c: &Cluster, not: Option<u32>) -> anyhow::Result<(u32, u64)> {
    for i in 0..3 {
        if Some(i) == not {
            continue;
        }
        if let Some(st) = c.node_status(i).await {
            if st.role == Role::Follower {
                return Ok((i, st.node_id));
            }
        }
    }
    anyhow::bail!("no follower answered")
}

async fn pod_uid(c: &Cluster, name: &str) -> anyhow::Result<String> {
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &c.ns);
    Ok(pods.get(name).await?.uid().unwrap_or_default())
}

/// Waits for pod `name` to be re-created (uid other than `old`).
async fn recreated(c: &Cluster, name: &str, old: &str) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &c.ns);
    poll(CONVERGE, &format!("{name} re-created"), || async {
        let p = pods.get_opt(name).await.ok()??;
        (p.uid().as_deref() != Some(old) && p.metadata.deletion_timestamp.is_none()).then_some(())
    })
    .await?;
    Ok(())
}

/// Scenario 3: a deleted pod comes back with its data; a pod back on an empty volume
/// is replaced in the membership (old id removed, new id added as learner, promoted).
pub async fn lose_pod(s: &Suite) -> anyhow::Result<WriteReport> {
    let (c, tl) = (&s.cluster, &s.tl);
    let obs = Observer::start(&s.client, &c.ns, &c.name, tl);
    let members = MembershipWatch::start(c, 3, tl);
    let writer = Writer::start("s3", &c.resp_addrs(3), CLIENTS);
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), &c.ns);

    let (f, id) = pick_follower(c, None).await?;
    let uid = pod_uid(c, &c.pod(f)).await?;
    pods.delete(&c.pod(f), &DeleteParams::default()).await?;
    tl.note(format!("deleted pod {} (node {id}), keeping its PVC", c.pod(f)));
    recreated(c, &c.pod(f), &uid).await?;
    settle(c, 3, tl).await?;
    let back = c.node_status(f).await.context("GET /cluster")?;
    ensure!(back.node_id == id, "{} came back as node {} instead of {id}", c.pod(f), back.node_id);
    ensure!(back.membership.voters.iter().any(|v| v.id == id), "node {id} is no longer a voter");
    ensure!(count(&obs.op_events(), "RemoveStaleMember") == 0, "a pod with its data was treated as new");
    tl.note(format!("{} is back as the same member (node {id}) with its data", c.pod(f)));

    let (g, old) = pick_follower(c, None).await?;
    let uid = pod_uid(c, &c.pod(g)).await?;
    let mark = obs.op_events().len();
    s.agent().wipe_before_next_start(&c.ns, &c.pvc(g));
    pods.delete(&c.pod(g), &DeleteParams::default()).await?;
    tl.note(format!("deleted pod {} (node {old}) and its volume's data", c.pod(g)));
    recreated(c, &c.pod(g), &uid).await?;
    let new = poll(CONVERGE, "the replaced pod a voter under a new id", || async {
        let st = c.node_status(g).await?;
        let voter = st.membership.voters.iter().any(|v| v.id == st.node_id);
        let old_gone = !st.membership.voters.iter().chain(&st.membership.learners).any(|m| m.id == old);
        (st.node_id != old && voter && old_gone).then_some(st.node_id)
    })
    .await?;
    settle(c, 3, tl).await?;
    let ev: Vec<OpEvent> = obs.op_events().split_off(mark);
    let at = |reason: &str| ev.iter().position(|e| e.reason == reason);
    let (stale, learner, promote) = (at("RemoveStaleMember"), at("AddLearner"), at("Promote"));
    ensure!(
        matches!((stale, learner, promote), (Some(a), Some(b), Some(c)) if a < b && b < c),
        "expected RemoveStaleMember, AddLearner, Promote in order; got {:?}",
        reasons(&ev)
    );
    let steps = members.check_one_at_a_time()?;
    tl.note(format!(
        "{}: old node {old} removed, new node {new} added as learner, promoted ({steps} membership steps)",
        c.pod(g)
    ));
    let writes = writer.finish(&c.resp_addrs(3), tl).await?;
    check_writes(&writes)?;
    Ok(writes)
}
