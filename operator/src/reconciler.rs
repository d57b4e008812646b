//! The reconcile function: apply owned objects, observe, plan one step, execute it,
//! record an Event, patch status, requeue.
//!
//! Level-triggered: nothing is remembered between reconciles except what is in the
//! API server (the `SeshatCluster`, its owned objects, the initialized annotation)
//! and in the Raft cluster itself, so an operator crash or failover between two steps
//! loses nothing — the next reconcile observes what the last one did.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams, Patch};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use seshat_control::client::AdminClient;
use seshat_control::driver::{Driver, DriverError};
use seshat_control::planner::{self, Action, Desired, Observed, Plan, VolumePolicy, DEFAULT_MAX_LAG};

use crate::apply::{api_resource, apply, apply_dynamic, delete_ignore_missing, patch_params};
use crate::crd::{RetentionPolicy, SeshatCluster};
use crate::metrics::Metrics;
use crate::naming::{FINALIZER, INITIALIZED_ANNOTATION, ROLE_LABEL, ROLE_LEADER};
use crate::observe;
use crate::resources::pdb::{self, PdbApi};
use crate::resources::{configmap, services, Owner};
use crate::secret::{self, TokenError};
use crate::status::{self, ActionReason};
use crate::workload::KubeWorkload;

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes request failed.
    #[error("kubernetes request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The admin token could not be read or created.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Observing the pods failed (a Kubernetes request; unreachable nodes are not errors).
    #[error("observation failed: {0}")]
    Observe(#[source] DriverError),
    /// The planned action failed.
    #[error("{action} failed: {source}")]
    Action {
        /// The action, as the planner described it.
        action: String,
        /// Why it failed.
        source: DriverError,
    },
    /// The object lacks a namespace or uid (never true for objects from the API server).
    #[error("SeshatCluster has no namespace or uid")]
    Incomplete,
    /// Adding or removing the finalizer, or the wrapped reconcile, failed.
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<Error>>),
}

/// Operator-wide settings of the reconciler.
#[derive(Debug, Clone)]
pub struct Config {
    /// Cluster DNS domain used in advertised pod names.
    pub cluster_domain: String,
    /// The PodDisruptionBudget API the server offers.
    pub pdb_api: PdbApi,
    /// Timeout of status requests to pods.
    pub node_timeout: Duration,
    /// Timeout of admin requests that wait on Raft.
    pub admin_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster_domain: "cluster.local".into(),
            pdb_api: PdbApi::V1,
            node_timeout: seshat_control::client::DEFAULT_TIMEOUT,
            admin_timeout: seshat_control::client::DEFAULT_LONG_TIMEOUT,
        }
    }
}

/// Shared state of all reconciles.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Event recorder (reporter `seshat-operator`).
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings.
    pub config: Config,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context over `client`.
    pub fn new(client: Client, recorder: Recorder, metrics: Arc<Metrics>, config: Config) -> Self {
        Self { client, recorder, metrics, config, failures: Mutex::new(HashMap::new()) }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn event(&self, cluster: &SeshatCluster, type_: EventType, reason: &str, action: &str, note: String) {
        let ev = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
        if let Err(e) = self.recorder.publish(&ev, &cluster.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }
}

fn key(cluster: &SeshatCluster) -> String {
    format!("{}/{}", cluster.namespace().unwrap_or_default(), cluster.name_any())
}

/// Entry point for the controller: finalizer handling around `apply_cluster` and
/// `cleanup`, plus metrics.
pub async fn reconcile(cluster: Arc<SeshatCluster>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = Instant::now();
    let ns = cluster.namespace().ok_or(Error::Incomplete)?;
    let api: Api<SeshatCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, cluster.clone(), |event| async {
        match event {
            FinalizerEvent::Apply(c) => apply_cluster(c, &ctx).await,
            FinalizerEvent::Cleanup(c) => cleanup(c, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.observe_reconcile(result.is_ok(), started.elapsed());
    if result.is_ok() {
        ctx.failures().remove(&key(&cluster));
    }
    result
}

/// Requeue with exponential backoff (1 s doubling to 5 min) on consecutive failures.
pub fn error_policy(cluster: Arc<SeshatCluster>, err: &Error, ctx: Arc<Context>) -> Requeue {
    let n = {
        let mut failures = ctx.failures();
        let n = failures.entry(key(&cluster)).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = Duration::from_secs(1u64 << n.min(9).saturating_sub(1)).min(Duration::from_secs(300));
    tracing::warn!(cluster = %key(&cluster), error = %err, failures = n, retry_in = ?delay, "reconcile failed");
    Requeue::requeue(delay)
}

/// The cluster is wanted: converge one step.
async fn apply_cluster(cluster: Arc<SeshatCluster>, ctx: &Context) -> Result<Requeue, Error> {
    let result = converge(&cluster, ctx).await;
    match &result {
        // A failed action already has its own `<Action>Failed` Event.
        Err(Error::Action { .. }) | Ok(_) => {}
        Err(e) => ctx.event(&cluster, EventType::Warning, "ReconcileError", "Reconcile", e.to_string()).await,
    }
    result
}

async fn converge(cluster: &SeshatCluster, ctx: &Context) -> Result<Requeue, Error> {
    let owner = Owner::new(cluster, &ctx.config.cluster_domain).ok_or(Error::Incomplete)?;
    let names = &owner.names;
    let ns = names.namespace.as_str();
    let client = &ctx.client;

    // 1. Owned objects, each applied in full every time (drift is corrected).
    let token = secret::ensure(&Api::<Secret>::namespaced(client.clone(), ns), &owner).await?;
    apply(&Api::<ConfigMap>::namespaced(client.clone(), ns), &configmap::build(&owner)).await?;
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
    for svc in [services::headless(&owner), services::client(&owner), services::leader(&owner)] {
        apply(&svcs, &svc).await?;
    }
    sync_pdb(&owner, ctx).await?;
    // The size stays what the planner last made it; only the template is refreshed.
    let sts_api = Api::namespaced(client.clone(), ns);
    let current = sts_api
        .get_opt(&names.statefulset())
        .await?
        .and_then(|s: k8s_openapi::api::apps::v1::StatefulSet| s.spec?.replicas)
        .unwrap_or(0);
    let current = u32::try_from(current).unwrap_or(0);
    let sts = KubeWorkload::apply_statefulset(client, &owner, &token.source, current).await?;
    let revision = observe::desired_revision(Some(&sts));

    // 2. Observe: the workload, then each pod's own view (at its advertised name).
    let initialized_before = cluster.annotations().contains_key(INITIALIZED_ANNOTATION);
    let workload = KubeWorkload::new(client.clone(), &owner, &token.source, sts, initialized_before);
    let admin = AdminClient::new(String::new(), Some(token.token.clone()))
        .with_timeouts(ctx.config.node_timeout, ctx.config.admin_timeout);
    let driver = Driver::new(workload, admin);
    let observed = driver.observe().await.map_err(Error::Observe)?;

    // 3. Plan one step.
    let desired = Desired {
        replicas: u32::try_from(cluster.spec.replicas).unwrap_or(0),
        // Pods are "up to date" when they run the StatefulSet's current revision, so
        // any template change (image, resources, settings) rolls through the planner.
        version: revision.unwrap_or_default(),
        volume_policy: match cluster.spec.pvc_retention.when_scaled {
            RetentionPolicy::Delete => VolumePolicy::Delete,
            RetentionPolicy::Retain => VolumePolicy::Retain,
        },
        max_lag: DEFAULT_MAX_LAG,
    };
    let plan = planner::plan(&desired, &observed);
    if is_change(&plan.action) || matches!(plan.action, Action::Degraded { .. }) {
        tracing::info!(cluster = %key(cluster), action = %plan.action, phase = ?plan.phase, "planned");
    } else {
        tracing::debug!(cluster = %key(cluster), action = %plan.action, phase = ?plan.phase, "planned");
    }

    // 4. Execute it.
    let outcome = run_action(cluster, ctx, &plan, &observed, &driver).await;
    let bootstrapped = matches!(plan.action, Action::Bootstrap { .. }) && outcome.is_ok();
    if !initialized_before && (plan.view.any_state || bootstrapped) {
        mark_initialized(cluster, ctx).await?;
    }

    // 5. Leader label and status.
    let pods = driver.workload().observed_pods();
    sync_leader_label(ctx, ns, names, &pods, &observed, &plan).await?;
    let err_text = outcome.as_ref().err().map(ToString::to_string);
    let new_status = status::build(cluster, names, &observed, &plan, err_text.as_deref(), Timestamp::now());
    Api::<SeshatCluster>::namespaced(client.clone(), ns)
        .patch_status(&cluster.name_any(), &patch_params(), &Patch::Merge(json!({ "status": new_status })))
        .await?;

    outcome.map_err(|source| Error::Action { action: plan.action.to_string(), source })?;
    Ok(match plan.action {
        // Observe the effect of a change soon; watches on pods and the StatefulSet
        // usually trigger even earlier.
        ref a if is_change(a) => Requeue::requeue(Duration::from_secs(2)),
        Action::Wait { .. } => Requeue::requeue(Duration::from_secs(5)),
        Action::Degraded { .. } => Requeue::requeue(Duration::from_secs(15)),
        // Raft state changes (leader elections) are invisible to watches: poll.
        _ => Requeue::requeue(Duration::from_secs(30)),
    })
}

/// True when the action changes something (and so deserves an Event and a metric).
pub fn is_change(action: &Action) -> bool {
    !matches!(action, Action::Wait { .. } | Action::Degraded { .. } | Action::Done)
}

/// Executes the planned action with an Event and a metric for every change, and a
/// Warning Event when the planner reports the cluster degraded.
async fn run_action(
    cluster: &SeshatCluster,
    ctx: &Context,
    plan: &Plan,
    observed: &Observed,
    driver: &Driver<KubeWorkload<'_>>,
) -> Result<(), DriverError> {
    let reason = plan.action.action_reason();
    // The Event's `action` is the concrete step ("add ordinal 2 (node 7) as learner"), not
    // just its kind: the recorder folds Events with equal (reason, action) into one
    // series and keeps the first note, which would hide every step after the first.
    let step: String = plan.action.to_string().chars().take(128).collect();
    if let Action::Degraded { reason: why } = &plan.action {
        ctx.event(cluster, EventType::Warning, reason, &step, why.clone()).await;
    }
    if !is_change(&plan.action) {
        return Ok(());
    }
    let result = driver.execute(plan, observed).await;
    ctx.metrics.observe_action(plan.action.kind(), result.is_ok());
    match &result {
        Ok(()) => ctx.event(cluster, EventType::Normal, reason, &step, plan.action.to_string()).await,
        Err(e) => {
            let note = format!("{} failed: {e}", plan.action);
            ctx.event(cluster, EventType::Warning, &format!("{reason}Failed"), &step, note).await
        }
    }
    result
}

/// Creates, or (when disabled) deletes, the quorum-safe PDB.
async fn sync_pdb(owner: &Owner<'_>, ctx: &Context) -> Result<(), Error> {
    let Some(api_version) = ctx.config.pdb_api.api_version() else {
        if owner.cluster.spec.pod_disruption_budget.enabled {
            let note = "the API server serves neither policy/v1 nor policy/v1beta1; no PDB created".to_string();
            ctx.event(owner.cluster, EventType::Warning, "PDBUnavailable", "SyncPDB", note).await;
        }
        return Ok(());
    };
    let resource = api_resource(api_version, "PodDisruptionBudget", "poddisruptionbudgets");
    let name = owner.names.pdb();
    if owner.cluster.spec.pod_disruption_budget.enabled {
        let obj = pdb::build(owner, api_version);
        apply_dynamic(ctx.client.clone(), &owner.names.namespace, &resource, &name, &obj).await?;
        return Ok(());
    }
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &owner.names.namespace, &resource);
    // Only delete a PDB this cluster owns: one with the same name may be the user's.
    if let Some(existing) = api.get_opt(&name).await? {
        if existing.owner_references().iter().any(|r| r.uid == owner.owner_ref.uid) {
            delete_ignore_missing(&api, &name).await?;
        }
    }
    Ok(())
}

async fn mark_initialized(cluster: &SeshatCluster, ctx: &Context) -> Result<(), Error> {
    let api: Api<SeshatCluster> = Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let patch = json!({ "metadata": { "annotations": { INITIALIZED_ANNOTATION: Timestamp::now().to_string() } } });
    api.patch(&cluster.name_any(), &patch_params(), &Patch::Merge(patch)).await?;
    Ok(())
}

/// Keeps `seshat.io/role=leader` on exactly the pod the planner identified as leader.
/// The label is removed only from pods known *not* to lead (they answered with another
/// role, or another pod leads), and removed before it is added, so the leader Service
/// never selects two pods; an unreachable pod keeps its label until proven otherwise.
async fn sync_leader_label(
    ctx: &Context,
    ns: &str,
    names: &crate::naming::Names,
    pods: &[Pod],
    observed: &Observed,
    plan: &Plan,
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let leader_pod = plan.view.leader.as_ref().map(|l| names.pod(l.ordinal));
    let labelled = |p: &Pod| p.labels().get(ROLE_LABEL).map(String::as_str) == Some(ROLE_LEADER);
    let known_follower = |p: &Pod| {
        let ordinal = names.ordinal_of(&names.statefulset(), &p.name_any());
        let answered_non_leader = ordinal
            .and_then(|o| observed.slot(o))
            .and_then(|s| s.status.as_ref())
            .is_some_and(|st| st.role != seshat_control::api::Role::Leader);
        answered_non_leader || leader_pod.as_ref().is_some_and(|l| *l != p.name_any())
    };
    for pod in pods.iter().filter(|p| labelled(p) && known_follower(p)) {
        let patch = json!({ "metadata": { "labels": { ROLE_LABEL: null } } });
        api.patch(&pod.name_any(), &patch_params(), &Patch::Merge(patch)).await?;
    }
    if let Some(leader) = &leader_pod {
        for pod in pods.iter().filter(|p| p.name_any() == *leader && !labelled(p)) {
            let patch = json!({ "metadata": { "labels": { ROLE_LABEL: ROLE_LEADER } } });
            api.patch(&pod.name_any(), &patch_params(), &Patch::Merge(patch)).await?;
        }
    }
    Ok(())
}

/// The cluster is being deleted: apply the PVC retention policy. Owned objects
/// (StatefulSet, Services, ...) are left to the garbage collector.
async fn cleanup(cluster: Arc<SeshatCluster>, ctx: &Context) -> Result<Requeue, Error> {
    let ns = cluster.namespace().ok_or(Error::Incomplete)?;
    let owner = Owner::new(&cluster, &ctx.config.cluster_domain).ok_or(Error::Incomplete)?;
    let note = match cluster.spec.pvc_retention.when_deleted {
        RetentionPolicy::Retain => "pvcRetention.whenDeleted=Retain: keeping the PVCs".to_string(),
        RetentionPolicy::Delete => {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
            let pvcs = api.list(&ListParams::default().labels(&owner.names.selector_string())).await?;
            let mut deleted = Vec::new();
            for pvc in pvcs.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
                // The pvc-protection finalizer holds each PVC until its pod is gone.
                if delete_ignore_missing(&api, &pvc.name_any()).await? {
                    deleted.push(pvc.name_any());
                }
            }
            format!("pvcRetention.whenDeleted=Delete: deleting PVCs {deleted:?}")
        }
    };
    ctx.event(&cluster, EventType::Normal, "Cleanup", "Delete", note).await;
    Ok(Requeue::await_change())
}
