// Text primitives for the IFEval checkers, with the semantics of the Python
// calls the upstream checkers make (str.strip, str.lower, str.isupper, `re`
// with Unicode \w \s \d, NLTK's word tokenizer), so that a response scores
// the same here as in google-research/instruction_following_eval.
//
// All strings are UTF-8. Callers pass valid UTF-8 (see ToValidUtf8); the
// regex helpers report invalid input as INVALID_ARGUMENT rather than crash.
//
// Thread-safety: every function is safe to call concurrently; compiled
// patterns are immutable once built.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_IFEVAL_IFEVAL_TEXT_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_IFEVAL_IFEVAL_TEXT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/deadline.h"

namespace cascade::verifier::ifeval {

// Replaces every ill-formed UTF-8 sequence with U+FFFD.
std::string ToValidUtf8(absl::string_view text);

// Python's str.isspace() for one code point.
bool PyIsSpace(int32_t c);

// str.strip() / lstrip() / rstrip() without arguments (Unicode whitespace).
std::string PyStrip(absl::string_view text);
// str.strip(chars) / lstrip(chars) / rstrip(chars) for an ASCII set of chars.
std::string PyStripChars(absl::string_view text, absl::string_view chars);
std::string PyLStripChars(absl::string_view text, absl::string_view chars);
std::string PyRStripChars(absl::string_view text, absl::string_view chars);

// str.split() without arguments: runs of Unicode whitespace separate fields.
std::vector<std::string> PySplitWhitespace(absl::string_view text);
// str.split(sep) for a non-empty literal separator.
std::vector<std::string> PySplit(absl::string_view text, absl::string_view sep);
// str.replace(old, new) for a non-empty `from`.
std::string PyReplace(absl::string_view text, absl::string_view from, absl::string_view to);

// str.lower(): full Unicode lowercase mapping, locale-independent.
std::string PyLower(absl::string_view text);
// str.isupper() / str.islower(): every cased character has that case and
// there is at least one cased character.
bool PyIsUpper(absl::string_view text);
bool PyIsLower(absl::string_view text);

// Number of code points.
size_t CodePointCount(absl::string_view text);

// A compiled Perl-compatible pattern (PCRE2, UTF + Unicode properties, so
// \w \d \s \b mean what they mean for Python's `re` on str). Copyable; the
// compiled code is shared and read-only.
class Regex {
 public:
  // `caseless` is re.IGNORECASE; `multiline` is re.MULTILINE; `literal`
  // matches the pattern text as-is.
  struct Flags {
    bool caseless = false;
    bool multiline = false;
    bool literal = false;
  };

  static absl::StatusOr<Regex> Compile(absl::string_view pattern, Flags flags);
  // For patterns fixed in the source; aborts on a bad pattern (a bug).
  static Regex MustCompile(absl::string_view pattern, Flags flags);

  // re.search(): whether the pattern matches anywhere.
  absl::StatusOr<bool> Search(absl::string_view text, const CancelToken& cancel) const;
  // re.findall()/finditer(): byte spans of the non-overlapping matches, left
  // to right.
  absl::StatusOr<std::vector<std::pair<size_t, size_t>>> FindAll(
      absl::string_view text, const CancelToken& cancel) const;
  // re.split(): the pieces between matches (capture groups are not kept).
  absl::StatusOr<std::vector<std::string>> Split(absl::string_view text,
                                                 const CancelToken& cancel) const;
  // re.sub() with a PCRE2 replacement template ($1, ${0}).
  absl::StatusOr<std::string> ReplaceAll(absl::string_view text,
                                         absl::string_view replacement) const;

 private:
  struct Code;
  explicit Regex(std::shared_ptr<const Code> code) : code_(std::move(code)) {}
  std::shared_ptr<const Code> code_;
};

// nltk.tokenize.RegexpTokenizer(r"\w+") token count (upstream count_words).
absl::StatusOr<int64_t> CountWords(absl::string_view text, const CancelToken& cancel);

// Sentences of `text`, stripped of surrounding whitespace. Built on ICU's
// sentence BreakIterator (English rules with the standard abbreviation
// suppressions), adjusted toward NLTK punkt, which upstream uses:
//  * line breaks never end a sentence by themselves (punkt only ends
//    sentences at . ? !), and ICU boundaries not after . ? ! are dropped;
//  * a word ending in "." followed by a lowercase word ends a sentence,
//    unless the word is an abbreviation, an initial or a number (punkt's
//    rule; ICU would not break there).
absl::StatusOr<std::vector<std::string>> SplitSentences(absl::string_view text,
                                                        const CancelToken& cancel);

// nltk.word_tokenize(): the NLTK destructive (Treebank-style) word tokenizer
// applied to each sentence from SplitSentences.
absl::StatusOr<std::vector<std::string>> WordTokenize(absl::string_view text,
                                                      const CancelToken& cancel);

}  // namespace cascade::verifier::ifeval

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_IFEVAL_IFEVAL_TEXT_H_
