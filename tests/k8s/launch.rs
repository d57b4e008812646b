//! Everything a pod's container needs before its process can start, resolved from the
//! API as a kubelet would: volumes (PVC → bound PV's `hostPath`, `emptyDir`, Secret and
//! ConfigMap projections), environment (literal values with `$(VAR)` expansion,
//! downward API `fieldRef`, `secretKeyRef`, `configMapKeyRef`), and the argv.
//!
//! A failure here is what a kubelet reports as `CreateContainerConfigError` (a missing
//! Secret key) or a pending mount (an unbound PVC): the runner retries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Pod, Secret};
use kube::api::Api;
use kube::{Client, ResourceExt};

use super::podspec::{self, HostMount};
use super::volumes;

/// A container ready to be spawned.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The container spec (probes, ports).
    pub container: Container,
    /// Full argv, `argv[0]` being the binary.
    pub argv: Vec<String>,
    /// Environment (the process gets nothing else but `PATH` and `HOSTNAME`).
    pub env: Vec<(String, String)>,
    /// Working directory: the pod's private directory.
    pub cwd: PathBuf,
    /// PVCs mounted, as `(claim, host dir)`.
    pub claims: Vec<(String, PathBuf)>,
}

/// Inputs of [`prepare`] that do not come from the pod.
pub struct Host<'a> {
    /// API client.
    pub client: &'a Client,
    /// The program run for the container (`seshat-node`).
    pub binary: &'a Path,
    /// This pod incarnation's private directory (emptyDirs, projections, cwd).
    pub pod_dir: &'a Path,
    /// The pod's IP.
    pub pod_ip: &'a str,
    /// The node's IP (`status.hostIP`).
    pub host_ip: &'a str,
}

/// The single container of `pod`, resolved for launch.
pub async fn prepare(pod: &Pod, host: &Host<'_>) -> anyhow::Result<Launch> {
    let spec = pod.spec.as_ref().context("pod without spec")?;
    let [container] = spec.containers.as_slice() else {
        bail!("this agent runs pods of exactly one container, not {}", spec.containers.len());
    };
    let ns = pod.namespace().unwrap_or_default();
    let mut mounts = Vec::new();
    let mut claims = Vec::new();
    for vm in container.volume_mounts.clone().unwrap_or_default() {
        let volume = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == vm.name)
            .with_context(|| format!("volumeMount {} names no volume", vm.name))?;
        let dir = if let Some(pvc) = &volume.persistent_volume_claim {
            let dir = volumes::host_dir_of_claim(host.client, &ns, &pvc.claim_name)
                .await?
                .with_context(|| format!("pvc/{} is not bound yet", pvc.claim_name))?;
            claims.push((pvc.claim_name.clone(), dir.clone()));
            dir
        } else if volume.empty_dir.is_some() {
            host.pod_dir.join("volumes").join(&vm.name)
        } else if let Some(s) = &volume.secret {
            let name = s.secret_name.clone().context("secret volume without secretName")?;
            let secret = Api::<Secret>::namespaced(host.client.clone(), &ns).get(&name).await?;
            let data = secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
            project(&host.pod_dir.join("volumes").join(&vm.name), data)?
        } else if let Some(c) = &volume.config_map {
            let cm = Api::<ConfigMap>::namespaced(host.client.clone(), &ns).get(&c.name).await?;
            let data = cm.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
            project(&host.pod_dir.join("volumes").join(&vm.name), data)?
        } else {
            bail!("volume {} has a type this agent does not support", volume.name);
        };
        std::fs::create_dir_all(&dir)?;
        let dir = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => dir.join(sub),
            None => dir,
        };
        mounts.push(HostMount { mount_path: vm.mount_path.clone(), host_dir: dir });
    }

    let env = resolve_env(pod, container, host, &mounts).await?;
    let lookup = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let argv = podspec::argv(container, host.binary, &lookup, host.pod_ip, &mounts);
    Ok(Launch { container: container.clone(), argv, env, cwd: host.pod_dir.to_owned(), claims })
}

/// Writes `data` as one file per key under `dir` (a Secret or ConfigMap volume).
fn project(dir: &Path, data: BTreeMap<String, Vec<u8>>) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    for (k, v) in data {
        std::fs::write(dir.join(k), v)?;
    }
    Ok(dir.to_owned())
}

/// Resolves the container's env in order; `value`s may reference earlier variables.
async fn resolve_env(
    pod: &Pod,
    container: &Container,
    host: &Host<'_>,
    mounts: &[HostMount],
) -> anyhow::Result<Vec<(String, String)>> {
    let ns = pod.namespace().unwrap_or_default();
    let mut env: Vec<(String, String)> = Vec::new();
    if container.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        bail!("envFrom is not supported by this agent");
    }
    for var in container.env.clone().unwrap_or_default() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => {
                let lookup = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                podspec::expand(v, &lookup)
            }
            (None, Some(_)) => match value_from(&var, pod, host, &ns).await? {
                Some(v) => v,
                None => continue,
            },
            (None, None) => String::new(),
        };
        let value = podspec::rewrite_paths(&podspec::rewrite_listen(&value, host.pod_ip), mounts);
        env.push((var.name.clone(), value));
    }
    Ok(env)
}

/// One `valueFrom`; `Ok(None)` when an optional source is missing (the variable is unset).
async fn value_from(var: &EnvVar, pod: &Pod, host: &Host<'_>, ns: &str) -> anyhow::Result<Option<String>> {
    let from = var.value_from.as_ref().context("valueFrom")?;
    if let Some(f) = &from.field_ref {
        let spec = pod.spec.as_ref();
        let v = match f.field_path.as_str() {
            "metadata.name" => pod.name_any(),
            "metadata.namespace" => ns.to_owned(),
            "metadata.uid" => pod.uid().unwrap_or_default(),
            "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
            "status.podIP" => host.pod_ip.to_owned(),
            "status.hostIP" => host.host_ip.to_owned(),
            other => match other.strip_prefix("metadata.labels['").and_then(|r| r.strip_suffix("']")) {
                Some(key) => pod.labels().get(key).cloned().unwrap_or_default(),
                None => bail!("env {}: fieldRef {other} is not supported", var.name),
            },
        };
        return Ok(Some(v));
    }
    if let Some(s) = &from.secret_key_ref {
        let optional = s.optional.unwrap_or(false);
        let secret = Api::<Secret>::namespaced(host.client.clone(), ns).get_opt(&s.name).await?;
        let value = secret.and_then(|sec| sec.data?.get(&s.key).map(|b| b.0.clone()));
        return match value {
            Some(bytes) => Ok(Some(String::from_utf8(bytes).context("secret value is not UTF-8")?)),
            None if optional => Ok(None),
            None => bail!("env {}: secret {} has no key {}", var.name, s.name, s.key),
        };
    }
    if let Some(c) = &from.config_map_key_ref {
        let optional = c.optional.unwrap_or(false);
        let cm = Api::<ConfigMap>::namespaced(host.client.clone(), ns).get_opt(&c.name).await?;
        return match cm.and_then(|cm| cm.data?.get(&c.key).cloned()) {
            Some(v) => Ok(Some(v)),
            None if optional => Ok(None),
            None => bail!("env {}: configmap {} has no key {}", var.name, c.name, c.key),
        };
    }
    bail!("env {}: resourceFieldRef is not supported", var.name)
}
