//! Wires the reconciler into a kube-rs `Controller`: what is watched and how
//! changes map back to a `SeshatCluster`.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::ResourceExt;

use crate::crd::SeshatCluster;
use crate::naming::MANAGER;
use crate::reconciler::{error_policy, reconcile, Context};

/// Label selector of every object this operator manages.
pub fn managed_selector() -> String {
    format!("app.kubernetes.io/managed-by={MANAGER}")
}

fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until `shutdown` resolves. `namespace`: watch only that
/// namespace (the chart's `watchNamespace`), else all.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let managed = watcher::Config::default().labels(&managed_selector());
    // Pods are owned by the StatefulSet, not the cluster: map them back by the
    // instance label. Pod changes (ready, deleted, IP assigned) are what move the
    // planner forward between steps.
    let pods_to_cluster = |pod: Pod| {
        let instance = pod.labels().get("app.kubernetes.io/instance")?.clone();
        Some(ObjectRef::<SeshatCluster>::new(&instance).within(&pod.namespace()?))
    };
    Controller::new(api::<SeshatCluster>(&client, ns), watcher::Config::default())
        .owns(api::<StatefulSet>(&client, ns), managed.clone())
        .owns(api::<Service>(&client, ns), managed.clone())
        .watches(api::<Pod>(&client, ns), managed, pods_to_cluster)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(cluster = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        })
        .await;
}
