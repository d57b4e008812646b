//! The pod status a kubelet would report, as a merge patch of `pods/status`.
//!
//! The patch carries `metadata.uid`: `uid` is immutable, so the API server rejects the
//! patch when the name now belongs to a newer pod (the kubelet's own precondition).
//! A merge patch replaces lists whole, so `conditions` and `containerStatuses` are
//! always sent complete.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::container::Terminated;

/// The container's current state.
#[derive(Debug, Clone)]
pub enum State {
    /// Not running: why (`ContainerCreating`, `CreateContainerConfigError`, `CrashLoopBackOff`).
    Waiting {
        /// Short reason.
        reason: String,
        /// Details.
        message: String,
    },
    /// Running since.
    Running {
        /// Start time.
        started: Timestamp,
    },
    /// Ended (the pod is being torn down).
    Terminated(Terminated),
}

/// Everything the status patch is built from.
#[derive(Debug, Clone)]
pub struct PodView {
    /// Pod uid (precondition).
    pub uid: String,
    /// `Pending` or `Running`.
    pub phase: &'static str,
    /// Pod IP once the sandbox exists.
    pub pod_ip: Option<String>,
    /// Node IP.
    pub host_ip: String,
    /// When the agent accepted the pod.
    pub start_time: Timestamp,
    /// Readiness from the readiness probe (or "running" without one).
    pub ready: bool,
    /// When `ready` last changed.
    pub ready_changed: Timestamp,
    /// Container name.
    pub container: String,
    /// Its image (reported as is; the agent runs the test binary for every tag).
    pub image: String,
    /// Current state.
    pub state: State,
    /// The previous run's end, after a restart.
    pub last_terminated: Option<Terminated>,
    /// Restarts so far.
    pub restart_count: i32,
    /// `seshat-e2e://<pid>` of the current or last run.
    pub container_id: Option<String>,
}

fn time(t: Timestamp) -> Value {
    serde_json::to_value(Time(t)).unwrap_or(Value::Null)
}

fn terminated(t: &Terminated, container_id: &Option<String>) -> Value {
    json!({
        "exitCode": t.exit_code, "reason": t.reason,
        "startedAt": time(t.started), "finishedAt": time(t.finished),
        "containerID": container_id,
    })
}

/// The merge patch for `pods/<name>/status`.
pub fn patch(v: &PodView) -> Value {
    let cond = |type_: &str, status: bool, since: Timestamp| json!({ "type": type_, "status": if status { "True" } else { "False" }, "lastTransitionTime": time(since) });
    let state = match &v.state {
        State::Waiting { reason, message } => json!({ "waiting": { "reason": reason, "message": message } }),
        State::Running { started } => json!({ "running": { "startedAt": time(*started) } }),
        State::Terminated(t) => json!({ "terminated": terminated(t, &v.container_id) }),
    };
    let last_state = match &v.last_terminated {
        Some(t) => json!({ "terminated": terminated(t, &None) }),
        None => json!({}),
    };
    let running = matches!(v.state, State::Running { .. });
    let mut status = json!({
        "phase": v.phase,
        "hostIP": v.host_ip,
        "startTime": time(v.start_time),
        "conditions": [
            cond("Initialized", true, v.start_time),
            cond("Ready", v.ready, v.ready_changed),
            cond("ContainersReady", v.ready, v.ready_changed),
            cond("PodScheduled", true, v.start_time),
        ],
        "containerStatuses": [{
            "name": v.container,
            "image": v.image,
            "imageID": format!("seshat-e2e://{}", v.image),
            "containerID": v.container_id,
            "ready": v.ready,
            "started": running,
            "restartCount": v.restart_count,
            "state": state,
            "lastState": last_state,
        }],
    });
    if let Some(ip) = &v.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{ "ip": ip }]);
    }
    json!({ "metadata": { "uid": v.uid }, "status": status })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_ready_pod() {
        let now = Timestamp::UNIX_EPOCH;
        let v = PodView {
            uid: "u1".into(),
            phase: "Running",
            pod_ip: Some("198.18.0.10".into()),
            host_ip: "127.0.0.1".into(),
            start_time: now,
            ready: true,
            ready_changed: now,
            container: "seshat".into(),
            image: "seshat:1".into(),
            state: State::Running { started: now },
            last_terminated: None,
            restart_count: 0,
            container_id: Some("seshat-e2e://42".into()),
        };
        let p = patch(&v);
        assert_eq!(p["metadata"]["uid"], "u1");
        assert_eq!(p["status"]["podIP"], "198.18.0.10");
        assert_eq!(p["status"]["conditions"][1]["type"], "Ready");
        assert_eq!(p["status"]["conditions"][1]["status"], "True");
        assert_eq!(p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"], "1970-01-01T00:00:00Z");
    }
}
