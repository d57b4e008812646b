#!/usr/bin/env python3
"""Renders and lints the Helm chart with Helm's own engine (helm-python-sdk), then
validates every YAML the project ships strictly against the Kubernetes OpenAPI
schemas (kubernetes-validate), offline.

    python3 operator/tests/validate_yaml.py            # check (used by `cargo test`)
    python3 operator/tests/validate_yaml.py --write    # regenerate manifests/operator.yaml

Covered: manifests/crd.yaml, the chart's crds/, the chart rendered with default values
and with every optional feature on, manifests/operator.yaml (which must equal the
rendered chart), and manifests/examples/*.yaml (SeshatClusters, validated against the
CRD's own openAPIV3Schema). Exit status 0 only when everything passed.
"""
import copy
import pathlib
import sys

MISSING = []
try:
    import helm_python as helm
except ImportError:
    MISSING.append("helm-python-sdk")
try:
    import kubernetes_validate
    from kubernetes_validate import utils as kv
except ImportError:
    MISSING.append("kubernetes-validate")
try:
    import yaml
    import jsonschema
except ImportError:
    MISSING.append("kubernetes-validate")  # brings PyYAML and jsonschema
if MISSING:
    print(f"FAIL: missing Python packages; run: pip install {' '.join(sorted(set(MISSING)))}")
    sys.exit(2)

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "seshat-operator"
MANIFESTS = ROOT / "manifests"
RELEASE = "seshat-operator"
NAMESPACE = "seshat-system"
# Oldest and newest schema sets kubernetes-validate bundles.
VERSIONS = [kv.all_versions()[0], kv.latest_version()]
# Kinds from CRDs kubernetes-validate has no schema for, checked here instead.
OUR_KINDS = {("seshat.io/v1alpha1", "SeshatCluster")}
FOREIGN_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL {msg}")


def docs(text, origin):
    out = []
    for doc in yaml.safe_load_all(text):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
            fail(f"{origin}: document without apiVersion/kind: {str(doc)[:80]}")
            continue
        out.append(doc)
    return out


def crd_schema():
    crd = next(iter(docs((MANIFESTS / "crd.yaml").read_text(), "manifests/crd.yaml")))
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def validate_custom(doc, origin):
    key = (doc["apiVersion"], doc["kind"])
    if key in FOREIGN_KINDS:
        # No schema offline: check the shape the Prometheus Operator requires.
        spec = doc.get("spec", {})
        if not spec.get("selector") or not spec.get("endpoints"):
            fail(f"{origin}: {doc['kind']} needs spec.selector and spec.endpoints")
        else:
            print(f"ok   {origin}: {doc['kind']}/{doc['metadata']['name']} (structure only: no schema offline)")
        return
    schema = copy.deepcopy(crd_schema())
    # The API server fills these in at the root; the CRD schema leaves them out.
    schema["properties"].update({"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}})

    # Structural schemas are closed unless x-kubernetes-preserve-unknown-fields: make
    # jsonschema equally strict, so a misspelt field fails here as on the API server.
    def close(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node.setdefault("additionalProperties", False)
            for v in node.values():
                close(v)
        elif isinstance(node, list):
            for v in node:
                close(v)

    close(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    for e in errors:
        fail(f"{origin}: {doc['kind']}/{doc['metadata'].get('name')}: {'.'.join(map(str, e.path))}: {e.message}")
    if not errors:
        print(f"ok   {origin}: {doc['kind']}/{doc['metadata']['name']} against the CRD schema")


def validate(doc, origin):
    if (doc["apiVersion"], doc["kind"]) in OUR_KINDS | FOREIGN_KINDS:
        validate_custom(doc, origin)
        return
    for version in VERSIONS:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            fail(f"{origin}: {doc['kind']}/{doc['metadata'].get('name')} on {version}: {path}: {e.message}")
            return
        except kv.SchemaNotFoundError as e:
            fail(f"{origin}: no schema for {doc['apiVersion']} {doc['kind']} on {version}: {e}")
            return
    print(f"ok   {origin}: {doc['kind']}/{doc['metadata'].get('name')} (strict, {', '.join(VERSIONS)})")


def render(values=None):
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema(values)
    rendered = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    out = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        out.extend(docs(rendered[path], path))
    return chart, out


def operator_manifest():
    """The chart rendered with defaults, for `kubectl apply`: a Namespace first, and
    labels that do not claim Helm manages the objects."""
    _, objects = render()
    objects = copy.deepcopy(objects)
    for obj in objects:
        labels = obj["metadata"].get("labels", {})
        labels.pop("helm.sh/chart", None)
        if labels.get("app.kubernetes.io/managed-by") == "Helm":
            labels["app.kubernetes.io/managed-by"] = "kubectl"
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    header = (
        "# Generated from charts/seshat-operator (default values, release "
        f"{RELEASE!r}, namespace {NAMESPACE!r})\n"
        "# by `python3 operator/tests/validate_yaml.py --write`. Do not edit.\n"
        "# Install: kubectl apply -f manifests/crd.yaml -f manifests/operator.yaml\n"
    )
    body = "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in [ns] + objects)
    return header + body


def main():
    if "--write" in sys.argv:
        (MANIFESTS / "operator.yaml").write_text(operator_manifest())
        print("wrote manifests/operator.yaml")
        return 0

    print(f"helm SDK {helm.helm_sdk_version()}, kubernetes-validate {kubernetes_validate.__version__}")
    # 1. Lint with Helm's engine (strict: warnings fail too), defaults and all features on.
    everything = {
        "watchNamespace": "apps",
        "networkPolicy": {"enabled": True, "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
    }
    for label, values in [("defaults", None), ("all features", everything)]:
        report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
        problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + [
            {"error": e} for e in report.get("errors", []) or []
        ]
        for m in problems:
            fail(f"helm lint ({label}): {m.get('path', '')} {m['error']}")
        if not problems:
            print(f"ok   helm lint --strict ({label})")

    # 2. The schema rejects nonsense.
    chart = helm.Chart.load(str(CHART))
    for bad in [{"replicaCount": 0}, {"logFormat": "xml"}, {"unknownKey": 1}]:
        try:
            chart.validate_schema(bad)
            fail(f"values.schema.json accepted {bad}")
        except helm.HelmValuesError:
            print(f"ok   values.schema.json rejects {bad}")

    # 3. Rendered chart: defaults and all features.
    _, default_objs = render()
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in default_objs)
    for want in ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment"]:
        if not any(k.startswith(want + "/") for k in kinds):
            fail(f"rendered chart lacks a {want}: {kinds}")
    deploy = next(o for o in default_objs if o["kind"] == "Deployment")
    if deploy["spec"]["replicas"] != 2:
        fail("chart Deployment must default to 2 replicas")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    if not container["securityContext"].get("readOnlyRootFilesystem") or not deploy["spec"]["template"]["spec"]["securityContext"].get("runAsNonRoot"):
        fail("operator must run non-root with a read-only root filesystem")
    for o in default_objs:
        validate(o, "chart (defaults)")
    _, all_objs = render(everything)
    if not any(o["kind"] == "NetworkPolicy" for o in all_objs) or not any(o["kind"] == "ServiceMonitor" for o in all_objs):
        fail("NetworkPolicy/ServiceMonitor not rendered when enabled")
    if any(o["kind"] == "ClusterRole" for o in all_objs):
        fail("watchNamespace set: expected a namespaced Role, not a ClusterRole")
    for o in all_objs:
        validate(o, "chart (all features)")

    # 4. CRDs and plain manifests, examples.
    crd_files = [MANIFESTS / "crd.yaml"] + sorted((CHART / "crds").glob("*.yaml"))
    for f in crd_files + [MANIFESTS / "operator.yaml"] + sorted((MANIFESTS / "examples").glob("*.yaml")):
        rel = f.relative_to(ROOT)
        for doc in docs(f.read_text(), str(rel)):
            validate(doc, str(rel))

    # 5. manifests/operator.yaml is the rendered chart.
    if (MANIFESTS / "operator.yaml").read_text() != operator_manifest():
        fail("manifests/operator.yaml differs from the rendered chart; run "
             "`python3 operator/tests/validate_yaml.py --write`")
    else:
        print("ok   manifests/operator.yaml matches the rendered chart")

    print(f"{len(failures)} failed" if failures else "all YAML checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
