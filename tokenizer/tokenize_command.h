// The core of `rollout tokenize --tokenizer PATH --input IN.jsonl [--decode]`
// (DESIGN.md section 4), apart from flag parsing and files, so tests drive
// it with string streams.
//
//   encode: {"text": "..."} per line in  ->  {"ids": [...]} per line out
//   decode: {"ids": [...]}  per line in  ->  {"text": "..."} per line out
//
// Optional input field "allow_special" (encode, default true) and
// "skip_special" (decode, default false). Blank lines are skipped. A
// malformed line writes {"error": "..."} in its place (so output line k
// still answers input line k), is reported on `err` as
// "IN.jsonl:LINE: message", and makes the result INVALID_ARGUMENT after all
// lines are done.
#ifndef CASCADE_TOKENIZER_TOKENIZE_COMMAND_H_
#define CASCADE_TOKENIZER_TOKENIZE_COMMAND_H_

#include <istream>
#include <ostream>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "tokenizer/tokenizer.h"

namespace cascade::tokenizer {

[[nodiscard]] absl::Status RunTokenizeCommand(const Tokenizer& tokenizer, std::istream& in,
                                              std::ostream& out, std::ostream& err, bool decode,
                                              absl::string_view input_name);

}  // namespace cascade::tokenizer

#endif  // CASCADE_TOKENIZER_TOKENIZE_COMMAND_H_
