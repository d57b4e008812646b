//! Scenarios 4–6: a rolling upgrade, operator failover, and deleting the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{ensure, Context as _};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{Api, DeleteParams};
use kube::ResourceExt;
use serde_json::json;
use seshat_tests::wait::poll;

use super::cluster::Cluster;
use super::observe::{Observer, PodChange};
use super::operator::kubectl;
use super::scenarios_lifecycle::{check_writes, settle, CLIENTS, CONVERGE};
use super::suite::Suite;
use super::writer::{WriteReport, Writer};

const FINALIZER: &str = "seshat.io/cleanup";

fn image_of(p: &Pod) -> String {
    p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone()).unwrap_or_default()
}

/// Scenario 4: a new image tag restarts the pods one at a time, followers first, the
/// leader last after a leadership transfer, while the client keeps writing.
pub async fn upgrade(s: &Suite) -> anyhow::Result<WriteReport> {
    let (c, tl) = (&s.cluster, &s.tl);
    let obs = Observer::start(&s.client, &c.ns, &c.name, tl);
    let writer = Writer::start("s4", &c.resp_addrs(3), CLIENTS);
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), &c.ns);
    let leader = c.status().await?.leader.context("a leader before the upgrade")?.pod;
    let old: BTreeSet<String> = c.pods().await?.iter().filter_map(|p| p.uid()).collect();
    let image = "seshat:e2e-2";
    let body = json!({ "spec": { "image": image } }).to_string();
    kubectl(&["patch", "seshat", &c.name, "-n", &c.ns, "--type=merge", "-p", &body], None)?;
    tl.note(format!("kubectl patch seshat kv image={image} (leader is {leader})"));

    // Acknowledged-write samples, to show that writes continued through every restart.
    let samples: Mutex<Vec<(Duration, u64)>> = Mutex::new(Vec::new());
    poll(CONVERGE, "every pod re-created on the new image and Ready", || async {
        samples.lock().unwrap_or_else(|p| p.into_inner()).push((tl.elapsed(), writer.acked()));
        let now = pods.list(&Default::default()).await.ok()?.items;
        let fresh = now.iter().filter(|p| c.ordinal(&p.name_any()).is_some_and(|o| o < 3)).filter(|p| {
            !old.contains(&p.uid().unwrap_or_default())
                && image_of(p) == image
                && p.metadata.deletion_timestamp.is_none()
        });
        (fresh.count() == 3).then_some(())
    })
    .await?;
    settle(c, 3, tl).await?;

    let samples = samples.into_inner().unwrap_or_else(|p| p.into_inner());
    // The roll is judged after the writes, so a failed ordering check still reports
    // whether any acknowledged write was lost.
    let roll = check_roll(&obs, &leader, &samples);
    match &roll {
        Ok(order) => tl.note(format!(
            "restart order {order:?}: followers first, leader last after a transfer, each back Ready before \
             the next; writes acknowledged in every interval"
        )),
        Err(e) => tl.note(format!("roll check failed: {e}")),
    }
    let writes = writer.finish(&c.resp_addrs(3), tl).await?;
    check_writes(&writes)?;
    roll.map_err(|e| e.context(format!("writes: {}", writes.summary())))?;
    Ok(writes)
}

/// Checks a finished roll from the pod changes, the operator's Events and the
/// acknowledged-write samples; returns the restart order.
fn check_roll(obs: &Observer, leader: &str, samples: &[(Duration, u64)]) -> anyhow::Result<Vec<String>> {
    let events = obs.pod_events();
    let deletions: Vec<_> = events.iter().filter(|e| e.change == PodChange::Deleting).collect();
    let order: Vec<String> = deletions.iter().map(|e| e.pod.clone()).collect();
    ensure!(order.len() == 3 && order.iter().collect::<BTreeSet<_>>().len() == 3, "each pod restarted once: {order:?}");
    ensure!(order[2] == leader, "the leader {leader} must restart last: {order:?}");
    // One at a time, as Kubernetes sees it: the restarted pod's Ready condition (what
    // the Services and a PodDisruptionBudget go by) before the next pod goes.
    let secs = |d: Duration| format!("+{:.2}s", d.as_secs_f64());
    for pair in deletions.windows(2) {
        let ready_again = events
            .iter()
            .find(|e| e.pod == pair[0].pod && e.change == PodChange::Ready && e.at > pair[0].at)
            .map(|e| e.at);
        ensure!(
            ready_again.is_some_and(|t| t < pair[1].at),
            "restart order {order:?}: {} was deleted at {} while {} (deleted at {}) was not Ready again (Ready at \
             {}): two pods unavailable at once",
            pair[1].pod,
            secs(pair[1].at),
            pair[0].pod,
            secs(pair[0].at),
            ready_again.map_or("never".into(), secs)
        );
    }
    let transfer = obs.op_events().iter().find(|e| e.reason == "TransferLeader").map(|e| e.at);
    ensure!(transfer.is_some_and(|t| t < deletions[2].at), "no leadership transfer before restarting the leader");
    let acked_at = |t: Duration| samples.iter().rev().find(|(at, _)| *at <= t).map_or(0, |(_, n)| *n);
    let marks: Vec<Duration> = deletions.iter().map(|e| e.at).chain(samples.last().map(|(t, _)| *t)).collect();
    for w in marks.windows(2) {
        let (a, b) = (acked_at(w[0]), acked_at(w[1]));
        ensure!(b > a, "no acknowledged write between {} and {}", secs(w[0]), secs(w[1]));
    }
    Ok(order)
}

/// Scenario 5: of two operator replicas only the Lease holder reconciles; killed, the
/// other takes over (proved by an action only an operator does: relabelling a new leader).
pub async fn operator_failover(s: &mut Suite) -> anyhow::Result<WriteReport> {
    let (c, tl) = (s.cluster.clone(), s.tl.clone());
    let obs = Observer::start(&s.client, &c.ns, &c.name, &tl);
    let holder = poll(Duration::from_secs(60), "a Lease holder", || async { s.lease_holder().await.ok()? }).await?;
    for op in &s.operators {
        let (reconciles, leading) = op.metrics(&s.http).await?;
        tl.note(format!("operator {}: leader gauge {leading}, {reconciles} reconciles", op.identity));
        if op.identity == holder {
            ensure!(leading && reconciles > 0, "the holder {holder} does not reconcile");
        } else {
            ensure!(!leading && reconciles == 0, "standby {} reconciled {reconciles} times", op.identity);
        }
    }
    let writer = Writer::start("s5", &c.resp_addrs(3), CLIENTS);
    let idx = s.operators.iter().position(|o| o.identity == holder).context("the holder is one of ours")?;
    let mut dead = s.operators.remove(idx);
    dead.kill9();
    tl.note(format!("SIGKILL operator {holder} (the Lease holder; no release)"));
    let killed_at = tl.elapsed();
    let leader = c.status().await?.leader.context("a leader")?.pod;
    Api::<Pod>::namespaced(s.client.clone(), &c.ns).delete(&leader, &DeleteParams::default()).await?;
    tl.note(format!("deleted the Raft leader's pod {leader}: only an operator can move the leader label now"));
    let new = poll(Duration::from_secs(90), "another replica to take the Lease", || async {
        s.lease_holder().await.ok()?.filter(|h| *h != holder)
    })
    .await?;
    let took_over_at = tl.elapsed();
    tl.note(format!("{new} holds the Lease, {:.1}s after the kill", (took_over_at - killed_at).as_secs_f64()));
    settle(&c, 3, &tl).await?;
    let op = s.operators.iter().find(|o| o.identity == new).context("new holder")?;
    let (reconciles, leading) = op.metrics(&s.http).await?;
    ensure!(leading && reconciles > 0, "{new}: leader gauge {leading}, {reconciles} reconciles");
    // Events of the dead holder published just before the kill may arrive a little
    // later; none can be new once the standby holds the Lease.
    let foreign: Vec<String> = obs
        .op_events()
        .into_iter()
        .filter(|e| e.at > took_over_at && e.instance != new)
        .map(|e| format!("{} by {}: {}", e.reason, e.instance, e.note))
        .collect();
    ensure!(foreign.is_empty(), "events after the kill from another replica: {foreign:?}");
    drop(dead);
    let standby = s.spawn_operator()?;
    tl.note(format!("{new} reconciled ({reconciles} so far); replacement standby {standby} started"));
    let writes = writer.finish(&c.resp_addrs(3), &tl).await?;
    check_writes(&writes)?;
    Ok(writes)
}

/// Names of the objects the operator owns for `c` that still exist.
async fn owned_left(c: &Cluster) -> anyhow::Result<Vec<String>> {
    let client = &c.client;
    let mut left = Vec::new();
    if Api::<StatefulSet>::namespaced(client.clone(), &c.ns).get_opt(&c.name).await?.is_some() {
        left.push(format!("statefulset/{}", c.name));
    }
    let svcs: Api<Service> = Api::namespaced(client.clone(), &c.ns);
    for svc in [c.name.clone(), format!("{}-headless", c.name), c.leader_service()] {
        if svcs.get_opt(&svc).await?.is_some() {
            left.push(format!("service/{svc}"));
        }
    }
    if Api::<ConfigMap>::namespaced(client.clone(), &c.ns).get_opt(&format!("{}-config", c.name)).await?.is_some() {
        left.push(format!("configmap/{}-config", c.name));
    }
    if Api::<Secret>::namespaced(client.clone(), &c.ns).get_opt(&format!("{}-admin", c.name)).await?.is_some() {
        left.push(format!("secret/{}-admin", c.name));
    }
    left.extend(c.pods().await?.iter().map(|p| format!("pod/{}", p.name_any())));
    Ok(left)
}

/// Deletes the cluster and waits until the finalizer ran and the garbage collector
/// removed every owned object.
async fn delete_and_collect(s: &Suite) -> anyhow::Result<()> {
    let (c, tl) = (&s.cluster, &s.tl);
    let obj = c.get().await?.context("the cluster exists")?;
    ensure!(obj.finalizers().iter().any(|f| f == FINALIZER), "no {FINALIZER} finalizer: {:?}", obj.finalizers());
    c.delete().await?;
    tl.note(format!("SeshatCluster deleted (finalizers {:?})", obj.finalizers()));
    poll(Duration::from_secs(90), "the finalizer to run and the object to go", || async {
        c.get().await.ok()?.is_none().then_some(())
    })
    .await?;
    tl.note("finalizer ran: SeshatCluster gone");
    let last = Mutex::new(Vec::new());
    let res = poll(CONVERGE, "the garbage collector to remove every owned object", || async {
        let left = owned_left(c).await.ok()?;
        let empty = left.is_empty();
        *last.lock().unwrap_or_else(|p| p.into_inner()) = left;
        empty.then_some(())
    })
    .await;
    res.map_err(|e| anyhow::anyhow!("{e}; left: {:?}", last.into_inner().unwrap_or_default()))?;
    tl.note("garbage collector removed the StatefulSet, pods, Services, ConfigMap and admin Secret");
    Ok(())
}

/// Scenario 6: deleting the cluster runs the finalizer and the garbage collector; PVCs
/// follow `whenDeleted` — retained by default (a re-created cluster finds every write),
/// deleted with `Delete`.
pub async fn delete(s: &Suite) -> anyhow::Result<WriteReport> {
    let (c, tl) = (&s.cluster, &s.tl);
    let _obs = Observer::start(&s.client, &c.ns, &c.name, tl);
    let writer = Writer::start("s6", &c.resp_addrs(3), CLIENTS);
    poll(Duration::from_secs(60), "writes acknowledged before the deletion", || async {
        (writer.acked() >= 100).then_some(())
    })
    .await?;
    let stopped = writer.stop().await;
    tl.note("client stopped; deleting the cluster (pvcRetention.whenDeleted: Retain, the default)");
    delete_and_collect(s).await?;
    let pvcs = c.pvcs().await?;
    ensure!(pvcs.len() == 3, "whenDeleted Retain must keep the 3 PVCs, found {pvcs:?}");
    tl.note(format!("PVCs retained: {pvcs:?}"));

    c.create(s.cluster_spec(3, "seshat:e2e-2")).await?;
    tl.note("SeshatCluster kv re-created on the retained volumes");
    settle(c, 3, tl).await?;
    let writes = stopped.verify(&c.resp_addrs(3), tl).await?;
    check_writes(&writes)?;
    tl.note("every write acknowledged before the deletion is read back from the re-created cluster");

    c.patch_spec(json!({ "pvcRetention": { "whenDeleted": "Delete" } })).await?;
    tl.note("pvcRetention.whenDeleted: Delete; deleting again");
    delete_and_collect(s).await?;
    let pvc_api: Api<PersistentVolumeClaim> = Api::namespaced(s.client.clone(), &c.ns);
    poll(Duration::from_secs(60), "the PVCs deleted", || async {
        let left: BTreeMap<String, bool> = pvc_api
            .list(&Default::default())
            .await
            .ok()?
            .items
            .iter()
            .map(|p| (p.name_any(), p.metadata.deletion_timestamp.is_some()))
            .filter(|(n, _)| n.starts_with(&format!("data-{}-", c.name)))
            .collect();
        left.is_empty().then_some(())
    })
    .await?;
    tl.note("PVCs deleted by the finalizer (whenDeleted: Delete)");
    Ok(writes)
}
