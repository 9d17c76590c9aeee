#!/usr/bin/env python3
"""Validate the rendered Kubernetes manifests and the monitoring files of flowable-ui.

Called by deploy/ci/check.sh inside its tool venv (PyYAML, kubernetes-validate):

    validate_manifests.py --root REPO --k8s-version 1.30 --k8s-version 1.33 \
        --rendered NAME=FILE ... --promql-out RULES_FILE

What it checks (each finding is printed; the exit status is 1 if there is any):

* Every YAML/JSON file under deploy/ and .github/ parses.
* Built-in kinds: kubernetes-validate in STRICT mode (unknown fields are errors) against
  every requested Kubernetes version.
* Custom resources, which kubernetes-validate has no schema for, are handled deliberately
  instead of being skipped: ServiceMonitor, PrometheusRule, Rollout and AnalysisTemplate get
  structural checks here (required fields, one strategy/provider, references that resolve);
  any OTHER kind without a schema is an error, so nothing slips through unvalidated.
* References inside one rendered environment resolve: Service selectors and PDBs match the
  server pods, Ingress backends name existing Services and ports, HPA/Rollout targets exist,
  ConfigMaps/PVCs/ServiceAccounts exist, and every Secret a pod uses is one of the
  documented secrets with a key present in deploy/k8s/secrets/*.example.yaml.
* Policy: no Secret objects in any build; pods run as non-root with a read-only root file
  system, no privilege escalation, all capabilities dropped, requests and limits set; the
  server has startup/liveness/readiness probes on /actuator/health/*; the Deployment's
  rolling update never reduces capacity; no image is untagged or ":latest".
* Secret templates hold placeholders only (every value contains CHANGE_ME).
* Every metric name used by the alerts, the dashboard and the analysis templates is one the
  service exports (or a known Prometheus / kube-state-metrics series); the PromQL of the
  dashboard and the analysis templates is written to --promql-out for `promtool check rules`.
* Every link into deploy/README.md (runbook URLs included) points at an existing heading.
"""
from __future__ import annotations

import argparse
import functools
import json
import pathlib
import re
import sys

import yaml

try:
    import kubernetes_validate
    from kubernetes_validate import utils as kv_utils
except ImportError:  # pragma: no cover - check.sh always provides it
    sys.exit("kubernetes-validate is not installed (run deploy/ci/check.sh)")

# kubernetes-validate re-reads its (large) schema files for every resource: cache them.
kv_utils.schema_contents = functools.lru_cache(maxsize=None)(kv_utils.schema_contents)

CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "Rollout", "AnalysisTemplate"}

# Metrics the service exports (DESIGN and deploy/README.md), histograms with their series.
APP_METRICS = {
    "http_server_requests_seconds": "histogram",
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_open_fds": "gauge",
    "process_start_time_seconds": "gauge",
    "db_pool_connections_active": "gauge",
    "db_pool_connections_idle": "gauge",
    "db_pool_connections_max": "gauge",
    "db_pool_acquire_wait_seconds": "histogram",
    "eventstore_appends_total": "counter",
    "projection_lag_events": "gauge",
    "relay_lag_events": "gauge",
    "relay_lag_seconds": "gauge",
    "events_total": "counter",
    "commands_rejected_total": "counter",
    "relay_published_total": "counter",
    "relay_publish_failures_total": "counter",
    "projection_steps_total": "counter",
    "projection_events_applied_total": "counter",
    "projection_step_seconds_total": "counter",
}
EXTERNAL_METRICS = {
    "up", "ALERTS",  # Prometheus itself
    "kube_pod_status_ready", "kube_pod_container_resource_limits",
    "kube_pod_container_status_restarts_total", "kube_cronjob_status_last_successful_time",
    "kube_job_status_failed",  # kube-state-metrics
}
# Secrets created out of band (deploy/k8s/secrets/README.md); optional ones need no template.
OPTIONAL_SECRETS = {"flowable-ui-pod-tls", "filebeat-elasticsearch", "flowable-ui-tls",
                    "flowable-ui-preview-tls"}

errors: list[str] = []


def error(where: str, message: str) -> None:
    errors.append(f"{where}: {message}")


def known_metric_names() -> set[str]:
    names = set(EXTERNAL_METRICS)
    for name, kind in APP_METRICS.items():
        names.add(name)
        if kind == "histogram":
            names.update({f"{name}_bucket", f"{name}_count", f"{name}_sum"})
    return names


METRIC_RE = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")


def check_metric_names(where: str, expr: str) -> None:
    known = known_metric_names()
    for name in METRIC_RE.findall(expr):
        if name not in known:
            error(where, f"unknown metric {name!r} in: {expr.strip()[:120]}")


# ---------------------------------------------------------------------------------------
# parsing


def parse_all_files(root: pathlib.Path) -> None:
    for base in ("deploy", ".github"):
        for path in sorted((root / base).rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(root)
            try:
                if path.suffix in (".yaml", ".yml"):
                    list(yaml.safe_load_all(path.read_text()))
                elif path.suffix == ".json":
                    json.loads(path.read_text())
            except Exception as exc:  # noqa: BLE001 - report any parse error
                error(str(rel), f"does not parse: {exc}")


def load_docs(path: pathlib.Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# ---------------------------------------------------------------------------------------
# helpers over a rendered environment


def index(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def pod_spec_of(doc: dict) -> dict | None:
    kind = doc["kind"]
    spec = doc.get("spec", {})
    if kind in ("Deployment", "Job", "DaemonSet", "StatefulSet"):
        return spec.get("template", {}).get("spec")
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    if kind == "AnalysisTemplate":
        return None
    return None


def pod_labels_of(doc: dict) -> dict:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"].get("metadata", {}).get("labels", {})
    return doc["spec"].get("template", {}).get("metadata", {}).get("labels", {})


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def analysis_job_pod_specs(doc: dict) -> list[dict]:
    specs = []
    for metric in doc.get("spec", {}).get("metrics", []):
        job = metric.get("provider", {}).get("job")
        if job:
            specs.append(job.get("spec", {}).get("template", {}).get("spec", {}))
    return specs


# ---------------------------------------------------------------------------------------
# custom resources


def check_servicemonitor(where: str, doc: dict, objs: dict) -> None:
    spec = doc.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    endpoints = spec.get("endpoints") or []
    if not selector:
        error(where, "ServiceMonitor without spec.selector.matchLabels")
    if not endpoints:
        error(where, "ServiceMonitor without endpoints")
    services = [d for (k, _), d in objs.items()
                if k == "Service" and selects(selector, d["metadata"].get("labels", {}))]
    if len(services) != 1:
        error(where, f"ServiceMonitor selects {len(services)} Services (want exactly 1, or pods are scraped twice)")
    for ep in endpoints:
        if not ep.get("port") or not ep.get("path"):
            error(where, "ServiceMonitor endpoint needs a named port and a path")
        for svc in services:
            if ep.get("port") not in {p.get("name") for p in svc["spec"].get("ports", [])}:
                error(where, f"Service {svc['metadata']['name']} has no port named {ep.get('port')!r}")


def check_prometheusrule(where: str, doc: dict) -> None:
    groups = (doc.get("spec") or {}).get("groups") or []
    if not groups:
        error(where, "PrometheusRule without groups")
    names = set()
    for group in groups:
        if not group.get("name") or not group.get("rules"):
            error(where, "rule group needs a name and rules")
        for rule in group.get("rules", []):
            ident = rule.get("alert") or rule.get("record")
            if not ident or not isinstance(rule.get("expr"), str) or not rule["expr"].strip():
                error(where, f"rule {ident!r} needs alert/record and a non-empty expr")
                continue
            check_metric_names(f"{where} {ident}", rule["expr"])
            if "alert" in rule:
                if ident in names:
                    error(where, f"duplicate alert {ident}")
                names.add(ident)
                labels = rule.get("labels") or {}
                annotations = rule.get("annotations") or {}
                if labels.get("priority") not in {"P0", "P1", "P2", "P3"}:
                    error(where, f"{ident}: labels.priority must be P0..P3")
                if labels.get("severity") not in {"critical", "warning", "info"}:
                    error(where, f"{ident}: labels.severity must be critical, warning or info")
                for key in ("summary", "description", "runbook_url"):
                    if not annotations.get(key):
                        error(where, f"{ident}: missing annotation {key}")


def check_analysistemplate(where: str, doc: dict, promql: list[tuple[str, str]]) -> None:
    spec = doc.get("spec") or {}
    metrics = spec.get("metrics") or []
    if not metrics:
        error(where, "AnalysisTemplate without metrics")
    arg_names = [a.get("name") for a in spec.get("args", [])]
    if len(arg_names) != len(set(arg_names)):
        error(where, "duplicate args")
    for metric in metrics:
        providers = list((metric.get("provider") or {}).keys())
        if not metric.get("name") or len(providers) != 1:
            error(where, f"metric {metric.get('name')!r} needs a name and exactly one provider")
            continue
        for used in re.findall(r"\{\{\s*args\.([\w-]+)\s*\}\}", json.dumps(metric)):
            if used not in arg_names:
                error(where, f"metric {metric['name']} uses undeclared arg {used!r}")
        prom = metric["provider"].get("prometheus")
        if prom:
            if not prom.get("query") or not prom.get("address"):
                error(where, f"metric {metric['name']}: prometheus needs address and query")
            elif not metric.get("successCondition"):
                error(where, f"metric {metric['name']}: no successCondition")
            else:
                check_metric_names(f"{where} {metric['name']}", prom["query"])
                promql.append((f"{doc['metadata']['name']}/{metric['name']}", prom["query"]))
        job = metric["provider"].get("job")
        if job and not (job.get("spec") or {}).get("template", {}).get("spec", {}).get("containers"):
            error(where, f"metric {metric['name']}: job provider without containers")


def check_rollout(where: str, doc: dict, objs: dict) -> None:
    spec = doc.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    ref = spec.get("workloadRef")
    if ref:
        target = objs.get((ref.get("kind"), ref.get("name")))
        if not target:
            error(where, f"workloadRef {ref.get('kind')}/{ref.get('name')} is not in the build")
        else:
            if target["spec"].get("replicas") != 0:
                error(where, "the Deployment behind workloadRef must have replicas: 0 (the Rollout owns the pods)")
            if target["spec"]["selector"].get("matchLabels") != selector:
                error(where, "Rollout and Deployment selectors differ")
    elif not spec.get("template"):
        error(where, "Rollout needs spec.template or spec.workloadRef")
    strategy = spec.get("strategy") or {}
    if len(strategy) != 1 or next(iter(strategy), None) not in ("blueGreen", "canary"):
        error(where, "Rollout needs exactly one strategy: blueGreen or canary")
        return
    name, body = next(iter(strategy.items()))
    service_keys = (("activeService", "previewService") if name == "blueGreen"
                    else ("stableService", "canaryService"))
    for key in service_keys:
        if not body.get(key):
            error(where, f"{name}.{key} missing")
        elif ("Service", body[key]) not in objs:
            error(where, f"{name}.{key} {body[key]!r} is not in the build")
    analyses = []
    if name == "blueGreen":
        analyses += [body.get("prePromotionAnalysis"), body.get("postPromotionAnalysis")]
    else:
        analyses.append(body.get("analysis"))
        analyses += [step.get("analysis") for step in body.get("steps", []) if "analysis" in step]
        nginx = (body.get("trafficRouting") or {}).get("nginx")
        if nginx:
            for ing_name in nginx.get("stableIngresses") or [nginx.get("stableIngress")]:
                ing = objs.get(("Ingress", ing_name))
                if not ing:
                    error(where, f"stable ingress {ing_name!r} is not in the build")
                    continue
                backends = {p["backend"]["service"]["name"]
                            for r in ing["spec"].get("rules", []) for p in r["http"]["paths"]}
                if body.get("stableService") not in backends:
                    error(where, f"ingress {ing_name} does not route to the stable service")
    for analysis in filter(None, analyses):
        given = {a["name"] for a in analysis.get("args", [])}
        for t in analysis.get("templates", []):
            template = objs.get(("AnalysisTemplate", t.get("templateName")))
            if not template:
                error(where, f"AnalysisTemplate {t.get('templateName')!r} is not in the build")
                continue
            for arg in template["spec"].get("args", []):
                if "value" not in arg and "valueFrom" not in arg and arg["name"] not in given:
                    error(where, f"template {t['templateName']} needs arg {arg['name']!r}")


# ---------------------------------------------------------------------------------------
# built-in kinds: references and policy


def check_pod_policy(where: str, pod: dict, server: bool, overlay: bool) -> None:
    psc = pod.get("securityContext") or {}
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        cw = f"{where} container {c['name']}"
        csc = c.get("securityContext") or {}
        if not (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            error(cw, "runAsNonRoot is not set")
        if csc.get("readOnlyRootFilesystem") is not True:
            error(cw, "readOnlyRootFilesystem is not true")
        if csc.get("allowPrivilegeEscalation") is not False:
            error(cw, "allowPrivilegeEscalation is not false")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            error(cw, "capabilities do not drop ALL")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set((res.get(part) or {}).keys()):
                error(cw, f"resources.{part} needs cpu and memory")
        image = c.get("image", "")
        if image == "flowable-ui":
            # The base's placeholder; every overlay must replace it (images: in kustomization).
            if overlay:
                error(cw, "image placeholder 'flowable-ui' was not replaced by the overlay")
        else:
            tail = image.rsplit("/", 1)[-1]
            if "@sha256:" not in image and (":" not in tail or tail.endswith(":latest")):
                error(cw, f"image {image!r} is untagged or :latest")
        if server:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                path = ((c.get(probe) or {}).get("httpGet") or {}).get("path", "")
                if not path.startswith("/actuator/health"):
                    error(cw, f"{probe} must GET /actuator/health/...")
            if 8080 not in {p.get("containerPort") for p in c.get("ports", [])}:
                error(cw, "does not expose port 8080")


def check_environment(name: str, docs: list[dict], secret_keys: dict[str, set[str]],
                      promql: list[tuple[str, str]], app_namespace: bool) -> None:
    objs = index(docs)
    overlay = name.startswith("overlays/") or name.startswith("variant/")
    workloads = [d for d in docs if d["kind"] in ("Deployment", "Rollout", "DaemonSet")]
    server_labels = [pod_labels_of(d) for d in docs if d["kind"] in ("Deployment", "DaemonSet")]

    for doc in docs:
        kind, meta = doc["kind"], doc["metadata"]
        where = f"{name} {kind}/{meta['name']}"
        if kind == "Secret":
            error(where, "a Secret in a build would overwrite the real one; keep secrets out of kustomize")
        if kind == "ConfigMap":
            # Embedded configuration files (filebeat.yml, the dashboard JSON) must parse too.
            for key, value in (doc.get("data") or {}).items():
                try:
                    if key.endswith((".yml", ".yaml")):
                        yaml.safe_load(value)
                    elif key.endswith(".json"):
                        json.loads(value)
                except Exception as exc:  # noqa: BLE001 - report any parse error
                    error(where, f"data[{key}] does not parse: {exc}")
        if kind == "Service" and doc["spec"].get("selector"):
            if not any(selects(doc["spec"]["selector"], lbl) for lbl in server_labels):
                error(where, "selector matches no pod template in the build")
        if kind == "PodDisruptionBudget":
            if not any(selects(doc["spec"]["selector"].get("matchLabels", {}), lbl) for lbl in server_labels):
                error(where, "selector matches no pod template in the build")
        if kind == "HorizontalPodAutoscaler":
            ref = doc["spec"]["scaleTargetRef"]
            if (ref["kind"], ref["name"]) not in objs:
                error(where, f"scaleTargetRef {ref['kind']}/{ref['name']} is not in the build")
            if ref["kind"] == "Deployment" and any(d["kind"] == "Rollout" for d in docs):
                error(where, "with a Rollout the HPA must scale the Rollout")
        if kind == "Ingress":
            for rule in doc["spec"].get("rules", []):
                for path in rule["http"]["paths"]:
                    svc_ref = path["backend"]["service"]
                    svc = objs.get(("Service", svc_ref["name"]))
                    if not svc:
                        error(where, f"backend service {svc_ref['name']!r} is not in the build")
                    elif "name" in svc_ref.get("port", {}) and svc_ref["port"]["name"] not in {
                            p.get("name") for p in svc["spec"]["ports"]}:
                        error(where, f"service {svc_ref['name']} has no port {svc_ref['port']['name']!r}")
            if not doc["spec"].get("tls"):
                error(where, "Ingress without TLS")
        if kind == "Deployment" and app_namespace:
            ru = doc["spec"].get("strategy", {}).get("rollingUpdate", {})
            if ru.get("maxUnavailable") not in (0, "0", "0%"):
                error(where, "rollingUpdate.maxUnavailable must be 0")
        if kind == "ServiceMonitor":
            check_servicemonitor(where, doc, objs)
        elif kind == "PrometheusRule":
            check_prometheusrule(where, doc)
        elif kind == "AnalysisTemplate":
            check_analysistemplate(where, doc, promql)
        elif kind == "Rollout":
            check_rollout(where, doc, objs)

        pods = []
        spec = pod_spec_of(doc)
        if spec:
            pods.append(spec)
        if kind == "AnalysisTemplate":
            pods += analysis_job_pod_specs(doc)
        for pod in pods:
            server = kind == "Deployment" and pod_labels_of(doc).get("app.kubernetes.io/component") == "server"
            if app_namespace:
                check_pod_policy(where, pod, server, overlay)
            check_pod_references(where, pod, objs, secret_keys)
    if app_namespace and not any(d["kind"] == "Deployment" for d in workloads):
        error(name, "no Deployment in the build")


def check_pod_references(where: str, pod: dict, objs: dict, secret_keys: dict[str, set[str]]) -> None:
    sa = pod.get("serviceAccountName")
    if sa and ("ServiceAccount", sa) not in objs:
        error(where, f"serviceAccount {sa!r} is not in the build")
    for vol in pod.get("volumes", []):
        if "configMap" in vol and ("ConfigMap", vol["configMap"]["name"]) not in objs:
            error(where, f"volume configMap {vol['configMap']['name']!r} is not in the build")
        if "persistentVolumeClaim" in vol and (
                "PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"]) not in objs:
            error(where, f"PVC {vol['persistentVolumeClaim']['claimName']!r} is not in the build")
        if "secret" in vol:
            check_secret_ref(where, vol["secret"]["secretName"], None, secret_keys, optional=False)
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        for src in c.get("envFrom", []):
            if "configMapRef" in src and ("ConfigMap", src["configMapRef"]["name"]) not in objs:
                error(where, f"envFrom configMap {src['configMapRef']['name']!r} is not in the build")
            if "secretRef" in src:
                check_secret_ref(where, src["secretRef"]["name"], None, secret_keys, optional=False)
        for env in c.get("env", []):
            ref = (env.get("valueFrom") or {})
            if "configMapKeyRef" in ref and ("ConfigMap", ref["configMapKeyRef"]["name"]) not in objs:
                error(where, f"env {env['name']}: configMap {ref['configMapKeyRef']['name']!r} is not in the build")
            if "secretKeyRef" in ref:
                r = ref["secretKeyRef"]
                check_secret_ref(where, r["name"], r["key"], secret_keys, optional=r.get("optional", False))


def check_secret_ref(where: str, name: str, key: str | None, secret_keys: dict[str, set[str]],
                     optional: bool) -> None:
    if name in OPTIONAL_SECRETS or optional:
        return
    if name not in secret_keys:
        error(where, f"secret {name!r} has no template in deploy/k8s/secrets/")
    elif key is not None and key not in secret_keys[name]:
        error(where, f"secret {name!r} has no key {key!r} in its template")


# ---------------------------------------------------------------------------------------
# schemas


def check_schemas(name: str, docs: list[dict], versions: list[str]) -> None:
    for doc in docs:
        kind = doc.get("kind")
        where = f"{name} {kind}/{doc.get('metadata', {}).get('name')}"
        if kind in CRD_KINDS:
            continue  # structural checks above; kubernetes-validate has no CRD schemas
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                error(where, f"k8s {version} schema: {path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError:
                error(where, f"no schema for {doc.get('apiVersion')} {kind} in k8s {version} "
                             "and no deliberate check for it either")


def secret_templates(root: pathlib.Path, versions: list[str]) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    for path in sorted((root / "deploy/k8s/secrets").glob("*.yaml")):
        rel = str(path.relative_to(root))
        docs = load_docs(path)
        check_schemas(rel, docs, versions)
        for doc in docs:
            if doc.get("kind") != "Secret":
                error(rel, "only Secret templates belong here")
                continue
            if doc.get("data"):
                error(rel, "use stringData with CHANGE_ME placeholders, not data")
            for key, value in (doc.get("stringData") or {}).items():
                if "CHANGE_ME" not in str(value):
                    error(rel, f"{doc['metadata']['name']}.{key} is not a CHANGE_ME placeholder")
            keys.setdefault(doc["metadata"]["name"], set()).update((doc.get("stringData") or {}).keys())
    return keys


# ---------------------------------------------------------------------------------------
# dashboard, anchors


def dashboard_exprs(root: pathlib.Path, promql: list[tuple[str, str]]) -> None:
    path = root / "deploy/grafana/flowable-ui.json"
    dash = json.loads(path.read_text())
    seen_ids = set()
    for panel in dash.get("panels", []):
        if panel.get("id") in seen_ids:
            error(str(path), f"duplicate panel id {panel.get('id')}")
        seen_ids.add(panel.get("id"))
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr:
                check_metric_names(f"dashboard panel {panel.get('title')!r}", expr)
                promql.append((f"dashboard/{panel.get('title')}", expr))
    for ann in dash.get("annotations", {}).get("list", []):
        if ann.get("expr"):
            check_metric_names("dashboard annotation", ann["expr"])
            promql.append(("dashboard/annotation", ann["expr"]))
    titles = " ".join(p.get("title", "") for p in dash.get("panels", []))
    for required in ("HTTP request rate", "HTTP error rate", "Response time", "Resident memory",
                     "CPU", "Event store appends", "Projection lag", "NATS relay lag",
                     "Rejected commands"):
        if required not in titles:
            error(str(path), f"panel {required!r} is missing")


def github_slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def check_anchors(root: pathlib.Path) -> None:
    readme = root / "deploy/README.md"
    if not readme.exists():
        error("deploy/README.md", "missing")
        return
    anchors = set()
    in_code = False
    for line in readme.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            anchors.add(github_slug(line.lstrip("#")))
    link_re = re.compile(r"(?:deploy/)?README\.md#([A-Za-z0-9_\-]+)")
    for base in ("deploy", ".github"):
        for path in sorted((root / base).rglob("*")):
            if not path.is_file() or path.suffix not in (".yaml", ".yml", ".json", ".md", ".sh", ".py", ""):
                continue
            text = path.read_text(errors="replace")
            for anchor in link_re.findall(text):
                if anchor not in anchors:
                    error(str(path.relative_to(root)), f"link to deploy/README.md#{anchor}: no such heading")


def write_promql_rules(promql: list[tuple[str, str]], out: pathlib.Path) -> None:
    subst = {
        "$__rate_interval": "5m", "$namespace": "flowable-prod", "$pod": ".*",
        "{{args.namespace}}": "flowable-prod", "{{args.pod-template-hash}}": "abc123",
        "{{args.prometheus-address}}": "http://prometheus:9090",
    }
    rules = []
    for i, (label, expr) in enumerate(promql):
        for old, new in subst.items():
            expr = expr.replace(old, new)
        if "$" in re.sub(r"\{\{[^}]*\}\}", "", expr) or "{{args." in expr:
            error(label, f"unsubstituted variable in PromQL: {expr[:100]}")
        rules.append({"record": f"check:expr_{i}", "expr": expr,
                      "labels": {"source": re.sub(r"[^\w/ -]", "", label)[:100]}})
    out.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-and-analysis", "rules": rules}]},
                                  sort_keys=False))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, type=pathlib.Path)
    ap.add_argument("--k8s-version", action="append", required=True)
    ap.add_argument("--rendered", action="append", default=[], help="NAME=FILE of a kustomize build")
    ap.add_argument("--promql-out", type=pathlib.Path)
    args = ap.parse_args()
    root = args.root.resolve()

    parse_all_files(root)
    secret_keys = secret_templates(root, args.k8s_version)
    promql: list[tuple[str, str]] = []
    count = 0
    for item in args.rendered:
        name, _, file = item.partition("=")
        docs = load_docs(pathlib.Path(file))
        count += len(docs)
        if not docs:
            error(name, "rendered nothing")
        check_schemas(name, docs, args.k8s_version)
        check_environment(name, docs, secret_keys, promql if name == "overlays/production" else [],
                          app_namespace=not name.startswith("logging"))
    alerts = load_docs(root / "deploy/prometheus/alerts.yml")
    for doc in alerts:
        check_prometheusrule("deploy/prometheus/alerts.yml", doc)
    dashboard_exprs(root, promql)
    check_anchors(root)
    if args.promql_out:
        write_promql_rules(promql, args.promql_out)

    for message in errors:
        print(f"ERROR {message}")
    print(f"validated {count} rendered objects in {len(args.rendered)} builds against "
          f"Kubernetes {', '.join(args.k8s_version)}; {len(promql)} PromQL expressions collected; "
          f"{len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
