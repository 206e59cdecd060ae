// The model commands of the command-line tools, as library functions the
// learner and rollout binaries dispatch to:
//
//   learner init --arch {qwen3,qwen2,llama} --hidden H --layers L --heads N
//                [--kv-heads K] [--intermediate F] [--head-dim D]
//                (--vocab-from TOKENIZER | --vocab V) [--seed S] [--dtype T]
//                [--tie-embeddings] [--rope-theta X] [--max-position P] --out DIR
//   rollout score --model DIR --input IN.jsonl [--output OUT.jsonl]
//                 [--device D] [--chunk N] [--threads N]
//
// `args` excludes the program and command names. Return value is the exit
// status of DESIGN.md §4: 0 success, 2 bad usage, 1 failure; errors go to
// `err` and name the file, line or field at fault.
#ifndef CASCADE_MODEL_CLI_H_
#define CASCADE_MODEL_CLI_H_

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "model/status.h"

namespace cascade::model {

int RunInitCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunScoreCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Vocabulary facts read from a Hugging Face tokenizer.json.
struct TokenizerVocab {
  int64_t vocab_size = 0;          // max id (model vocab and added tokens) + 1
  int64_t bos_token_id = -1;       // -1 when the tokenizer has none we know
  std::vector<int64_t> eos_token_ids;
};

// `path` is a tokenizer.json or a directory holding one.
StatusOr<TokenizerVocab> ReadTokenizerVocab(const std::string& path);

}  // namespace cascade::model

#endif  // CASCADE_MODEL_CLI_H_
