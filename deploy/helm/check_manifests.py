#!/usr/bin/python3
"""Structural checks of manifests rendered by `helm template` (no cluster needed).

usage: check_manifests.py RULES.yaml CASCADE_SCHEMA.json RENDERED.yaml...

Kubernetes' own schemas are not available offline, so this checks what the
chart can get wrong and the API server would only catch at install time, or
never: references between objects (selectors, named ports, volumes, config
maps, the HPA target, StatefulSet service names), the learner's rendezvous
environment, the rollout addresses handed to the learner, and that the
PrometheusRule carries deploy/prometheus's rules unchanged, and the cascade.json
in the ConfigMap (with the release's service addresses filled in) against the
orchestrator's JSON schema (services/orchestrator/cascade.schema.json).
"""
import json
import re
import sys

import jsonschema
import yaml

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
WORKLOADS = ("Deployment", "StatefulSet")
errors = []


def err(scenario, obj, message):
    errors.append(f"{scenario}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}: {message}")


def check(scenario, docs, rules, cascade_schema):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    config_maps = by_kind.get("ConfigMap", {})
    services = by_kind.get("Service", {})

    for d in docs:
        for key in ("apiVersion", "kind", "metadata"):
            if key not in d:
                err(scenario, d, f"no {key}")
        name = d["metadata"]["name"]
        if not DNS_LABEL.match(name) or len(name) > 63:
            err(scenario, d, "name is not a DNS-1123 label of at most 63 characters")
        if "app.kubernetes.io/instance" not in d["metadata"].get("labels", {}):
            err(scenario, d, "no app.kubernetes.io/instance label")

    for w in workloads:
        spec = w["spec"]
        pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"].get("labels", {})
        if not set(spec["selector"]["matchLabels"].items()) <= set(labels.items()):
            err(scenario, w, "selector does not match the pod template's labels")
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            err(scenario, w, "pods do not set runAsNonRoot")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        for v in volumes.values():
            if "configMap" in v and v["configMap"]["name"] not in config_maps:
                err(scenario, w, f"volume {v['name']} names a ConfigMap that is not rendered")
        for c in pod["containers"]:
            if ":" not in c.get("image", ""):
                err(scenario, w, f"container {c['name']} has no image tag")
            if not c.get("resources", {}).get("requests"):
                err(scenario, w, f"container {c['name']} has no resource requests")
            if not all(isinstance(a, str) for a in c.get("args", [])):
                err(scenario, w, f"container {c['name']} has a non-string argument")
            ports = {p["containerPort"]: p.get("name") for p in c.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                p = c.get(probe)
                if not p:
                    continue
                action = p.get("grpc") or p.get("tcpSocket") or {}
                if action.get("port") not in ports:
                    err(scenario, w, f"{probe} checks a port the container does not open")
                tls_on = any(e["name"] == "CASCADE_TLS_CA_FILE" for e in c.get("env", []))
                if tls_on and "grpc" in p:
                    err(scenario, w, f"{probe} is a plaintext gRPC probe but the server requires TLS")
            env = [e["name"] for e in c.get("env", [])]
            if len(env) != len(set(env)):
                err(scenario, w, f"container {c['name']} sets an environment variable twice")
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes and m["name"] not in claims:
                    err(scenario, w, f"mount {m['name']} has no volume")
        if w["kind"] == "StatefulSet":
            svc = services.get(spec["serviceName"])
            if svc is None:
                err(scenario, w, f"serviceName {spec['serviceName']} is not a rendered Service")

    for s in services.values():
        selector = dict(s["spec"].get("selector", {}))
        pod_name = selector.pop("statefulset.kubernetes.io/pod-name", None)
        matched = [w for w in workloads
                   if set(selector.items()) <= set(w["spec"]["template"]["metadata"]["labels"].items())]
        if not matched:
            err(scenario, s, "selects no pod template")
            continue
        if pod_name and not any(w["kind"] == "StatefulSet" and pod_name == w["metadata"]["name"] + "-0"
                                for w in matched):
            err(scenario, s, f"pod-name selector {pod_name} is not ordinal 0 of a selected StatefulSet")
        port_names = {p.get("name") for w in matched for c in w["spec"]["template"]["spec"]["containers"]
                      for p in c.get("ports", [])}
        for p in s["spec"]["ports"]:
            if isinstance(p["targetPort"], str) and p["targetPort"] not in port_names:
                err(scenario, s, f"targetPort {p['targetPort']} is not a container port of the selected pods")

    for h in by_kind.get("HorizontalPodAutoscaler", {}).values():
        ref = h["spec"]["scaleTargetRef"]
        target = by_kind.get(ref["kind"], {}).get(ref["name"])
        if target is None:
            err(scenario, h, "scales a workload that is not rendered")
        elif "replicas" in target["spec"]:
            err(scenario, h, "its target also fixes replicas (they would fight)")
        if h["spec"]["minReplicas"] > h["spec"]["maxReplicas"]:
            err(scenario, h, "minReplicas > maxReplicas")

    for cm in config_maps.values():
        if "cascade.json" in cm.get("data", {}):
            try:
                config = json.loads(cm["data"]["cascade.json"])
            except ValueError as e:
                err(scenario, cm, f"cascade.json is not JSON: {e}")
                continue
            for e in jsonschema.Draft202012Validator(cascade_schema).iter_errors(config):
                where = "/".join(str(p) for p in e.absolute_path)
                err(scenario, cm, f"cascade.json: {where}: {e.message}")

    learner = next((w for w in workloads if w["metadata"]["labels"].get("app.kubernetes.io/component") == "learner"), None)
    rollout = next((w for w in workloads if w["metadata"]["labels"].get("app.kubernetes.io/component") == "rollout"), None)
    if learner:
        c = learner["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        if "RANK" in env:
            err(scenario, learner, "RANK is set: every pod would get the same rank")
        if env.get("WORLD_SIZE") != str(learner["spec"]["replicas"]):
            err(scenario, learner, f"WORLD_SIZE {env.get('WORLD_SIZE')} != replicas {learner['spec']['replicas']}")
        expected_master = f"{learner['metadata']['name']}-0.{learner['spec']['serviceName']}."
        if not (env.get("MASTER_ADDR") or "").startswith(expected_master):
            err(scenario, learner, f"MASTER_ADDR {env.get('MASTER_ADDR')} is not rank 0 via {learner['spec']['serviceName']}")
        if learner["spec"].get("podManagementPolicy") != "Parallel":
            err(scenario, learner, "ranks must start in parallel for the rendezvous")
        if learner["spec"]["replicas"] > 1 and "livenessProbe" in c:
            err(scenario, learner, "follower ranks serve no gRPC: a grpc liveness probe would kill them")
        if rollout:
            args = c["args"]
            addrs = args[args.index("--rollouts") + 1].split(",") if "--rollouts" in args else []
            want = [f"{rollout['metadata']['name']}-{i}.{rollout['spec']['serviceName']}."
                    for i in range(rollout["spec"]["replicas"])]
            if len(addrs) != len(want) or not all(a.startswith(w) for a, w in zip(addrs, want)):
                err(scenario, learner, f"--rollouts {addrs} does not list every rollout replica")
            for cm in config_maps.values():
                if "cascade.json" in cm.get("data", {}):
                    listed = json.loads(cm["data"]["cascade.json"]).get("services", {}).get("rollout")
                    if listed != addrs:
                        err(scenario, cm, f"cascade.json lists rollout replicas {listed}, the learner {addrs}")

    for r in by_kind.get("PrometheusRule", {}).values():
        if r["spec"]["groups"] != rules["groups"]:
            err(scenario, r, "groups differ from deploy/prometheus/cascade-rules.yaml")
    for m in by_kind.get("ServiceMonitor", {}).values():
        selected = [s for s in services.values()
                    if set(m["spec"]["selector"]["matchLabels"].items()) <= set(s["metadata"]["labels"].items())]
        if not selected:
            err(scenario, m, "selects no Service")
        for ep in m["spec"]["endpoints"]:
            if not any(p.get("name") == ep["port"] for s in selected for p in s["spec"]["ports"]):
                err(scenario, m, f"endpoint port {ep['port']} is on none of the selected Services")


def main():
    rules = yaml.safe_load(open(sys.argv[1]))
    cascade_schema = json.load(open(sys.argv[2]))
    for path in sys.argv[3:]:
        scenario = path.rsplit("/", 1)[-1]
        docs = [d for d in yaml.safe_load_all(open(path)) if d]
        if not docs:
            errors.append(f"{scenario}: rendered nothing")
            continue
        check(scenario, docs, rules, cascade_schema)
        kinds = sorted({d["kind"] for d in docs})
        print(f"check-deploy: {scenario}: {len(docs)} objects ({', '.join(kinds)})")
    if errors:
        print("check-deploy: FAIL:\n  " + "\n  ".join(errors), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
