#!/usr/bin/python3
"""Checks the Grafana dashboard without Grafana (scripts/check-deploy.sh).

usage: check_dashboard.py DASHBOARD.json OUT_RULES.yaml

Structure: a uid, unique panel ids, panels inside the 24-column grid, every
query target with a refId and an expression, every template variable used in
a query defined. PromQL: every expression, with template variables replaced by
a regex, is written to OUT_RULES.yaml as a recording rule so that
`promtool check rules` parses it.
"""
import json
import re
import sys

errors = []
dash = json.load(open(sys.argv[1]))
if not dash.get("uid"):
    errors.append("no uid")
variables = {v["name"] for v in dash.get("templating", {}).get("list", [])}
ids, exprs = set(), []
for panel in dash["panels"]:
    pid = panel.get("id")
    if pid in ids:
        errors.append(f"panel id {pid} used twice")
    ids.add(pid)
    grid = panel["gridPos"]
    if grid["x"] < 0 or grid["x"] + grid["w"] > 24:
        errors.append(f"panel {panel['title']!r} leaves the 24-column grid")
    if panel["type"] == "row":
        continue
    if not panel.get("targets"):
        errors.append(f"panel {panel['title']!r} has no query")
    for target in panel.get("targets", []):
        if not target.get("refId") or not target.get("expr"):
            errors.append(f"panel {panel['title']!r}: a target lacks refId or expr")
            continue
        for var in re.findall(r"\$\{?(\w+)", target["expr"]):
            if var not in variables:
                errors.append(f"panel {panel['title']!r} uses undefined variable ${var}")
        exprs.append((panel["title"], re.sub(r"\$\{?\w+\}?", ".*", target["expr"])))
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, expr) in enumerate(exprs):
        out.write(f"      - record: dashboard:panel_{i}\n        expr: {json.dumps(expr)}\n")
if errors:
    print("check-deploy: FAIL: dashboard:\n  " + "\n  ".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"check-deploy: dashboard: {len(ids)} panels, {len(exprs)} queries")
