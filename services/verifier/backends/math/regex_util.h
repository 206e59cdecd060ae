// A thin PCRE2 wrapper for the math backend's extraction and normalization.
//
// PCRE2 rather than std::regex: libstdc++'s regex recurses per character and
// overflows the stack on long inputs, and it has no match limit. Every match
// here runs under a backtracking limit, so a pathological 100 KB response
// costs bounded time; hitting the limit reads as "no match".
//
// Thread-safety: a compiled Regex is immutable and may be shared; each call
// allocates its own match data.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_REGEX_UTIL_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_REGEX_UTIL_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

struct pcre2_real_code_8;

namespace cascade::verifier::math {

struct RegexMatch {
  size_t start = 0;
  size_t end = 0;
  // Captured groups by index (empty string and npos start when unset).
  std::vector<std::pair<size_t, size_t>> groups;  // [start, end) or {npos, npos}
  absl::string_view subject;

  bool Has(int group) const;
  std::string Group(int group) const;
};

class Regex {
 public:
  // Aborts on an invalid pattern: patterns are compile-time constants.
  explicit Regex(const std::string& pattern, bool caseless = false, bool dotall = false);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // All non-overlapping matches, left to right (like Python's finditer).
  std::vector<RegexMatch> FindAll(absl::string_view subject) const;
  // First match at or after `from`; false when none.
  bool Find(absl::string_view subject, size_t from, RegexMatch* match) const;
  // Replaces every match by `replacement`'s result.
  std::string ReplaceAll(absl::string_view subject,
                         const std::function<std::string(const RegexMatch&)>& replacement) const;
  // Replaces every match by a fixed string with $1..$9 group references.
  std::string Replace(absl::string_view subject, absl::string_view replacement) const;
  int GroupNumber(const char* name) const;

 private:
  pcre2_real_code_8* code_ = nullptr;
};

}  // namespace cascade::verifier::math

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_REGEX_UTIL_H_
