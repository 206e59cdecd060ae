"""Reference values for swe_backend_test: the SWE-RL reward written out in
Python with difflib, the library whose numbers the C++ backend must equal.

It follows the published method (Wei et al., "SWE-RL", arXiv 2502.18449):
the model's SEARCH/REPLACE edits are applied to the code context; each changed
file becomes the body of difflib.unified_diff over its lines (n=3); the reward
is the mean, over the union of files changed by prediction or oracle, of
difflib.SequenceMatcher(None, predicted, oracle, autojunk=False).ratio(), with
0 for a file changed on one side only and -1 for an edit that does not parse
or apply.

Usage: /usr/bin/python3 swe_rl_reference.py CASES.json
  CASES.json: [{"code_context": {...}, "oracle_new_content": {...},
                "response": "..."}, ...]
Prints a JSON list of rewards, one per case.
"""
import difflib
import json
import re
import sys

BLOCK = re.compile(
    r"```.*?\n### (.*)\n<<<<<<< SEARCH\n([\s\S]*?)\n=======\n([\s\S]*?)\n>>>>>>> REPLACE\n```")


class BadEdit(Exception):
    pass


def answer_of(response):
    for tag in ("<think>", "</think>", "<solution>", "</solution>"):
        if response.count(tag) != 1:
            raise BadEdit(tag)
    return response.split("<solution>")[1].split("</solution>")[0].strip()


def edits_of(answer):
    edits = {}
    for path, search, replace in BLOCK.findall(answer):
        edits.setdefault(path, []).append((search, replace))
    if not edits:
        raise BadEdit("no blocks")
    return edits


def apply_edits(context, edits):
    out = {}
    for path, pairs in edits.items():
        text = "\n" + context.get(path, "")
        for search, replace in pairs:
            if search == replace:
                raise BadEdit("identical")
            if "\n" + search not in text:
                raise BadEdit("not found")
            text = text.replace("\n" + search, "\n" + replace)
        out[path] = text[1:]
    return out


def file_diff(old, new):
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(),
                                      fromfile="old", tofile="new", lineterm="", n=3))
    return "\n".join(lines[2:])


def changes(context, contents):
    result = {}
    for path, new in contents.items():
        diff = file_diff(context.get(path, ""), new)
        if diff:
            result[path] = diff
    return result


def reward(case):
    context = case["code_context"]
    try:
        predicted = apply_edits(context, edits_of(answer_of(case["response"])))
    except BadEdit:
        return -1.0
    pred = changes(context, predicted)
    gold = changes(context, case["oracle_new_content"])
    paths = sorted(set(pred) | set(gold))
    if not paths:
        return 0.0
    total = 0.0
    for path in paths:
        p, g = pred.get(path, ""), gold.get(path, "")
        if p and g:
            total += difflib.SequenceMatcher(None, p, g, autojunk=False).ratio()
    return total / len(paths)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    print(json.dumps([reward(case) for case in cases]))
