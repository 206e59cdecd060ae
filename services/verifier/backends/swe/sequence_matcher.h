// A re-implementation of Python difflib's SequenceMatcher, exact to the value.
//
// The SWE reward (SWE-RL) is defined in terms of
//   difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
// over the characters of two normalized patches, and the normalized patches
// themselves come from difflib.unified_diff over lines. Rewards are compared
// against the reference across runs, so "close" is not good enough: this file
// follows difflib's algorithm step by step (the b2j index, find_longest_match
// with its tie-breaking, the recursion over the gaps, the collapse of
// adjacent blocks, the "popular element" heuristic when autojunk is on).
// There is no junk predicate (isjunk=None in every caller we mirror).
//
// Python strings are sequences of code points, so text is decoded from UTF-8
// first; bytes that are not valid UTF-8 become U+DC80..U+DCFF, the way
// Python's surrogateescape decoder would.
//
// Thread-safety: SequenceMatcher objects are not shared; the free functions
// are pure and may be called concurrently.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_SWE_SEQUENCE_MATCHER_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_SWE_SEQUENCE_MATCHER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/deadline.h"

namespace cascade::verifier {

// a[a_start, a_start+size) == b[b_start, b_start+size).
struct MatchingBlock {
  size_t a_start = 0;
  size_t b_start = 0;
  size_t size = 0;
  bool operator==(const MatchingBlock& o) const {
    return a_start == o.a_start && b_start == o.b_start && size == o.size;
  }
};

// One step of turning a into b, as difflib.get_opcodes() reports it.
struct Opcode {
  enum class Tag { kEqual, kReplace, kDelete, kInsert };
  Tag tag = Tag::kEqual;
  size_t a_begin = 0, a_end = 0, b_begin = 0, b_end = 0;
};

class SequenceMatcher {
 public:
  // Computes the matching blocks of `a` against `b` (symbols are opaque
  // integers: code points, or interned lines). `autojunk` enables difflib's
  // popular-element heuristic (on by default in difflib, off in SWE-RL's
  // ratio). Returns DEADLINE_EXCEEDED once `cancel` expires: the work is
  // O(len(a) * len(b)) in the worst case.
  static absl::StatusOr<SequenceMatcher> Create(std::vector<int32_t> a, std::vector<int32_t> b,
                                                bool autojunk, const CancelToken& cancel);

  // Ascending, adjacent blocks collapsed, ending with the (len(a), len(b), 0)
  // sentinel — as difflib.get_matching_blocks().
  const std::vector<MatchingBlock>& matching_blocks() const { return blocks_; }

  // 2 * matches / (len(a) + len(b)); 1.0 when both are empty.
  double Ratio() const;

  std::vector<Opcode> GetOpcodes() const;
  // Hunks with up to `context` lines of context, as get_grouped_opcodes(n).
  std::vector<std::vector<Opcode>> GetGroupedOpcodes(size_t context) const;

 private:
  SequenceMatcher() = default;
  size_t len_a_ = 0;
  size_t len_b_ = 0;
  std::vector<MatchingBlock> blocks_;
};

// Code points of UTF-8 text (invalid bytes as U+DC80 + byte).
std::vector<int32_t> DecodeUtf8(absl::string_view text);

// difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() over the code
// points of two UTF-8 strings.
absl::StatusOr<double> StringSimilarity(absl::string_view a, absl::string_view b,
                                        const CancelToken& cancel);

// Python's str.splitlines(): splits at \n, \r, \r\n, \v, \f, \x1c-\x1e,
// U+0085, U+2028 and U+2029; the separators are dropped.
std::vector<std::string> PySplitLines(absl::string_view text);

// The body of difflib.unified_diff(old.splitlines(), new.splitlines(),
// lineterm="", n=context) without its two "---"/"+++" header lines, joined
// with "\n" — SWE-RL's "normalized patch" of one file. Empty when the two
// texts have the same lines.
absl::StatusOr<std::string> UnifiedDiffBody(absl::string_view old_text, absl::string_view new_text,
                                            size_t context, const CancelToken& cancel);

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_SWE_SEQUENCE_MATCHER_H_
