#!/usr/bin/python3
"""Straightforward PyTorch reference of the Qwen3 / Qwen2 / Llama decoder.

Independent of model/: it reads the model directory (config.json plus
safetensors, parsed here with struct/json) and runs each sequence on its own,
unpadded, with textbook attention (repeat_kv, explicit causal mask), following
the Hugging Face transformers modelling code. Used by model/runtime_test.cc
(logit agreement) and bench/model (speed of the same computation in Python).

Commands (all float32 on CPU):
  reference.py logits   DIR IN.json OUT.bin    IN: [[ids], ...]; OUT: float32 logits
                                               of every position, sequences concatenated
  reference.py logprobs DIR IN.json OUT.json   teacher-forced log p(ids[t] | ids[<t])
  reference.py bench    DIR SPEC.json          timings for bench/model (see bench_*)
"""
import json
import math
import os
import struct
import sys
import time

import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    dtypes = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        buf = bytearray(data[base + begin:base + end])
        t = torch.frombuffer(buf, dtype=dtypes[entry["dtype"]]) if buf else torch.empty(0, dtype=dtypes[entry["dtype"]])
        out[name] = t.reshape(entry["shape"]).to(torch.float32)
    return out


def load_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    index = os.path.join(model_dir, "model.safetensors.index.json")
    weights = {}
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        for name in files:
            weights.update(read_safetensors(os.path.join(model_dir, name)))
    else:
        weights = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return config, weights


class Reference:
    def __init__(self, model_dir):
        self.c, self.w = load_model(model_dir)
        c = self.c
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads", self.heads)
        self.head_dim = c.get("head_dim") or c["hidden_size"] // self.heads
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.qk_norm = c["model_type"] == "qwen3"
        d = self.head_dim
        inv = 1.0 / (c.get("rope_theta", 10000.0) ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
        rs = c.get("rope_scaling")
        if rs:
            kind = rs.get("rope_type", rs.get("type"))
            if kind == "linear":
                inv = inv / rs["factor"]
            elif kind == "llama3":
                factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
                old = rs["original_max_position_embeddings"]
                wavelen = 2 * math.pi / inv
                scaled = torch.where(wavelen > old / lo, inv / factor, inv)
                smooth = (old / wavelen - lo) / (hi - lo)
                smoothed = (1 - smooth) * scaled / factor + smooth * scaled
                medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
                inv = torch.where(medium, smoothed, scaled)
            elif kind not in (None, "default"):
                raise ValueError("unsupported rope type " + kind)
        self.inv_freq = inv
        self.head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])

    def rms(self, x, weight):
        var = x.pow(2).mean(-1, keepdim=True)
        return weight * (x * torch.rsqrt(var + self.eps))

    def lin(self, x, name):
        y = x @ self.w[name + ".weight"].T
        if name + ".bias" in self.w:
            y = y + self.w[name + ".bias"]
        return y

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def layer(self, i, x, pos, cache):
        """x: [T, hidden] new tokens at positions pos; cache: dict with k, v [KV, S, D]."""
        p = "model.layers.%d." % i
        t = x.shape[0]
        h = self.rms(x, self.w[p + "input_layernorm.weight"])
        q = self.lin(h, p + "self_attn.q_proj").view(t, self.heads, self.head_dim)
        k = self.lin(h, p + "self_attn.k_proj").view(t, self.kv_heads, self.head_dim)
        v = self.lin(h, p + "self_attn.v_proj").view(t, self.kv_heads, self.head_dim)
        if self.qk_norm:
            q = self.rms(q, self.w[p + "self_attn.q_norm.weight"])
            k = self.rms(k, self.w[p + "self_attn.k_norm.weight"])
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        freqs = pos.float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        q = q * cos + self.rotate_half(q) * sin
        k = k * cos + self.rotate_half(k) * sin
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=1)
                v = torch.cat([cache["v"], v], dim=1)
            cache["k"], cache["v"] = k, v
        rep = self.heads // self.kv_heads
        k = k.repeat_interleave(rep, dim=0)
        v = v.repeat_interleave(rep, dim=0)
        s = k.shape[1]
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        # Query j (absolute slot s - t + j) sees keys up to its own slot.
        mask = torch.ones(t, s, dtype=torch.bool).tril(diagonal=s - t)
        scores = scores.masked_fill(~mask, float("-inf"))
        attn = torch.softmax(scores, dim=-1) @ v
        attn = attn.transpose(0, 1).reshape(t, self.heads * self.head_dim)
        x = x + self.lin(attn, p + "self_attn.o_proj")
        h = self.rms(x, self.w[p + "post_attention_layernorm.weight"])
        gate = torch.nn.functional.silu(self.lin(h, p + "mlp.gate_proj"))
        return x + self.lin(gate * self.lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")

    def hidden(self, ids, start=0, caches=None):
        x = self.w["model.embed_tokens.weight"][torch.tensor(ids)]
        pos = torch.arange(start, start + len(ids))
        for i in range(self.c["num_hidden_layers"]):
            x = self.layer(i, x, pos, None if caches is None else caches[i])
        return self.rms(x, self.w["model.norm.weight"])

    def logits(self, ids):
        return self.hidden(ids) @ self.head.T

    def logprobs(self, ids):
        lp = torch.log_softmax(self.logits(ids[:-1]), dim=-1)
        return lp.gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]

    def generate_greedy(self, prompt, max_new):
        """Greedy decoding of one prompt with a per-layer KV cache."""
        caches = [dict() for _ in range(self.c["num_hidden_layers"])]
        h = self.hidden(prompt, 0, caches)
        out = []
        pos = len(prompt)
        for _ in range(max_new):
            tok = int(torch.argmax(h[-1] @ self.head.T))
            out.append(tok)
            h = self.hidden([tok], pos, caches)
            pos += 1
        return out


def main(argv):
    torch.set_num_threads(int(os.environ.get("REFERENCE_THREADS", os.cpu_count() or 1)))
    cmd = argv[1]
    with torch.no_grad():
        ref = Reference(argv[2])
        if cmd == "logits":
            with open(argv[3]) as f:
                seqs = json.load(f)
            with open(argv[4], "wb") as f:
                for s in seqs:
                    f.write(ref.logits(s).contiguous().numpy().astype("<f4").tobytes())
        elif cmd == "logprobs":
            with open(argv[3]) as f:
                seqs = json.load(f)
            with open(argv[4], "w") as f:
                json.dump([ref.logprobs(s).tolist() for s in seqs], f)
        elif cmd == "bench":
            with open(argv[3]) as f:
                spec = json.load(f)
            result = {}
            # Generation: prompts decoded one after another (the reference has no batching).
            for name, prompts in spec.get("generate", {}).items():
                t0 = time.perf_counter()
                n = 0
                for p in prompts:
                    n += len(ref.generate_greedy(p, spec["max_new_tokens"]))
                result[name] = n / (time.perf_counter() - t0)
            if "logprobs" in spec:
                t0 = time.perf_counter()
                n = 0
                for s in spec["logprobs"]:
                    n += len(ref.logprobs(s))
                result["logprobs"] = n / (time.perf_counter() - t0)
            print(json.dumps(result))
        else:
            raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
