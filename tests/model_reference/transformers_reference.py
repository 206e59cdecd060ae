#!/usr/bin/python3
"""Hugging Face transformers on a model directory written by model/.

Shows that the directories our writer produces load unchanged in transformers
(AutoModelForCausalLM, no conversion), and is the peer of bench/model on a GPU.
Needs the `transformers` package, which Debian does not ship: it runs where
scripts/gpu-check.sh runs (a machine with PyTorch and a GPU).

Commands:
  transformers_reference.py logits DIR IN.json OUT.bin
      float32 logits on CPU of each sequence in IN ([[ids], ...]), run alone
      and unpadded, concatenated as little-endian float32 (as reference.py).
  transformers_reference.py bench DIR SPEC.json
      timings on REFERENCE_DEVICE (default cuda) in REFERENCE_DTYPE (default
      bfloat16): greedy generate() of each spec["generate"] batch (one padded
      batch, exactly max_new_tokens new tokens) and teacher-forced log-probs of
      spec["logprobs"] in one forward with a full log_softmax, as RL trainers
      built on transformers compute them. Prints {name: tokens per second}.
"""
import json
import os
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM


def load(model_dir, device, dtype):
    # transformers before 4.56 names the argument torch_dtype (and would
    # silently ignore dtype).
    version = tuple(int(x) for x in transformers.__version__.split(".")[:2])
    key = "dtype" if version >= (4, 56) else "torch_dtype"
    model = AutoModelForCausalLM.from_pretrained(model_dir, **{key: dtype})
    assert model.dtype == dtype, (model.dtype, dtype)
    return model.to(device).eval()


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv):
    torch.set_num_threads(int(os.environ.get("REFERENCE_THREADS", os.cpu_count() or 1)))
    cmd = argv[1]
    with torch.no_grad():
        if cmd == "logits":
            model = load(argv[2], "cpu", torch.float32)
            with open(argv[3]) as f:
                seqs = json.load(f)
            with open(argv[4], "wb") as f:
                for s in seqs:
                    logits = model(torch.tensor([s])).logits[0]
                    f.write(logits.float().contiguous().numpy().astype("<f4").tobytes())
        elif cmd == "bench":
            device = os.environ.get("REFERENCE_DEVICE", "cuda")
            dtype = getattr(torch, os.environ.get("REFERENCE_DTYPE", "bfloat16"))
            model = load(argv[2], device, dtype)
            with open(argv[3]) as f:
                spec = json.load(f)
            n_new = spec["max_new_tokens"]
            result = {}
            for name, prompts in spec.get("generate", {}).items():
                ids = torch.tensor(prompts, device=device)  # equal lengths: no padding
                mask = torch.ones_like(ids)
                kwargs = dict(attention_mask=mask, max_new_tokens=n_new, min_new_tokens=n_new,
                              do_sample=False, pad_token_id=0)
                model.generate(ids[:1], **dict(kwargs, attention_mask=mask[:1]))  # warm-up
                sync(device)
                t0 = time.perf_counter()
                out = model.generate(ids, **kwargs)
                sync(device)
                secs = time.perf_counter() - t0
                assert out.shape[1] == ids.shape[1] + n_new, out.shape
                result[name] = ids.shape[0] * n_new / secs
            if "logprobs" in spec:
                ids = torch.tensor(spec["logprobs"], device=device)

                def logprobs():
                    logits = model(ids).logits[:, :-1].float()
                    return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])[..., 0]

                logprobs()  # warm-up
                sync(device)
                t0 = time.perf_counter()
                lp = logprobs()
                sync(device)
                result["logprobs"] = lp.numel() / (time.perf_counter() - t0)
            print(json.dumps(result))
        else:
            raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
