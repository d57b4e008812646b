#!/usr/bin/env python3
"""Renders charts/seshat-operator with Helm's own engine (helm-python-sdk) for the
operator end-to-end suite, and prints what the suite needs as one JSON object:

    manifests  the ServiceAccount and RBAC documents (YAML), applied as rendered
    args       the operator container's args from the rendered Deployment
    env        its literal env values (fieldRef ones are resolved by the harness)
    serviceAccount, namespace

    render_chart.py --namespace NS [--release NAME] [--set-json '{"k": v}']

The Deployment itself is not applied: the suite runs the operator binary out of
cluster, with exactly the Deployment's args and the ServiceAccount's token.
"""
import argparse
import json
import pathlib
import sys

try:
    import helm_python as helm
    import yaml
except ImportError as e:
    print(f"missing Python package ({e}); run: pip install helm-python-sdk kubernetes-validate", file=sys.stderr)
    sys.exit(2)

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "seshat-operator"
KEEP = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--namespace", required=True)
    p.add_argument("--release", default="seshat-operator")
    p.add_argument("--set-json", default="{}")
    a = p.parse_args()
    values = json.loads(a.set_json)
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema(values)
    rendered = chart.render(values, name=a.release, namespace=a.namespace, is_install=True)
    keep, deployment = [], None
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(rendered[path]):
            if not doc:
                continue
            if doc["kind"] in KEEP:
                keep.append(doc)
            elif doc["kind"] == "Deployment":
                deployment = doc
    if deployment is None:
        print("the chart rendered no Deployment", file=sys.stderr)
        sys.exit(1)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    out = {
        "manifests": yaml.safe_dump_all(keep, sort_keys=False),
        "args": container.get("args", []),
        "env": {e["name"]: e["value"] for e in container.get("env", []) if "value" in e},
        "serviceAccount": pod.get("serviceAccountName", "default"),
        "namespace": a.namespace,
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
