#!/usr/bin/python3
"""Python reference of one GRPO learner step, the peer of learner_bench.

Plain PyTorch eager on the same weights (tests/model_reference/reference.py,
one sequence at a time) computing the same loss as the learner,
    L = -(1 / sum_i |o_i|) * sum_i sum_t A_i * log pi(o_i,t | q, o_i,<t),
then backward and one torch.optim.AdamW step with gradient clipping.

usage: grpo_reference.py MODEL_DIR SPEC.json
SPEC: {"sequences": [{"ids", "mask", "advantage"}], "steps": N, "lr": x, "threads": T}
prints {"losses": [...], "step_seconds": [...]}
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "model_reference"))
from reference import Reference  # noqa: E402


def main():
    model_dir, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    torch.set_num_threads(spec.get("threads", 1))
    ref = Reference(model_dir)
    params = [w.requires_grad_() for w in ref.w.values()]
    ref.head = ref.w.get("lm_head.weight", ref.w["model.embed_tokens.weight"])
    optimizer = torch.optim.AdamW(params, lr=spec["lr"], betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=0.0)
    sequences = spec["sequences"]
    total = sum(sum(s["mask"][1:]) for s in sequences)
    losses, seconds = [], []
    for _ in range(spec["steps"]):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss_value = 0.0
        for s in sequences:
            lp = ref.logprobs(s["ids"])
            mask = torch.tensor(s["mask"][1:], dtype=torch.float32)
            loss = -(s["advantage"] * (lp * mask).sum()) / total
            loss.backward()
            loss_value += float(loss)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        seconds.append(time.perf_counter() - start)
        losses.append(loss_value)
    print(json.dumps({"losses": losses, "step_seconds": seconds}))


if __name__ == "__main__":
    main()
