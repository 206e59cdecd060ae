#!/usr/bin/env bash
# Prepares the tiny cascade's inputs under examples/tiny/work/ (or $1):
#   data/   the datasets (make_data.py, deterministic)
#   base/   a fresh tiny Qwen3-shaped policy (`learner init`, Qwen3 tokenizer)
#   rm/     a reward model trained on data/rm/preferences.jsonl (`reward_model train`)
# Skips what is already there. Needs the binaries in ${BUILD_DIR:-build}/bin.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${1:-$here/work}"
bin="${BUILD_DIR:-$root/build}/bin"
tokenizers="${CASCADE_TOKENIZER_CACHE:-$HOME/.cache/cascade/tokenizers}"
mkdir -p "$work"

if [[ ! -f "$work/data/sft/train.jsonl" ]]; then
  /usr/bin/python3 "$here/make_data.py" --out "$work/data"
fi
if [[ ! -f "$work/base/config.json" ]]; then
  "$bin/learner" init --arch qwen3 --hidden 64 --layers 4 --heads 4 --kv-heads 2 --intermediate 256 \
    --tie-embeddings --vocab-from "$tokenizers/qwen3" --seed 1 --max-position 1024 --out "$work/base"
fi
if [[ ! -f "$work/rm/config.json" ]]; then
  # A separate, smaller network as the reward model's starting point.
  "$bin/learner" init --arch qwen3 --hidden 32 --layers 1 --heads 2 --kv-heads 1 --intermediate 64 \
    --tie-embeddings --vocab-from "$tokenizers/qwen3" --seed 2 --max-position 1024 --out "$work/rm-init"
  "$bin/reward_model" train --pairs "$work/data/rm/preferences.jsonl" --model "$work/rm-init" \
    --out "$work/rm" --epochs 2 --lr 0.003 --batch 16 --seed 3
  rm -rf "$work/rm-init"
fi
echo "tiny cascade inputs ready in $work"
