#!/usr/bin/python3
"""Datasets of the tiny cascade (SFT warm-up, then RLHF -> IF-RL -> math -> code -> SWE).

Usage:  /usr/bin/python3 examples/tiny/make_data.py --out DIR [--seed 7]

Writes, under DIR:
  sft/train.jsonl                       {"id","domain","prompt","response"}, every domain
  rlhf/train.jsonl, rlhf/eval.jsonl     {"id","prompt"}
  rm/preferences.jsonl                  {"prompt":[chat messages],"chosen","rejected"}
  if/train.jsonl, if/eval.jsonl         {"id","prompt","instruction_id_list","kwargs"}
  math/train.jsonl, math/eval.jsonl     {"id","prompt","ground_truth"}
  code/train.jsonl, code/eval.jsonl     {"id","prompt","language","tests"}
  swe/train.jsonl, swe/eval.jsonl       {"id","prompt","format","code_context","oracle_new_content"}

Everything is small enough for a randomly initialised 2-layer model to learn on a
CPU in minutes: short prompts, short answers, few templates. The SFT responses are
deliberately 60% correct / 40% plausibly wrong per domain, so that every RL stage
starts with reward variance to learn from (see README.md).

Standard library only; the output is a pure function of --seed.
"""
import argparse
import json
import os
import random
import sys

TRAIN_ROWS = 300
EVAL_ROWS = 32
SFT_PER_DOMAIN = 300
SFT_CORRECT_FRACTION = 0.6

NAMES = ["Anna", "Bob", "Carl", "Dana", "Emma", "Finn", "Gina", "Hugo", "Ivy", "Jack",
         "Kate", "Leo", "Mia", "Nina", "Omar", "Paul", "Rosa", "Sam", "Tara", "Uma",
         "Vera", "Will", "Zoe", "Alex", "Ben", "Cleo", "Dora", "Eli", "Fay", "Gus",
         "Hana", "Ian", "Jon", "Lily", "Max", "Nora", "Owen", "Ruth", "Tom", "Yara"]


# ---------------------------------------------------------------------------
# helpers

def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def split_unique(rng, items, key, n_eval, n_train):
    """Shuffles distinct items (by key) and returns (eval, train) with no key shared."""
    seen = set()
    unique = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            unique.append(item)
    rng.shuffle(unique)
    if len(unique) < n_eval + n_train:
        raise SystemExit(f"make_data.py: only {len(unique)} distinct items for "
                         f"{n_eval}+{n_train} rows")
    return unique[:n_eval], unique[n_eval:n_eval + n_train]


def correct_flags(rng, n):
    """Exactly round(n * SFT_CORRECT_FRACTION) True values, shuffled."""
    k = round(n * SFT_CORRECT_FRACTION)
    flags = [True] * k + [False] * (n - k)
    rng.shuffle(flags)
    return flags


# ---------------------------------------------------------------------------
# RLHF: chat requests; the reward model prefers answers that end with "!"
# (the "friendly" style) over the same words ending with ".".

RLHF_NAME_TASKS = [
    ("Say hello to {n}.", ["Hello, {n}", "Hello there, {n}", "Hi {n}, hello"]),
    ("Greet {n}.", ["Hi {n}, nice to meet you", "Good to see you, {n}", "Welcome, {n}"]),
    ("Thank {n}.", ["Thank you, {n}", "Thanks a lot, {n}", "Many thanks, {n}"]),
    ("Say goodbye to {n}.", ["Goodbye, {n}", "See you soon, {n}", "Bye {n}, take care"]),
    ("Wish {n} a good day.", ["Have a good day, {n}", "Enjoy your day, {n}",
                              "Have a great day, {n}"]),
    ("Say good morning to {n}.", ["Good morning, {n}", "Morning, {n}",
                                  "Good morning to you, {n}"]),
    ("Congratulate {n}.", ["Congratulations, {n}", "Well done, {n}", "Great job, {n}"]),
    ("Welcome {n} home.", ["Welcome home, {n}", "Good to have you home, {n}",
                           "Welcome back home, {n}"]),
]
RLHF_CATEGORIES = {
    "color": ["Blue", "Red", "Green", "Yellow", "Purple", "Orange"],
    "animal": ["A cat", "A dog", "A horse", "A rabbit", "A fox", "An owl"],
    "fruit": ["An apple", "A banana", "A pear", "A mango", "A plum", "A cherry"],
    "drink": ["Tea", "Water", "Coffee", "Milk", "Juice", "Lemonade"],
    "season": ["Spring", "Summer", "Autumn", "Winter"],
    "vegetable": ["A carrot", "A potato", "A pea", "An onion", "A leek", "A bean"],
}
RLHF_CATEGORY_WORDINGS = ["Name a {c}.", "Tell me a {c}.", "Pick a {c}.", "Give me a {c}."]


def rlhf_prompts():
    items = []
    for template, answers in RLHF_NAME_TASKS:
        for name in NAMES:
            items.append({"prompt": template.format(n=name),
                          "answers": [a.format(n=name) for a in answers]})
    for category, values in RLHF_CATEGORIES.items():
        for wording in RLHF_CATEGORY_WORDINGS:
            article = "an" if category[0] in "aeiou" else "a"
            prompt = wording.format(c=category).replace(" a " + category,
                                                        f" {article} {category}")
            items.append({"prompt": prompt,
                          "answers": [f"{v} is a nice {category}" for v in values]})
    return items


def rlhf_styles(rng, item):
    base = rng.choice(item["answers"])
    return base + "!", base + "."  # (preferred, other)


# ---------------------------------------------------------------------------
# IF-RL: one IFEval instruction per prompt.

IF_TOPICS = [
    ("a cat", "The cat", ["soft", "small", "calm"]),
    ("a dog", "The dog", ["loyal", "happy", "playful"]),
    ("the sun", "The sun", ["bright", "hot", "round"]),
    ("the moon", "The moon", ["pale", "quiet", "round"]),
    ("a tree", "The tree", ["tall", "green", "old"]),
    ("a river", "The river", ["long", "cold", "fast"]),
    ("the rain", "The rain", ["wet", "cool", "gentle"]),
    ("bread", "Bread", ["warm", "soft", "fresh"]),
    ("an apple", "The apple", ["red", "sweet", "crisp"]),
    ("a house", "The house", ["big", "warm", "quiet"]),
    ("a bird", "The bird", ["small", "quick", "bright"]),
    ("a fish", "The fish", ["fast", "shiny", "small"]),
    ("the sea", "The sea", ["deep", "blue", "vast"]),
    ("snow", "Snow", ["white", "cold", "soft"]),
    ("a horse", "The horse", ["strong", "fast", "brown"]),
    ("a book", "The book", ["old", "thick", "good"]),
    ("coffee", "Coffee", ["hot", "dark", "bitter"]),
    ("a flower", "The flower", ["pretty", "red", "fresh"]),
    ("the wind", "The wind", ["cold", "strong", "loud"]),
    ("a mountain", "The mountain", ["high", "steep", "rocky"]),
]
IF_TASK_WORDINGS = ["Describe {t} in one sentence.", "Write one sentence about {t}.",
                    "Tell me about {t} in one sentence."]
IF_END_PHRASES = ["Is there anything else?", "That is all.", "Hope this helps."]


def if_instructions():
    """(suffix, instruction id, kwargs, make_compliant, make_violating)."""
    out = [
        (" Your entire response should be in lowercase letters.",
         "change_case:english_lowercase", {}, lambda s: s["comma"].lower(), lambda s: s["comma"]),
        (" Your entire response should be in capital letters.",
         "change_case:english_capital", {}, lambda s: s["comma"].upper(), lambda s: s["comma"]),
        (" Do not use any commas.",
         "punctuation:no_comma", {}, lambda s: s["plain"], lambda s: s["comma"]),
        (" Wrap your entire response in double quotation marks.",
         "startend:quotation", {}, lambda s: '"' + s["comma"] + '"', lambda s: s["comma"]),
        (" Include a title wrapped in double angular brackets.",
         "detectable_format:title", {}, lambda s: "<<" + s["title"] + ">>\n" + s["comma"],
         lambda s: s["comma"]),
    ]
    for phrase in IF_END_PHRASES:
        out.append((f" End your response with the exact phrase '{phrase}'",
                    "startend:end_checker", {"end_phrase": phrase},
                    (lambda p: lambda s: s["comma"] + " " + p)(phrase), lambda s: s["comma"]))
    return out


def if_items():
    items = []
    for t, (topic, subject, (a, b, c)) in enumerate(IF_TOPICS):
        title_word = topic.split()[-1].capitalize()
        sentence = {"comma": f"{subject} is {a}, {b} and {c}.",
                    "plain": f"{subject} is {a} and {b} and {c}.",
                    "title": title_word}
        for w, wording in enumerate(IF_TASK_WORDINGS):
            # One end phrase per (topic, wording), so the six types are equally common.
            phrase = IF_END_PHRASES[(t + w) % len(IF_END_PHRASES)]
            for suffix, iid, kwargs, good, bad in if_instructions():
                if iid == "startend:end_checker" and kwargs["end_phrase"] != phrase:
                    continue
                items.append({"prompt": wording.format(t=topic) + suffix,
                              "instruction_id_list": [iid], "kwargs": [dict(kwargs)],
                              "good": good(sentence), "bad": bad(sentence)})
    return items


# ---------------------------------------------------------------------------
# math: single-digit addition and subtraction (non-negative results).

MATH_WORDINGS = ["What is {e}? Put the answer in \\boxed{{}}.",
                 "Compute {e}. Put the answer in \\boxed{{}}.",
                 "Calculate {e} and put the answer in \\boxed{{}}."]


# Operands 0..6: 77 facts, few enough for a 10M-parameter model to learn from
# the SFT warm-up (with 0..9 it stayed near chance).
MATH_OPERANDS = range(7)


def math_problems():
    problems = []
    for a in MATH_OPERANDS:
        for b in MATH_OPERANDS:
            problems.append((a, "+", b, a + b))
            if a >= b:
                problems.append((a, "-", b, a - b))
    return problems


def math_row(wording, problem):
    a, op, b, value = problem
    return {"prompt": MATH_WORDINGS[wording].format(e=f"{a} {op} {b}"),
            "ground_truth": str(value), "_value": value}


# ---------------------------------------------------------------------------
# code: one-line Python programs over stdin/stdout.

def _two_ints(rng, avoid):
    while True:
        a, b = rng.randint(-9, 20), rng.randint(-9, 20)
        if not avoid(a, b):
            return a, b


WORDS = ["cat", "hello", "tree", "python", "river", "stone", "apple", "moon", "bird",
         "green", "house", "light", "cloud", "bread", "wind", "fish"]

CODE_TASKS = {
    # name: (wordings, correct program, wrong program, test maker)
    "sum": (["Write a Python program that reads two integers and prints their sum.",
             "Write a Python program that reads two integers on one line and prints a + b.",
             "Read two integers from one line and print their sum in Python.",
             "Write a Python program: input two integers, output their sum."],
            "a, b = map(int, input().split())\nprint(a + b)",
            "a, b = map(int, input().split())\nprint(a - b)",
            lambda rng, k: [(f"{a} {b}\n", f"{a + b}\n")
                            for a, b in [_two_ints(rng, lambda a, b: b == 0) for _ in range(3)]]),
    "product": (["Write a Python program that reads two integers and prints their product.",
                 "Write a Python program that reads two integers on one line and prints a * b.",
                 "Read two integers from one line and print their product in Python.",
                 "Write a Python program: input two integers, output their product."],
                "a, b = map(int, input().split())\nprint(a * b)",
                "a, b = map(int, input().split())\nprint(a + b)",
                lambda rng, k: [(f"{a} {b}\n", f"{a * b}\n")
                                for a, b in [_two_ints(rng, lambda a, b: a * b == a + b)
                                             for _ in range(3)]]),
    "max": (["Write a Python program that reads two integers and prints the larger one.",
             "Write a Python program that reads two integers on one line and prints their maximum.",
             "Read two integers from one line and print the bigger one in Python.",
             "Write a Python program: input two integers, output the maximum."],
            "a, b = map(int, input().split())\nprint(max(a, b))",
            "a, b = map(int, input().split())\nprint(min(a, b))",
            lambda rng, k: [(f"{a} {b}\n", f"{max(a, b)}\n")
                            for a, b in [_two_ints(rng, lambda a, b: a == b) for _ in range(3)]]),
    "reverse": (["Write a Python program that reads a word and prints it reversed.",
                 "Write a Python program that reads a string and prints it backwards.",
                 "Read a word and print it in reverse order in Python.",
                 "Write a Python program: input a word, output the word reversed."],
                "print(input()[::-1])",
                "print(input()[::1])",
                lambda rng, k: [(w + "\n", w[::-1] + "\n") for w in rng.sample(WORDS, 3)]),
    "upper": (["Write a Python program that reads a word and prints it in uppercase.",
               "Write a Python program that reads a string and prints it in capital letters.",
               "Read a word and print it uppercased in Python.",
               "Write a Python program: input a word, output the word in uppercase."],
              "print(input().upper())",
              "print(input().lower())",
              lambda rng, k: [(w + "\n", w.upper() + "\n") for w in rng.sample(WORDS, 3)]),
    "double_plus_k": (["Write a Python program that reads an integer n and prints 2 * n + {k}.",
                       "Read an integer n and print twice n plus {k} in Python."],
                      "n = int(input())\nprint(2 * n + {k})",
                      "n = int(input())\nprint(2 * n - {k})",
                      lambda rng, k: [(f"{n}\n", f"{2 * n + k}\n")
                                      for n in rng.sample(range(-20, 50), 3)]),
}
CODE_K_RANGE = range(1, 100)


def code_variants():
    """Every distinct (task, wording, k) prompt."""
    out = []
    for task, (wordings, _, _, _) in CODE_TASKS.items():
        ks = CODE_K_RANGE if "{k}" in wordings[0] else [None]
        for w in range(len(wordings)):
            for k in ks:
                out.append((task, w, k))
    return out


def code_row(rng, variant):
    task, w, k = variant
    wordings, good, bad, make_tests = CODE_TASKS[task]
    fmt = (lambda s: s.format(k=k)) if k is not None else (lambda s: s)
    tests = [{"input": i, "output": o} for i, o in make_tests(rng, k)]
    return {"prompt": fmt(wordings[w]), "language": "python", "tests": tests,
            "good": "```python\n" + fmt(good) + "\n```",
            "bad": "```python\n" + fmt(bad) + "\n```"}


def code_split(rng):
    """Eval: one held-out wording per fixed task and held-out k values; train: the rest.

    The fixed tasks have only four wordings, so train prompts of those tasks repeat
    (with fresh tests); every task gets the same share of rows.
    """
    variants = code_variants()
    eval_variants, train_pool = [], {}
    held_wording = {t: rng.randrange(len(CODE_TASKS[t][0])) for t in CODE_TASKS}
    held_k = set(rng.sample(list(CODE_K_RANGE), 12))
    for v in variants:
        task, w, k = v
        held = (k in held_k) if k is not None else (w == held_wording[task])
        if held:
            eval_variants.append(v)
        else:
            train_pool.setdefault(task, []).append(v)
    # Eval: two rows (fresh tests) of each fixed task's held-out wording; the rest
    # are held-out k values of the parametric task.
    eval_pick = []
    for v in eval_variants:
        if v[2] is None:
            eval_pick += [v, v]
    k_variants = [v for v in eval_variants if v[2] is not None]
    eval_pick += rng.sample(k_variants, EVAL_ROWS - len(eval_pick))
    tasks = list(CODE_TASKS)
    train_pick = []
    for j in range(TRAIN_ROWS):
        task = tasks[j % len(tasks)]
        pool = train_pool[task]
        if task == "double_plus_k":
            train_pick.append(pool.pop(rng.randrange(len(pool))))
        else:
            train_pick.append(rng.choice(pool))
    rng.shuffle(train_pick)
    return eval_pick, train_pick


# ---------------------------------------------------------------------------
# SWE: one-function files with a one-line bug; search/replace edits.

SWE_FILES = ["calc.py", "util.py", "mathlib.py", "shop.py", "tools.py", "core.py"]
SWE_OPS = [  # (function, correct op, wrong ops, what it should return)
    ("add", "+", ["-", "*"], "the sum of a and b"),
    ("sub", "-", ["+", "*"], "a minus b"),
    ("mul", "*", ["+", "-"], "the product of a and b"),
    ("total", "+", ["-", "*"], "a plus b"),
    ("diff", "-", ["+", "*"], "the difference a - b"),
    ("area", "*", ["+", "-"], "a times b"),
]
SWE_CONST_FUNCS = [("price", "x *"), ("scale", "x *"), ("shift", "x +"), ("offset", "x +"),
                   ("bonus", "x +"), ("fee", "x *")]


def swe_op_items():
    items = []
    for path in SWE_FILES:
        for fname, good, wrongs, what in SWE_OPS:
            for bad in wrongs:
                items.append({"path": path, "fname": fname, "sig": "a, b",
                              "bad_line": f"    return a {bad} b",
                              "good_line": f"    return a {good} b",
                              "issue": f"{fname}(a, b) should return {what}.",
                              "wrong_lines": [f"    return a {o} b"
                                              for o in ["+", "-", "*"] if o not in (good, bad)]})
    return items


def swe_const_items():
    items = []
    for path in SWE_FILES:
        for fname, head in SWE_CONST_FUNCS:
            for good in range(2, 10):
                for bad in range(2, 10):
                    if bad == good:
                        continue
                    items.append({"path": path, "fname": fname, "sig": "x",
                                  "bad_line": f"    return {head} {bad}",
                                  "good_line": f"    return {head} {good}",
                                  "issue": f"{fname}(x) should return {head} {good}, not {head} {bad}.",
                                  "wrong_lines": [f"    return {head} {v}" for v in range(2, 10)
                                                  if v not in (good, bad)]})
    return items


def swe_row(item):
    path = item["path"]
    old = f"def {item['fname']}({item['sig']}):\n{item['bad_line']}\n"
    new = f"def {item['fname']}({item['sig']}):\n{item['good_line']}\n"
    prompt = f"Issue: {item['issue']}\n\n### {path}\n{old}"
    return {"prompt": prompt, "format": "search_replace", "code_context": {path: old},
            "oracle_new_content": {path: new}}


def swe_edit(path, search, replace):
    return (f"```python\n### {path}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n"
            ">>>>>>> REPLACE\n```")


def swe_split(rng):
    ops, consts = swe_op_items(), swe_const_items()
    key = lambda it: (it["path"], it["fname"], it["bad_line"], it["good_line"])
    op_eval, op_train = split_unique(rng, ops, key, EVAL_ROWS // 2, len(ops) - EVAL_ROWS // 2)
    c_eval, c_train = split_unique(rng, consts, key, EVAL_ROWS - EVAL_ROWS // 2,
                                   TRAIN_ROWS - len(op_train))
    train = op_train + c_train
    rng.shuffle(train)
    return op_eval + c_eval, train


# ---------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out = args.out
    counts = {}
    sft = []

    def emit(rel, rows):
        write_jsonl(os.path.join(out, rel), rows)
        counts[rel] = len(rows)

    def public(row, keep):
        return {k: row[k] for k in keep}

    # --- RLHF ---
    r_eval, r_train = split_unique(rng, rlhf_prompts(), lambda it: it["prompt"],
                                   EVAL_ROWS, TRAIN_ROWS)
    emit("rlhf/train.jsonl", [{"id": f"rlhf-train-{i:04d}", "prompt": it["prompt"]}
                              for i, it in enumerate(r_train)])
    emit("rlhf/eval.jsonl", [{"id": f"rlhf-eval-{i:04d}", "prompt": it["prompt"]}
                             for i, it in enumerate(r_eval)])
    prefs = []
    for it in r_train:
        for answer in rng.sample(it["answers"], 2):
            prefs.append({"prompt": [{"role": "user", "content": it["prompt"]}],
                          "chosen": answer + "!", "rejected": answer + "."})
    rng.shuffle(prefs)
    emit("rm/preferences.jsonl", prefs)
    for i, (it, ok) in enumerate(zip(rng.sample(r_train, SFT_PER_DOMAIN),
                                     correct_flags(rng, SFT_PER_DOMAIN))):
        good, bad = rlhf_styles(rng, it)
        sft.append({"id": f"sft-rlhf-{i:04d}", "domain": "rlhf", "prompt": it["prompt"],
                    "response": good if ok else bad, "correct": ok})

    # --- IF ---
    keep_if = ["prompt", "instruction_id_list", "kwargs"]
    i_eval, i_train = split_unique(rng, if_items(), lambda it: it["prompt"],
                                   EVAL_ROWS, TRAIN_ROWS)
    emit("if/train.jsonl", [dict(id=f"if-train-{i:04d}", **public(it, keep_if))
                            for i, it in enumerate(i_train)])
    emit("if/eval.jsonl", [dict(id=f"if-eval-{i:04d}", **public(it, keep_if))
                           for i, it in enumerate(i_eval)])
    for i, (it, ok) in enumerate(zip(rng.sample(i_train, SFT_PER_DOMAIN),
                                     correct_flags(rng, SFT_PER_DOMAIN))):
        sft.append(dict(id=f"sft-if-{i:04d}", domain="if", **public(it, keep_if),
                        response=it["good"] if ok else it["bad"], correct=ok))

    # --- math: eval problems are disjoint from train problems in every wording ---
    problems = math_problems()
    rng.shuffle(problems)
    m_eval_problems, m_train_problems = problems[:EVAL_ROWS], problems[EVAL_ROWS:]
    m_eval = [math_row(rng.randrange(len(MATH_WORDINGS)), p) for p in m_eval_problems]
    m_train_all = [math_row(w, p) for p in m_train_problems for w in range(len(MATH_WORDINGS))]
    rng.shuffle(m_train_all)
    m_train = m_train_all[:TRAIN_ROWS]
    emit("math/train.jsonl", [dict(id=f"math-train-{i:04d}", prompt=r["prompt"],
                                   ground_truth=r["ground_truth"])
                              for i, r in enumerate(m_train)])
    emit("math/eval.jsonl", [dict(id=f"math-eval-{i:04d}", prompt=r["prompt"],
                                  ground_truth=r["ground_truth"])
                             for i, r in enumerate(m_eval)])
    for i, ok in enumerate(correct_flags(rng, SFT_PER_DOMAIN)):
        r = rng.choice(m_train_all)
        value = r["_value"]
        if not ok:
            value = value + 1 if value == 0 or rng.random() < 0.5 else value - 1
        sft.append({"id": f"sft-math-{i:04d}", "domain": "math", "prompt": r["prompt"],
                    "ground_truth": r["ground_truth"], "response": f"\\boxed{{{value}}}",
                    "correct": ok})

    # --- code ---
    keep_code = ["prompt", "language", "tests"]
    c_eval_v, c_train_v = code_split(rng)
    emit("code/train.jsonl", [dict(id=f"code-train-{i:04d}", **public(code_row(rng, v), keep_code))
                              for i, v in enumerate(c_train_v)])
    emit("code/eval.jsonl", [dict(id=f"code-eval-{i:04d}", **public(code_row(rng, v), keep_code))
                             for i, v in enumerate(c_eval_v)])
    sft_variants = c_train_v[:]  # same task mix as train, fresh tests
    rng.shuffle(sft_variants)
    for i, (v, ok) in enumerate(zip(sft_variants, correct_flags(rng, SFT_PER_DOMAIN))):
        r = code_row(rng, v)
        sft.append(dict(id=f"sft-code-{i:04d}", domain="code", **public(r, keep_code),
                        response=r["good"] if ok else r["bad"], correct=ok))

    # --- SWE ---
    keep_swe = ["prompt", "format", "code_context", "oracle_new_content"]
    s_eval, s_train = swe_split(rng)
    emit("swe/train.jsonl", [dict(id=f"swe-train-{i:04d}", **swe_row(it))
                             for i, it in enumerate(s_train)])
    emit("swe/eval.jsonl", [dict(id=f"swe-eval-{i:04d}", **swe_row(it))
                            for i, it in enumerate(s_eval)])
    for i, (it, ok) in enumerate(zip(rng.sample(s_train, SFT_PER_DOMAIN),
                                     correct_flags(rng, SFT_PER_DOMAIN))):
        if ok:
            response = swe_edit(it["path"], it["bad_line"], it["good_line"])
        elif rng.random() < 0.5:
            # Right line, wrong value: applies, lexically close to the gold (~0.98).
            response = swe_edit(it["path"], it["bad_line"], rng.choice(it["wrong_lines"]))
        else:
            # The edit written backwards: its SEARCH text is not in the file (-1).
            response = swe_edit(it["path"], it["good_line"], it["bad_line"])
        sft.append(dict(id=f"sft-swe-{i:04d}", domain="swe", **swe_row(it),
                        response=response, correct=ok))

    rng.shuffle(sft)
    emit("sft/train.jsonl", sft)

    print(f"make_data.py: seed {args.seed}, wrote {out}")
    for rel in sorted(counts):
        print(f"  {rel:24s} {counts[rel]:5d} rows")
    per_domain = {}
    for row in sft:
        d = per_domain.setdefault(row["domain"], [0, 0])
        d[0 if row["correct"] else 1] += 1
    for domain in ["rlhf", "if", "math", "code", "swe"]:
        good, bad = per_domain[domain]
        print(f"  sft {domain:5s} {good} correct/preferred, {bad} wrong")
    return 0


if __name__ == "__main__":
    sys.exit(main())
