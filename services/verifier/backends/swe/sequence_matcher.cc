#include "services/verifier/backends/swe/sequence_matcher.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cascade::verifier {
namespace {

// The b2j index of difflib with symbols renumbered densely: b2j[id] lists the
// positions of symbol id in b, ascending. Symbols of a that never occur in b
// (or were dropped as popular) get id -1.
struct Index {
  std::vector<int32_t> a_ids;
  std::vector<int32_t> b_ids;
  std::vector<std::vector<uint32_t>> b2j;
};

Index BuildIndex(const std::vector<int32_t>& a, const std::vector<int32_t>& b, bool autojunk) {
  Index index;
  absl::flat_hash_map<int32_t, int32_t> ids;
  index.b_ids.reserve(b.size());
  for (size_t j = 0; j < b.size(); ++j) {
    auto [it, inserted] = ids.try_emplace(b[j], static_cast<int32_t>(index.b2j.size()));
    if (inserted) index.b2j.emplace_back();
    index.b2j[it->second].push_back(static_cast<uint32_t>(j));
    index.b_ids.push_back(it->second);
  }
  // difflib: with autojunk and len(b) >= 200, an element occurring more than
  // 1% of the time (plus one) is "popular" and leaves b2j. It is still
  // compared when extending a match, so b_ids keeps it.
  std::vector<bool> popular(index.b2j.size(), false);
  if (autojunk && b.size() >= 200) {
    const size_t ntest = b.size() / 100 + 1;
    for (size_t id = 0; id < index.b2j.size(); ++id) {
      if (index.b2j[id].size() > ntest) {
        popular[id] = true;
        index.b2j[id].clear();
      }
    }
  }
  index.a_ids.reserve(a.size());
  for (int32_t symbol : a) {
    auto it = ids.find(symbol);
    index.a_ids.push_back(it == ids.end() || popular[it->second] ? -1 : it->second);
  }
  return index;
}

// difflib.find_longest_match(alo, ahi, blo, bhi) with isjunk=None. Among the
// longest common runs it returns the one that ends first in a, then in b —
// the order difflib's scan finds them — which decides the recursion and so
// the final count.
class LongestMatchFinder {
 public:
  LongestMatchFinder(const std::vector<int32_t>& a, const std::vector<int32_t>& b,
                     const Index& index)
      : a_(a), b_(b), index_(index), prev_(b.size() + 1, 0), cur_(b.size() + 1, 0) {}

  absl::StatusOr<MatchingBlock> Find(size_t alo, size_t ahi, size_t blo, size_t bhi,
                                     const CancelToken& cancel) {
    size_t besti = alo, bestj = blo, bestsize = 0;
    // prev_[j + 1] is the length of the run ending at (i - 1, j); only the
    // entries listed in touched_prev_ are non-zero.
    for (size_t i = alo; i < ahi; ++i) {
      RETURN_IF_ERROR(cancel.Check());
      const int32_t id = index_.a_ids[i];
      if (id >= 0) {
        const std::vector<uint32_t>& positions = index_.b2j[id];
        auto it = std::lower_bound(positions.begin(), positions.end(), static_cast<uint32_t>(blo));
        for (; it != positions.end() && *it < bhi; ++it) {
          const size_t j = *it;
          const uint32_t k = prev_[j] + 1;
          cur_[j + 1] = k;
          touched_cur_.push_back(j + 1);
          if (k > bestsize) {
            besti = i - k + 1;
            bestj = j - k + 1;
            bestsize = k;
          }
        }
      }
      for (size_t t : touched_prev_) prev_[t] = 0;
      touched_prev_.clear();
      std::swap(prev_, cur_);
      std::swap(touched_prev_, touched_cur_);
    }
    for (size_t t : touched_prev_) prev_[t] = 0;
    touched_prev_.clear();

    // Popular elements are absent from b2j but still equal: grow the match
    // over them on both sides, as difflib does.
    while (besti > alo && bestj > blo && a_[besti - 1] == b_[bestj - 1]) {
      --besti;
      --bestj;
      ++bestsize;
    }
    while (besti + bestsize < ahi && bestj + bestsize < bhi &&
           a_[besti + bestsize] == b_[bestj + bestsize]) {
      ++bestsize;
    }
    return MatchingBlock{besti, bestj, bestsize};
  }

 private:
  const std::vector<int32_t>& a_;
  const std::vector<int32_t>& b_;
  const Index& index_;
  std::vector<uint32_t> prev_;
  std::vector<uint32_t> cur_;
  std::vector<size_t> touched_prev_;
  std::vector<size_t> touched_cur_;
};

// The id of `line`; a line not seen before gets the next one.
int32_t Intern(absl::flat_hash_map<std::string, int32_t>& table, const std::string& line) {
  auto [it, inserted] = table.try_emplace(line, static_cast<int32_t>(table.size()));
  return it->second;
}

// difflib's _format_range_unified.
std::string FormatRange(size_t start, size_t stop) {
  size_t beginning = start + 1;
  const size_t length = stop - start;
  if (length == 1) return absl::StrCat(beginning);
  if (length == 0) beginning -= 1;
  return absl::StrCat(beginning, ",", length);
}

}  // namespace

absl::StatusOr<SequenceMatcher> SequenceMatcher::Create(std::vector<int32_t> a,
                                                        std::vector<int32_t> b, bool autojunk,
                                                        const CancelToken& cancel) {
  SequenceMatcher matcher;
  matcher.len_a_ = a.size();
  matcher.len_b_ = b.size();
  const Index index = BuildIndex(a, b, autojunk);
  LongestMatchFinder finder(a, b, index);

  // difflib keeps a LIFO queue of (alo, ahi, blo, bhi) gaps; the blocks are
  // sorted afterwards, so the visiting order does not change the result.
  std::vector<std::tuple<size_t, size_t, size_t, size_t>> queue;
  queue.emplace_back(0, a.size(), 0, b.size());
  std::vector<MatchingBlock> blocks;
  while (!queue.empty()) {
    auto [alo, ahi, blo, bhi] = queue.back();
    queue.pop_back();
    ASSIGN_OR_RETURN(MatchingBlock m, finder.Find(alo, ahi, blo, bhi, cancel));
    if (m.size == 0) continue;
    blocks.push_back(m);
    if (alo < m.a_start && blo < m.b_start) {
      queue.emplace_back(alo, m.a_start, blo, m.b_start);
    }
    if (m.a_start + m.size < ahi && m.b_start + m.size < bhi) {
      queue.emplace_back(m.a_start + m.size, ahi, m.b_start + m.size, bhi);
    }
  }
  std::sort(blocks.begin(), blocks.end(), [](const MatchingBlock& x, const MatchingBlock& y) {
    return std::tie(x.a_start, x.b_start, x.size) < std::tie(y.a_start, y.b_start, y.size);
  });

  // Collapse blocks that touch end to start.
  MatchingBlock run;
  for (const MatchingBlock& next : blocks) {
    if (run.a_start + run.size == next.a_start && run.b_start + run.size == next.b_start) {
      run.size += next.size;
    } else {
      if (run.size > 0) matcher.blocks_.push_back(run);
      run = next;
    }
  }
  if (run.size > 0) matcher.blocks_.push_back(run);
  matcher.blocks_.push_back(MatchingBlock{a.size(), b.size(), 0});
  return matcher;
}

double SequenceMatcher::Ratio() const {
  size_t matches = 0;
  for (const MatchingBlock& block : blocks_) matches += block.size;
  const size_t length = len_a_ + len_b_;
  if (length == 0) return 1.0;
  return 2.0 * static_cast<double>(matches) / static_cast<double>(length);
}

std::vector<Opcode> SequenceMatcher::GetOpcodes() const {
  std::vector<Opcode> codes;
  size_t i = 0, j = 0;
  for (const MatchingBlock& block : blocks_) {
    const size_t ai = block.a_start, bj = block.b_start;
    if (i < ai && j < bj) {
      codes.push_back({Opcode::Tag::kReplace, i, ai, j, bj});
    } else if (i < ai) {
      codes.push_back({Opcode::Tag::kDelete, i, ai, j, bj});
    } else if (j < bj) {
      codes.push_back({Opcode::Tag::kInsert, i, ai, j, bj});
    }
    i = ai + block.size;
    j = bj + block.size;
    if (block.size > 0) codes.push_back({Opcode::Tag::kEqual, ai, i, bj, j});
  }
  return codes;
}

std::vector<std::vector<Opcode>> SequenceMatcher::GetGroupedOpcodes(size_t n) const {
  std::vector<Opcode> codes = GetOpcodes();
  if (codes.empty()) codes.push_back({Opcode::Tag::kEqual, 0, 1, 0, 1});
  // Trim the leading and trailing unchanged runs to n lines of context.
  if (codes.front().tag == Opcode::Tag::kEqual) {
    Opcode& c = codes.front();
    c.a_begin = std::max(c.a_begin, c.a_end >= n ? c.a_end - n : 0);
    c.b_begin = std::max(c.b_begin, c.b_end >= n ? c.b_end - n : 0);
  }
  if (codes.back().tag == Opcode::Tag::kEqual) {
    Opcode& c = codes.back();
    c.a_end = std::min(c.a_end, c.a_begin + n);
    c.b_end = std::min(c.b_end, c.b_begin + n);
  }
  const size_t nn = n + n;
  std::vector<std::vector<Opcode>> groups;
  std::vector<Opcode> group;
  for (Opcode c : codes) {
    // A long unchanged run ends one hunk and starts the next.
    if (c.tag == Opcode::Tag::kEqual && c.a_end - c.a_begin > nn) {
      group.push_back({Opcode::Tag::kEqual, c.a_begin, std::min(c.a_end, c.a_begin + n), c.b_begin,
                       std::min(c.b_end, c.b_begin + n)});
      groups.push_back(std::move(group));
      group.clear();
      c.a_begin = std::max(c.a_begin, c.a_end - n);
      c.b_begin = std::max(c.b_begin, c.b_end - n);
    }
    group.push_back(c);
  }
  if (!group.empty() && !(group.size() == 1 && group[0].tag == Opcode::Tag::kEqual)) {
    groups.push_back(std::move(group));
  }
  return groups;
}

std::vector<int32_t> DecodeUtf8(absl::string_view text) {
  std::vector<int32_t> out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    size_t len = 0;
    int32_t cp = 0, min = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    }
    bool valid = len > 0 && i + len <= n;
    for (size_t k = 1; valid && k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) {
        valid = false;
      } else {
        cp = (cp << 6) | (s[i + k] & 0x3F);
      }
    }
    valid = valid && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (valid) {
      out.push_back(cp);
      i += len;
    } else {
      out.push_back(0xDC00 + c);  // surrogateescape
      ++i;
    }
  }
  return out;
}

absl::StatusOr<double> StringSimilarity(absl::string_view a, absl::string_view b,
                                        const CancelToken& cancel) {
  ASSIGN_OR_RETURN(SequenceMatcher matcher, SequenceMatcher::Create(DecodeUtf8(a), DecodeUtf8(b),
                                                                    /*autojunk=*/false, cancel));
  return matcher.Ratio();
}

std::vector<std::string> PySplitLines(absl::string_view text) {
  std::vector<std::string> lines;
  size_t start = 0, i = 0;
  const size_t n = text.size();
  auto at = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  while (i < n) {
    const unsigned char c = at(i);
    size_t sep = 0;  // length of the separator at i, 0 if none
    if (c == '\n' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E) {
      sep = 1;
    } else if (c == '\r') {
      sep = (i + 1 < n && text[i + 1] == '\n') ? 2 : 1;
    } else if (c == 0xC2 && i + 1 < n && at(i + 1) == 0x85) {
      sep = 2;  // U+0085 NEXT LINE
    } else if (c == 0xE2 && i + 2 < n && at(i + 1) == 0x80 &&
               (at(i + 2) == 0xA8 || at(i + 2) == 0xA9)) {
      sep = 3;  // U+2028, U+2029
    }
    if (sep == 0) {
      ++i;
      continue;
    }
    lines.emplace_back(text.substr(start, i - start));
    i += sep;
    start = i;
  }
  if (start < n) lines.emplace_back(text.substr(start));
  return lines;
}

absl::StatusOr<std::string> UnifiedDiffBody(absl::string_view old_text, absl::string_view new_text,
                                            size_t context, const CancelToken& cancel) {
  const std::vector<std::string> a = PySplitLines(old_text);
  const std::vector<std::string> b = PySplitLines(new_text);
  absl::flat_hash_map<std::string, int32_t> table;
  std::vector<int32_t> a_ids, b_ids;
  a_ids.reserve(a.size());
  b_ids.reserve(b.size());
  for (const std::string& line : a) a_ids.push_back(Intern(table, line));
  for (const std::string& line : b) b_ids.push_back(Intern(table, line));
  // unified_diff builds SequenceMatcher(None, a, b): autojunk stays on.
  ASSIGN_OR_RETURN(SequenceMatcher matcher,
                   SequenceMatcher::Create(std::move(a_ids), std::move(b_ids),
                                           /*autojunk=*/true, cancel));
  std::string out;
  bool first_line = true;
  auto emit = [&](absl::string_view prefix, absl::string_view line) {
    if (!first_line) out += '\n';
    first_line = false;
    absl::StrAppend(&out, prefix, line);
  };
  for (const std::vector<Opcode>& group : matcher.GetGroupedOpcodes(context)) {
    const Opcode& first = group.front();
    const Opcode& last = group.back();
    emit("", absl::StrCat("@@ -", FormatRange(first.a_begin, last.a_end), " +",
                          FormatRange(first.b_begin, last.b_end), " @@"));
    for (const Opcode& c : group) {
      if (c.tag == Opcode::Tag::kEqual) {
        for (size_t i = c.a_begin; i < c.a_end; ++i) emit(" ", a[i]);
        continue;
      }
      if (c.tag == Opcode::Tag::kReplace || c.tag == Opcode::Tag::kDelete) {
        for (size_t i = c.a_begin; i < c.a_end; ++i) emit("-", a[i]);
      }
      if (c.tag == Opcode::Tag::kReplace || c.tag == Opcode::Tag::kInsert) {
        for (size_t j = c.b_begin; j < c.b_end; ++j) emit("+", b[j]);
      }
    }
  }
  return out;
}

}  // namespace cascade::verifier
