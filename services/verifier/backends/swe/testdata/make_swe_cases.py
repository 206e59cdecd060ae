"""Writes swe_cases.jsonl: `verifier eval --backend swe` items with the reward
and verdict the backend must give. Rewards come from difflib through
../swe_rl_reference.py (content comparison) or from difflib on the file-level
diff texts written out below (patch comparison), never from the backend.

Run: /usr/bin/python3 make_swe_cases.py > swe_cases.jsonl
"""
import difflib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import swe_rl_reference as ref  # noqa: E402

CALC = """import math


def add(a, b):
    return a + b


def subtract(a, b):
    return a - b


def divide(a, b):
    return a / b


def sqrt(x):
    return math.sqrt(x)
"""
SORT = "def sort_list(lst):\n    return sorted(lst)\n"
CONTEXT = {"calc.py": CALC, "util/sort.py": SORT}

GOLD_CALC = CALC.replace(
    "def add(a, b):", "def add(a: float, b: float) -> float:").replace(
    "def divide(a, b):\n    return a / b",
    "def divide(a, b):\n    if b == 0:\n        raise ZeroDivisionError(\"division by zero\")\n"
    "    return a / b")
GOLD_SORT = SORT.replace("def sort_list(lst):", "def sort_list(lst: list[int]) -> list[int]:")
ORACLE = {"calc.py": GOLD_CALC, "util/sort.py": GOLD_SORT}


def block(path, search, replace, fence="```python"):
    return (f"{fence}\n### {path}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n"
            ">>>>>>> REPLACE\n```\n")


def swe_rl(*blocks, thought="The fix goes in calc.py."):
    return f"<think>\n{thought}\n</think>\n<solution>\n" + "\n".join(blocks) + "</solution>\n"


ADD = block("calc.py", "def add(a, b):", "def add(a: float, b: float) -> float:")
DIVIDE = block("calc.py", "def divide(a, b):\n    return a / b",
               "def divide(a, b):\n    if b == 0:\n        raise ZeroDivisionError(\"division by zero\")\n"
               "    return a / b")
SORT_BLOCK = block("util/sort.py", "def sort_list(lst):",
                   "def sort_list(lst: list[int]) -> list[int]:")
DIVIDE_VALUE_ERROR = block(
    "calc.py", "def divide(a, b):\n    return a / b",
    "def divide(a, b):\n    if not b:\n        raise ValueError(\"b must not be zero\")\n"
    "    return a / b")

cases = []


def sr_case(name, response, verdict, reference_response=None, note=""):
    item = {"response": response, "format": "search_replace",
            "code_context": CONTEXT, "oracle_new_content": ORACLE}
    reward = ref.reward({"code_context": CONTEXT, "oracle_new_content": ORACLE,
                         "response": reference_response or response})
    cases.append({"name": name, "item": item, "reward": reward, "verdict": verdict,
                  "note": note})


sr_case("search_replace identical over two files", swe_rl(ADD, DIVIDE, SORT_BLOCK), "identical")
sr_case("search_replace identical with one larger block",
        swe_rl(block("calc.py", "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):",
                     "def add(a: float, b: float) -> float:\n    return a + b\n\n\n"
                     "def subtract(a, b):"), DIVIDE, SORT_BLOCK), "identical")
sr_case("search_replace with a different exception is similar",
        swe_rl(ADD, DIVIDE_VALUE_ERROR, SORT_BLOCK), "similar")
sr_case("search_replace missing a file and adding another",
        swe_rl(ADD, DIVIDE, block("tests/test_calc.py", "", "def test_divide():\n    pass")),
        "similar")
sr_case("search_replace with only the sort change",
        swe_rl(SORT_BLOCK), "similar")
sr_case("search_replace whose SEARCH is not in the file",
        swe_rl(block("calc.py", "def add(a, b, c):", "def add(a, b, c=0):")), "unparseable")
sr_case("search_replace whose SEARCH lacks the indentation",
        swe_rl(block("calc.py", "return a / b", "return a // b")), "unparseable")
sr_case("search_replace with SEARCH equal to REPLACE",
        swe_rl(block("calc.py", "def add(a, b):", "def add(a, b):")), "unparseable")
sr_case("search_replace that undoes its own edit is a no-op",
        swe_rl(block("calc.py", "def add(a, b):", "def plus(a, b):"),
               block("calc.py", "def plus(a, b):", "def add(a, b):")), "noop")
sr_case("search_replace with an unclosed think block",
        "<think>\nLet me look at divide()...\n" + ADD, "unparseable",
        reference_response="<think>\nLet me look at divide()...\n" + ADD)
sr_case("search_replace answer in prose only",
        swe_rl("I would add a zero check to divide()."), "unparseable")
sr_case("search_replace blocks inside the think block are ignored",
        "<think>\nFirst idea:\n" + block("calc.py", "import math", "import cmath") +
        "No, keep math.\n</think>\n<solution>\n" + ADD + DIVIDE + SORT_BLOCK + "</solution>\n",
        "identical")
sr_case("search_replace blocks without fences or tags",
        "### calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n=======\n"
        "def add(a: float, b: float) -> float:\n>>>>>>> REPLACE\n", "similar",
        reference_response=swe_rl(ADD),
        note="accepted here; SWE-RL's own parser wants <think>/<solution> and fences, so the "
             "reward comes from the same edit in that form")

# --- unified diffs applied to code_context (content comparison) -----------------------

GOLD_DIFF = """diff --git a/calc.py b/calc.py
index ac7cc82..b4bf852 100644
--- a/calc.py
+++ b/calc.py
@@ -1,7 +1,7 @@
 import math
 
 
-def add(a, b):
+def add(a: float, b: float) -> float:
     return a + b
 
 
@@ -10,6 +10,8 @@ def subtract(a, b):
 
 
 def divide(a, b):
+    if b == 0:
+        raise ZeroDivisionError("division by zero")
     return a / b
 
 
diff --git a/util/sort.py b/util/sort.py
--- a/util/sort.py
+++ b/util/sort.py
@@ -1,2 +1,2 @@
-def sort_list(lst):
+def sort_list(lst: list[int]) -> list[int]:
     return sorted(lst)
"""


def content_reward(predicted_contents):
    pred = ref.changes(CONTEXT, predicted_contents)
    gold = ref.changes(CONTEXT, ORACLE)
    paths = sorted(set(pred) | set(gold))
    total = sum(difflib.SequenceMatcher(None, pred[p], gold[p], autojunk=False).ratio()
                for p in paths if pred.get(p) and gold.get(p))
    return total / len(paths)


def ud_content_case(name, response, verdict, reward):
    item = {"response": response, "format": "unidiff", "code_context": CONTEXT,
            "ground_truth": GOLD_DIFF}
    cases.append({"name": name, "item": item, "reward": reward, "verdict": verdict, "note": ""})


OFFSET_DIFF = """--- a/util/sort.py
+++ b/util/sort.py
@@ -5,2 +5,2 @@
-def sort_list(lst):
+def sort_list(lst: list[int]) -> list[int]:
     return sorted(lst)
--- a/calc.py
+++ b/calc.py
@@ -2,8 +2,8 @@
 
 
-def add(a, b):
+def add(a: float, b: float) -> float:
     return a + b
 
 
 def subtract(a, b):
     return a - b
@@ -20,3 +22,5 @@
 def divide(a, b):
+    if b == 0:
+        raise ZeroDivisionError("division by zero")
     return a / b
 
"""
ud_content_case("unidiff with other line numbers and hunk shapes is identical in content",
                "<think>\nTwo files need changes.\n</think>\n```diff\n" + OFFSET_DIFF + "```\n",
                "identical", 1.0)
SIMILAR_DIFF = """--- a/calc.py
+++ b/calc.py
@@ -12,2 +12,4 @@
 def divide(a, b):
+    if not b:
+        raise ValueError("b must not be zero")
     return a / b
"""
ud_content_case("unidiff changing one of two files differently is similar",
                "Here is my patch:\n\n```diff\n" + SIMILAR_DIFF + "```\n", "similar",
                content_reward({"calc.py": CALC.replace(
                    "def divide(a, b):\n", "def divide(a, b):\n    if not b:\n"
                    "        raise ValueError(\"b must not be zero\")\n")}))
ud_content_case("unidiff whose context is not in the file does not apply",
                "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -12,2 +12,2 @@\n def divide(x, y):\n"
                "-    return x / y\n+    return x // y\n```\n", "unparseable", -1.0)
ud_content_case("unidiff that deletes and re-adds a line is a no-op",
                "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -4,2 +4,2 @@\n-def add(a, b):\n"
                "+def add(a, b):\n     return a + b\n```\n", "noop", 0.0)

# --- unified diffs compared as patches (no code_context) -------------------------------

# SWE-RL's file-level text of GOLD_DIFF / the predictions: each hunk with its
# header, stripped, joined by newlines.
GOLD_TEXT = {
    "calc.py": "@@ -1,7 +1,7 @@\n import math\n \n \n-def add(a, b):\n"
               "+def add(a: float, b: float) -> float:\n     return a + b\n"
               "@@ -10,6 +10,8 @@ def subtract(a, b):\n \n \n def divide(a, b):\n"
               "+    if b == 0:\n+        raise ZeroDivisionError(\"division by zero\")\n"
               "     return a / b",
    "util/sort.py": "@@ -1,2 +1,2 @@\n-def sort_list(lst):\n"
                    "+def sort_list(lst: list[int]) -> list[int]:\n     return sorted(lst)",
}
SIMILAR_TEXT = ("@@ -12,2 +12,4 @@\n def divide(a, b):\n+    if not b:\n"
                "+        raise ValueError(\"b must not be zero\")\n     return a / b")


def patch_reward(pred_texts):
    paths = sorted(set(pred_texts) | set(GOLD_TEXT))
    total = sum(difflib.SequenceMatcher(None, pred_texts[p], GOLD_TEXT[p], autojunk=False).ratio()
                for p in paths if pred_texts.get(p) and GOLD_TEXT.get(p))
    return total / len(paths)


def ud_patch_case(name, response, verdict, reward):
    item = {"response": response, "format": "unidiff", "ground_truth": GOLD_DIFF}
    cases.append({"name": name, "item": item, "reward": reward, "verdict": verdict, "note": ""})


ud_patch_case("unidiff equal to the gold patch after a think block is identical",
              "<think>\nadd types and a zero check\n</think>\n\n```diff\n" + GOLD_DIFF + "```",
              "identical", 1.0)
ud_patch_case("unidiff with the gold hunks but no git index lines is identical",
              GOLD_DIFF.replace("index ac7cc82..b4bf852 100644\n", ""), "identical", 1.0)
ud_patch_case("unidiff touching one gold file differently is similar",
              "```diff\n" + SIMILAR_DIFF + "```", "similar",
              patch_reward({"calc.py": SIMILAR_TEXT}))
ud_patch_case("unidiff adding an unrelated file scores it zero",
              "```diff\n" + GOLD_DIFF + "--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-calc\n"
              "+calculator\n```", "similar",
              patch_reward({**GOLD_TEXT, "README.md": "@@ -1,1 +1,1 @@\n-calc\n+calculator"}))
ud_patch_case("unidiff with a hunk shorter than its header is unparseable",
              "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -4,3 +4,3 @@\n-def add(a, b):\n"
              "+def add(a: int, b: int):\n```", "unparseable", -1.0)
ud_patch_case("a response with no diff is unparseable",
              "<think>\nhmm\n</think>\nI think divide() should check for zero.", "unparseable", -1.0)
ud_patch_case("unidiff that changes nothing is a no-op",
              "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -4,2 +4,2 @@\n-def add(a, b):\n"
              "+def add(a, b):\n     return a + b\n```", "noop", 0.0)

for case in cases:
    print(json.dumps(case, ensure_ascii=False))
