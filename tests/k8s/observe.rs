//! Watchers that narrate a scenario: pod lifecycle changes (created, running at an IP,
//! ready, deleting, gone, leader label), the SeshatCluster's status, and the operator's
//! Events — each into the timeline, and the pod changes and Events also as structured
//! records the scenarios check (restart order, who reconciled).
//!
//! Only changes after the watch started are reported: the initial list seeds the
//! previous state silently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::task::JoinHandle;

use super::cluster::{self, Status, ROLE_LABEL};
use super::timeline::Timeline;

/// `reportingController` of the operator's Events.
pub const OPERATOR: &str = "seshat-operator";

/// What changed about a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodChange {
    /// A new pod object (a new uid).
    Created,
    /// Running with this IP.
    Running(String),
    /// Ready condition turned true.
    Ready,
    /// Ready condition turned false.
    NotReady,
    /// `deletionTimestamp` set.
    Deleting,
    /// Object gone.
    Gone,
    /// Leader label added (`true`) or removed.
    Leader(bool),
}

/// One pod change, stamped.
#[derive(Debug, Clone)]
pub struct PodEvent {
    /// Time since the observer started.
    pub at: Duration,
    /// Pod name.
    pub pod: String,
    /// The change.
    pub change: PodChange,
}

/// One Kubernetes Event about the cluster.
#[derive(Debug, Clone)]
pub struct OpEvent {
    /// Time since the observer started.
    pub at: Duration,
    /// `reason` (`AddLearner`, `Promote`, `RestartMember`...).
    pub reason: String,
    /// `note`.
    pub note: String,
    /// `reportingInstance` (the operator replica's identity).
    pub instance: String,
}

#[derive(Default)]
struct Records {
    pods: Vec<PodEvent>,
    events: Vec<OpEvent>,
}

/// Running watchers of one cluster; they stop when this is dropped.
pub struct Observer {
    tasks: Vec<JoinHandle<()>>,
    records: Arc<Mutex<Records>>,
}

#[derive(Clone, PartialEq, Eq, Default)]
struct PodState {
    uid: String,
    ip: Option<String>,
    ready: bool,
    deleting: bool,
    leader: bool,
}

fn pod_state(p: &Pod) -> PodState {
    let status = p.status.clone().unwrap_or_default();
    let ready = status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True");
    PodState {
        uid: p.uid().unwrap_or_default(),
        ip: status.pod_ip.filter(|_| status.phase.as_deref() == Some("Running")),
        ready,
        deleting: p.metadata.deletion_timestamp.is_some(),
        leader: p.labels().get(ROLE_LABEL).map(String::as_str) == Some("leader"),
    }
}

fn diff(old: Option<&PodState>, new: &PodState) -> Vec<PodChange> {
    let fresh = PodState::default();
    let old = match old {
        Some(o) if o.uid == new.uid => o,
        _ => &fresh,
    };
    let mut out = Vec::new();
    if old.uid != new.uid {
        out.push(PodChange::Created);
    }
    if old.ip != new.ip {
        if let Some(ip) = &new.ip {
            out.push(PodChange::Running(ip.clone()));
        }
    }
    if old.ready != new.ready {
        out.push(if new.ready { PodChange::Ready } else { PodChange::NotReady });
    }
    if !old.deleting && new.deleting {
        out.push(PodChange::Deleting);
    }
    if old.leader != new.leader {
        out.push(PodChange::Leader(new.leader));
    }
    out
}

impl Observer {
    /// Starts watching cluster `name` in `ns`.
    pub fn start(client: &Client, ns: &str, name: &str, tl: &Timeline) -> Self {
        let records = Arc::new(Mutex::new(Records::default()));
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let selector = format!("{}={name}", cluster::INSTANCE_LABEL);
        let pod_stream = watcher(pods, watcher::Config::default().labels(&selector));
        let clusters: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &cluster::resource());
        let cluster_stream = watcher(clusters, watcher::Config::default().fields(&format!("metadata.name={name}")));
        let events: Api<Event> = Api::namespaced(client.clone(), ns);
        let tasks = vec![
            tokio::spawn(watch_pods(pod_stream, tl.clone(), records.clone())),
            tokio::spawn(watch_cluster(cluster_stream, tl.clone())),
            tokio::spawn(watch_events(watcher(events, watcher::Config::default()), tl.clone(), records.clone())),
        ];
        Self { tasks, records }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pod changes so far.
    pub fn pod_events(&self) -> Vec<PodEvent> {
        self.lock().pods.clone()
    }

    /// Events so far.
    pub fn op_events(&self) -> Vec<OpEvent> {
        self.lock().events.clone()
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

type Watch<K> = Result<watcher::Event<K>, watcher::Error>;

async fn watch_pods(stream: impl Stream<Item = Watch<Pod>> + Send, tl: Timeline, records: Arc<Mutex<Records>>) {
    let mut stream = std::pin::pin!(stream);
    let mut last: HashMap<String, PodState> = HashMap::new();
    let mut seeded = false;
    while let Some(ev) = stream.next().await {
        let (pod, gone) = match ev {
            Ok(watcher::Event::InitApply(p)) if !seeded => {
                last.insert(p.name_any(), pod_state(&p));
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                seeded = true;
                continue;
            }
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => (p, false),
            Ok(watcher::Event::Delete(p)) => (p, true),
            _ => continue,
        };
        let name = pod.name_any();
        let state = pod_state(&pod);
        let changes = if gone {
            last.remove(&name);
            vec![PodChange::Gone]
        } else {
            let c = diff(last.get(&name), &state);
            last.insert(name.clone(), state);
            c
        };
        for change in changes {
            tl.note(format!("pod {name}: {change:?}"));
            let at = tl.elapsed();
            records.lock().unwrap_or_else(|p| p.into_inner()).pods.push(PodEvent { at, pod: name.clone(), change });
        }
    }
}

async fn watch_cluster(stream: impl Stream<Item = Watch<DynamicObject>> + Send, tl: Timeline) {
    let mut stream = std::pin::pin!(stream);
    let mut last = String::new();
    while let Some(ev) = stream.next().await {
        let (obj, gone) = match ev {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, false),
            Ok(watcher::Event::Delete(o)) => (o, true),
            _ => continue,
        };
        let line = if gone {
            "SeshatCluster gone".to_string()
        } else {
            let status: Status =
                serde_json::from_value(obj.data.get("status").cloned().unwrap_or_default()).unwrap_or_default();
            let deleting = if obj.metadata.deletion_timestamp.is_some() { " (deleting)" } else { "" };
            format!("status {}{deleting}", status.summary())
        };
        if line != last {
            tl.note(&line);
            last = line;
        }
    }
}

async fn watch_events(stream: impl Stream<Item = Watch<Event>> + Send, tl: Timeline, records: Arc<Mutex<Records>>) {
    let mut stream = std::pin::pin!(stream);
    let mut seen: HashMap<String, i32> = HashMap::new();
    let mut seeded = false;
    while let Some(ev) = stream.next().await {
        let (e, fresh) = match ev {
            Ok(watcher::Event::InitApply(e)) => (e, seeded),
            Ok(watcher::Event::InitDone) => {
                seeded = true;
                continue;
            }
            Ok(watcher::Event::Apply(e)) => (e, true),
            _ => continue,
        };
        // A repeated Event is the same object with a higher series count.
        let count = e.series.as_ref().map_or(1, |s| s.count);
        let key = e.name_any();
        let repeated = seen.insert(key, count).is_some_and(|c| c >= count);
        if !fresh || repeated {
            continue;
        }
        // The operator's own Events only: the pod watcher already narrates what the
        // scheduler and the StatefulSet controller do.
        if e.reporting_controller.as_deref() != Some(OPERATOR) {
            continue;
        }
        let reason = e.reason.clone().unwrap_or_default();
        let note = e.note.clone().unwrap_or_default();
        let instance = e.reporting_instance.clone().unwrap_or_default();
        let regarding = e.regarding.as_ref().and_then(|r| r.name.clone()).unwrap_or_default();
        tl.note(format!("event {reason} on {regarding} by {instance}: {note}"));
        let at = tl.elapsed();
        records.lock().unwrap_or_else(|p| p.into_inner()).events.push(OpEvent { at, reason, note, instance });
    }
}
