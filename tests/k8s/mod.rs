//! The operator end-to-end harness: a node agent that runs pods as local processes on a
//! real Kubernetes control plane, and the pieces the scenarios of `operator_e2e.rs` use.
//!
//! What is real: the API server (validation, RBAC, watches, server-side apply, the
//! status subresource), the controller manager (StatefulSet, endpoints, garbage
//! collector, PV binding, PVC protection, token and namespace controllers), the
//! scheduler, the operator binary (run out of cluster with the chart's ServiceAccount
//! token and the rendered Deployment's args), and the `seshat` server processes.
//!
//! What the agent stands in for, and how (a kubelet, CNI, CoreDNS and a provisioner):
//! - **Node**: registered Ready with capacity, a `NoSchedule` taint of its own (the
//!   scenarios' pods tolerate it and select the node), its Lease renewed every 10 s;
//! - **pods**: only the agent's namespaces; exactly one container, run as the
//!   `seshat-node` test binary whatever the image tag (an "upgrade" is a new template
//!   revision, not new code); `$(VAR)` expanded; env from the downward API, Secrets and
//!   ConfigMaps; status patched like a kubelet (podIP, phase, conditions,
//!   containerStatuses); SIGTERM, the grace period, SIGKILL, then the final delete;
//! - **network**: a fresh pod IP per incarnation from `198.18.0.0/15`, added to `lo`
//!   (the API server refuses loopback addresses in Endpoints). Listen arguments with an
//!   unspecified host (`0.0.0.0:PORT`, `[::]:PORT`) are rewritten to `<podIP>:PORT`:
//!   every replica uses the same ports and all share the host's network namespace;
//! - **DNS**: `<pod>.<subdomain>.<ns>.svc.cluster.local` and its short forms in a
//!   marked `/etc/hosts` block, for the life of each pod incarnation;
//! - **storage**: a `hostPath` PV per PVC of the agent's StorageClass, pre-bound; the
//!   directory outlives pods and goes with its PVC. Paths under a `volumeMount` in
//!   arguments or env are rewritten to the volume's host directory;
//! - **probes**: readiness (httpGet / tcpSocket on the pod IP, the pod's own timing)
//!   sets Ready; a failing liveness probe restarts the process; a crashed process is
//!   restarted with a short backoff.
//!
//! What only a full cluster covers: the container runtime and images (the pods' image,
//! `imagePullPolicy`, the Dockerfiles, the non-root / read-only-root security context,
//! resource limits), a real kubelet's probe scheduling and eviction, kube-proxy and
//! Service virtual IPs (clients here connect to pod IPs by their DNS names, so the
//! client Service's and the leader Service's *routing* is not exercised — only their
//! Endpoints), `kubectl port-forward`, cluster DNS, NetworkPolicy, a dynamic PV
//! provisioner and real volume semantics (fsGroup, capacity), PodDisruptionBudgets
//! (v1.20 has no `policy/v1`; the scenarios disable the PDB), and CEL validation.
//!
//! Modules:
//! - [`agent`]: registers the Node, keeps its Lease, dispatches pods to runners;
//! - [`pod_runner`], [`launch`], [`container`], [`podstatus`], [`podspec`]: one pod as a
//!   kubelet would run it, from spec to process to status;
//! - [`volumes`]: the PV binder; [`netif`], [`hosts`]: pod IPs and pod DNS names;
//! - [`operator`]: CRD, rendered RBAC, ServiceAccount kubeconfig, operator processes;
//! - [`suite`]: the fixture; [`cluster`]: a `SeshatCluster` seen from outside;
//! - [`observe`], [`membership`], [`timeline`]: what happened when;
//! - [`writer`]: the client writing through the cluster, and the verdict on its writes;
//! - [`scenario_agent`], [`scenarios_lifecycle`], [`scenarios_ops`]: scenarios 0–6.

pub mod agent;
pub mod cluster;
pub mod container;
pub mod hosts;
pub mod launch;
pub mod membership;
pub mod netif;
pub mod observe;
pub mod operator;
pub mod pod_runner;
pub mod podspec;
pub mod podstatus;
pub mod scenario_agent;
pub mod scenarios_lifecycle;
pub mod scenarios_ops;
pub mod suite;
pub mod timeline;
pub mod volumes;
pub mod writer;
