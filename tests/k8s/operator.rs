//! The operator as users install it, run out of cluster: the CRD from
//! `manifests/crd.yaml`, the chart's ServiceAccount and RBAC rendered by Helm's engine
//! (`render_chart.py`), and `seshat-operator` processes started with the rendered
//! Deployment's args and a kubeconfig holding the ServiceAccount's token — never the
//! admin's, so every request the operator makes is authorized by the chart's RBAC.
//!
//! Invariant: every operator process is a child of the test, killed on `Drop`.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::{json, Value};

use super::timeline::Timeline;
use seshat_tests::wait::poll;

/// Name of the CRD.
pub const CRD_NAME: &str = "seshatclusters.seshat.io";

/// Runs `kubectl` with `args` (and `stdin`), under the caller's `KUBECONFIG`.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kubectl (is it on PATH?)")?;
    if let Some(input) = stdin {
        child.stdin.take().context("kubectl stdin")?.write_all(input.as_bytes())?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("kubectl {} failed: {}{}", args.join(" "), stdout, String::from_utf8_lossy(&out.stderr));
    }
    Ok(stdout)
}

/// An installed operator: what its processes need.
pub struct Installation {
    /// Release namespace (ServiceAccount, leader-election Lease).
    pub namespace: String,
    /// The rendered Deployment's container args.
    pub args: Vec<String>,
    /// Kubeconfig with the ServiceAccount token.
    pub kubeconfig: PathBuf,
    /// ServiceAccount name.
    pub service_account: String,
}

/// Installs the CRD and the chart's RBAC as release `release` into `namespace`, and
/// writes a kubeconfig for the chart's ServiceAccount under `dir`.
pub async fn install(
    client: &Client,
    repo: &Path,
    release: &str,
    namespace: &str,
    dir: &Path,
    tl: &Timeline,
) -> anyhow::Result<Installation> {
    // The CRD. `create`/`replace` rather than `apply`: its size exceeds the
    // last-applied annotation limit. `--validate=false`: kubectl's client-side schema
    // check knows no `x-kubernetes-validations` on 1.20; the server prunes it.
    let crd = repo.join("manifests/crd.yaml");
    let crd = crd.to_str().context("non-UTF-8 path")?;
    if kubectl(&["create", "--validate=false", "-f", crd], None).is_err() {
        kubectl(&["replace", "--validate=false", "-f", crd], None)?;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    poll(Duration::from_secs(30), "CRD established", || async {
        let crd = crds.get_opt(CRD_NAME).await.ok()??;
        let conds = crd.status?.conditions?;
        conds.iter().any(|c| c.type_ == "Established" && c.status == "True").then_some(())
    })
    .await?;
    tl.note("install: CRD seshatclusters.seshat.io established");

    ensure_namespace(client, namespace).await?;

    let script = repo.join("tests/k8s/render_chart.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(&script)
        .args(["--namespace", namespace, "--release", release])
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !out.status.success() {
        bail!("rendering the chart failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let rendered: Value = serde_json::from_slice(&out.stdout)?;
    let manifests = rendered["manifests"].as_str().context("manifests")?;
    kubectl(&["apply", "-f", "-"], Some(manifests))?;
    let args: Vec<String> = serde_json::from_value(rendered["args"].clone())?;
    let sa = rendered["serviceAccount"].as_str().context("serviceAccount")?.to_owned();
    tl.note(format!("install: chart RBAC applied (ServiceAccount {namespace}/{sa})"));

    let token = service_account_token(client, namespace, &sa).await?;
    let kubeconfig = dir.join("operator.kubeconfig");
    write_kubeconfig(&kubeconfig, &token, namespace)?;
    Ok(Installation { namespace: namespace.into(), args, kubeconfig, service_account: sa })
}

/// Creates namespace `name`, first waiting out a previous run's one still terminating.
pub async fn ensure_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    poll(Duration::from_secs(120), &format!("namespace {name} from an earlier run to finish terminating"), || async {
        let ns = namespaces.get_opt(name).await.ok()?;
        ns.is_none_or(|ns| ns.metadata.deletion_timestamp.is_none()).then_some(())
    })
    .await?;
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } }))?;
    match namespaces.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating namespace {name}")),
    }
}

/// A long-lived token of the ServiceAccount, from a `service-account-token` Secret the
/// token controller fills (created explicitly: clusters since 1.24 no longer create one
/// per ServiceAccount, 1.20 accepts it just the same).
async fn service_account_token(client: &Client, ns: &str, sa: &str) -> anyhow::Result<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let name = format!("{sa}-e2e-token");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": name, "annotations": { "kubernetes.io/service-account.name": sa } },
        "type": "kubernetes.io/service-account-token",
    }))?;
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => return Err(e).context("creating the ServiceAccount token Secret"),
    }
    let token = poll(Duration::from_secs(30), "the token controller to fill the token", || async {
        let s = secrets.get_opt(&name).await.ok()??;
        let t = s.data?.get("token")?.0.clone();
        String::from_utf8(t).ok().filter(|t| !t.is_empty())
    })
    .await?;
    Ok(token)
}

/// A kubeconfig for the current cluster (server and CA from the caller's) with `token`.
fn write_kubeconfig(path: &Path, token: &str, namespace: &str) -> anyhow::Result<()> {
    let current: Value =
        serde_json::from_str(&kubectl(&["config", "view", "--raw", "--minify", "--flatten", "-o", "json"], None)?)?;
    let cluster = current["clusters"][0]["cluster"].clone();
    anyhow::ensure!(cluster.is_object(), "no cluster in the current kubeconfig");
    let cfg = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [ { "name": "e2e", "cluster": cluster } ],
        "users": [ { "name": "seshat-operator", "user": { "token": token } } ],
        "contexts": [ { "name": "e2e", "context": { "cluster": "e2e", "user": "seshat-operator", "namespace": namespace } } ],
        "current-context": "e2e",
    });
    std::fs::write(path, serde_json::to_vec_pretty(&cfg)?)?;
    Ok(())
}

/// One `seshat-operator run` process.
pub struct OperatorProcess {
    /// Its Lease identity.
    pub identity: String,
    /// `127.0.0.1:<port>` of `/metrics` and `/healthz`.
    pub metrics_addr: String,
    /// Log file.
    pub log: PathBuf,
    child: Option<Child>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl OperatorProcess {
    /// Starts `binary` with the installation's args; `--metrics-addr` is moved to a free
    /// loopback port, `POD_NAME`/`POD_NAMESPACE` are what the Deployment's fieldRefs give.
    pub fn spawn(binary: &Path, inst: &Installation, identity: &str, log_dir: &Path) -> anyhow::Result<Self> {
        let metrics_addr = format!("127.0.0.1:{}", free_port()?);
        let args: Vec<String> = inst
            .args
            .iter()
            .map(|a| if a.starts_with("--metrics-addr") { format!("--metrics-addr={metrics_addr}") } else { a.clone() })
            .collect();
        let log = log_dir.join(format!("operator-{identity}.log"));
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = Command::new(binary)
            .args(&args)
            .env("KUBECONFIG", &inst.kubeconfig)
            .env("POD_NAME", identity)
            .env("POD_NAMESPACE", &inst.namespace)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("RUST_LOG", std::env::var("SESHAT_E2E_OPERATOR_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        super::container::record(&log_dir.join("pids"), child.id());
        Ok(Self { identity: identity.into(), metrics_addr, log, child: Some(child) })
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no Lease release, the standby must wait for expiry.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Scrapes `/metrics`: (reconciles so far, leader gauge).
    pub async fn metrics(&self, http: &reqwest::Client) -> anyhow::Result<(u64, bool)> {
        let text = http.get(format!("http://{}/metrics", self.metrics_addr)).send().await?.text().await?;
        Ok(parse_metrics(&text))
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `(sum of seshat_operator_reconciles_total, seshat_operator_leader == 1)`.
pub fn parse_metrics(text: &str) -> (u64, bool) {
    let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let reconciles =
        text.lines().filter(|l| l.starts_with("seshat_operator_reconciles_total")).map(|l| value(l) as u64).sum();
    let leader = text.lines().any(|l| l.starts_with("seshat_operator_leader ") && value(l) >= 1.0);
    (reconciles, leader)
}

#[cfg(test)]
mod tests {
    #[test]
    fn metrics_are_summed() {
        let text = "# TYPE x counter\nseshat_operator_reconciles_total{result=\"ok\"} 7\n\
                    seshat_operator_reconciles_total{result=\"error\"} 2\nseshat_operator_leader 1\n";
        assert_eq!(super::parse_metrics(text), (9, true));
        assert_eq!(super::parse_metrics("seshat_operator_leader 0\n"), (0, false));
    }
}
