// Pre-tokenizer split by a regular expression, in the "Isolated" behaviour
// of Hugging Face's Split: matches and the gaps between them both become
// pieces, in order.
//
// Patterns come from tokenizer.json files written for the Rust `onig`/
// `fancy-regex` engines and run here on PCRE2 (UTF + UCP, JIT when the
// platform has it), because the GPT-2 and Qwen patterns need look-ahead.
// They are rewritten to the semantics of the JavaScript tokenizers this
// project checks against:
//   - \s and \S use JavaScript's whitespace set (see utf8.h);
//   - Qwen's "(?i:'s|'t|'re|'ve|'m|'ll|'d)" is matched case-insensitively in
//     ASCII only (PCRE2 would also fold U+017F LATIN SMALL LETTER LONG S).
// \p{L} and \p{N} come from PCRE2's Unicode tables (Unicode 14 in PCRE2
// 10.42): characters assigned later are classified as neither.
//
// Thread-safe: the compiled pattern is immutable; match state is per thread.
#ifndef CASCADE_TOKENIZER_REGEX_SPLITTER_H_
#define CASCADE_TOKENIZER_REGEX_SPLITTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cascade::tokenizer {

// The pattern of GPT-2's encoder.py (and of ByteLevel with use_regex=true).
extern const char kGpt2SplitPattern[];

class RegexSplitter {
 public:
  // INVALID_ARGUMENT naming the offset when the pattern does not compile.
  static absl::StatusOr<std::unique_ptr<RegexSplitter>> Create(absl::string_view pattern);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Appends the pieces of `text` (valid UTF-8: the caller checks) to *out;
  // the pieces concatenate back to `text`.
  void Split(absl::string_view text, std::vector<absl::string_view>* out) const;

  // The pattern after rewriting, as compiled (for error messages and tests).
  const std::string& compiled_pattern() const { return compiled_pattern_; }

 private:
  RegexSplitter() = default;

  std::string compiled_pattern_;
  void* code_ = nullptr;  // pcre2_code_8*, kept out of the header
  bool jit_ = false;
};

// Rewrites a pattern as described above; exposed for tests.
absl::StatusOr<std::string> RewritePatternForJsSemantics(absl::string_view pattern);

}  // namespace cascade::tokenizer

#endif  // CASCADE_TOKENIZER_REGEX_SPLITTER_H_
