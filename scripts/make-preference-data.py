#!/usr/bin/env python3
"""Synthetic preference data for the reward model, and a tiny tokenizer for it.

Tasks (--task):
  case    the prompt asks for a phrase in upper or lower case; the chosen
          response follows the instruction, the rejected one uses the other
          case. Both responses have the same length and the same letters, so
          only reading the prompt and the response together separates them.
  repeat  the chosen response lists distinct words; the rejected one has the
          same length but repeats a phrase ("red blue red blue"). Harder for
          a tiny model: spotting a repeat needs attention between positions
          (hidden 64, 2 layers, 4 epochs of 320 pairs stays near chance).

Output: PAIRS.jsonl with {"prompt": [...chat messages...] or "string",
"chosen": str, "rejected": str} lines (standard library only, seeded).

--tokenizer-out writes a byte-level BPE tokenizer.json small enough for test
models (vocab < 300): the 256 byte tokens, a handful of merges that make
"yes"/"no"/"Yes"/"No" single tokens (the judge's answer tokens), and the
ChatML special tokens the chat template needs.
"""
import argparse
import json
import random
import sys

WORDS = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree", "fish", "bird",
         "stone", "river", "cloud", "apple", "bread", "house", "light", "wind"]


def byte_level_alphabet():
    """GPT-2's byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tiny_tokenizer():
    alphabet = byte_level_alphabet()
    vocab = {alphabet[b]: b for b in range(256)}
    merges = []
    for word in ["yes", "Yes", "no", "No"]:
        current = word[0]
        for ch in word[1:]:
            merges.append([current, ch])
            current += ch
            if current not in vocab:
                vocab[current] = len(vocab)
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    added = []
    for token in special:
        added.append({"id": len(vocab) + len(added), "content": token, "single_word": False,
                      "lstrip": False, "rstrip": False, "normalized": False, "special": True})
    for token in ["<think>", "</think>", "<tool_call>", "</tool_call>"]:
        added.append({"id": len(vocab) + len(added), "content": token, "single_word": False,
                      "lstrip": False, "rstrip": False, "normalized": False, "special": False})
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": merges},
    }


def case_pair(rng):
    phrase = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 3)))
    upper = rng.random() < 0.5
    want, other = (phrase.upper(), phrase.lower()) if upper else (phrase.lower(), phrase.upper())
    instruction = "upper" if upper else "lower"
    prompt = [{"role": "user", "content": f"Say it in {instruction} case: {phrase}"}]
    return {"prompt": prompt, "chosen": want, "rejected": other}


def repeat_pair(rng):
    words = rng.sample(WORDS, 6)
    chosen = " ".join(words)
    phrase = words[:2]
    rejected = " ".join(phrase + phrase + words[2:4])
    if rng.random() < 0.5:
        return {"prompt": "List six different words.", "chosen": chosen, "rejected": rejected}
    return {"prompt": [{"role": "user", "content": "List six different words."}],
            "chosen": chosen, "rejected": rejected}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=["case", "repeat"], default="case")
    parser.add_argument("--pairs", type=int, default=400, help="number of pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="PAIRS.jsonl to write (default: stdout)")
    parser.add_argument("--tokenizer-out", help="also write the tiny tokenizer.json here")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    make = {"case": case_pair, "repeat": repeat_pair}[args.task]
    lines = [json.dumps(make(rng)) for _ in range(args.pairs)]
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if args.tokenizer_out:
        with open(args.tokenizer_out, "w") as f:
            json.dump(tiny_tokenizer(), f, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
