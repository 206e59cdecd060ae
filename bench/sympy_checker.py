#!/usr/bin/python3
"""The peer for bench/math_bench: a Python + SymPy answer checker.

It does what Python RL stacks do for math rewards: take the last \\boxed{}
(or the whole string), rewrite common LaTeX into SymPy syntax, parse both
sides with sympy.parse_expr and decide equality by exact simplification of
the difference, falling back to numeric comparison. It is run on the same
cases as the C++ checker and times itself without interpreter start-up, in
CPU seconds of this process (checks per second per core, robust to a busy
machine, like the CPU-time rate Google Benchmark reports for the C++ side).

usage: sympy_checker.py CASES.jsonl [--repeat N]
prints one JSON object: {"checks", "seconds", "checks_per_second", "agreement"}
"""
import json
import re
import sys
import time

import sympy
from sympy.parsing.sympy_parser import (implicit_multiplication_application, parse_expr,
                                        standard_transformations, convert_xor)

TRANSFORMS = standard_transformations + (implicit_multiplication_application, convert_xor)


def last_boxed(text):
    start = text.rfind("\\boxed{")
    if start < 0:
        return text
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    return text[i + 1:]


def latex_to_sympy(text):
    s = last_boxed(text).strip().strip("$")
    s = re.sub(r"\\(left|right|displaystyle|!|,|;|quad)", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\\text\{[^}]*\}", "", s)
    s = s.replace("^\\circ", "").replace("\\%", "/100").replace("%", "/100")
    for _ in range(5):
        s = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
        s = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", s)
    s = s.replace("\\cdot", "*").replace("\\times", "*").replace("\\pi", "pi")
    s = s.replace("\\infty", "oo").replace("{", "(").replace("}", ")")
    s = re.sub(r"\\(sin|cos|tan|log|ln|exp)", r"\1", s)
    s = s.replace("\\", "").replace(",", "")
    return parse_expr(s, transformations=TRANSFORMS, evaluate=True)


def equivalent(gold, pred):
    try:
        a = latex_to_sympy(gold)
        b = latex_to_sympy(pred)
    except Exception:
        return False
    try:
        if sympy.simplify(a - b) == 0:
            return True
    except Exception:
        pass
    try:
        return abs(complex(sympy.N(a)) - complex(sympy.N(b))) <= 1e-6 * max(1.0, abs(complex(sympy.N(a))))
    except Exception:
        return False


def main():
    path = sys.argv[1]
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 1
    cases = []
    with open(path) as f:
        for line in f:
            case = json.loads(line)
            if case.get("gold") is not None and "expected" in case:
                cases.append(case)
    agree = 0
    start = time.process_time()
    for r in range(repeat):
        for case in cases:
            verdict = equivalent(case["gold"], case["pred"])
            if r == 0 and verdict == case["expected"]:
                agree += 1
    seconds = time.process_time() - start
    checks = repeat * len(cases)
    print(json.dumps({"checks": checks, "seconds": seconds,
                      "checks_per_second": checks / seconds,
                      "agreement": agree / len(cases)}))


if __name__ == "__main__":
    main()
