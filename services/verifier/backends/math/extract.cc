#include "services/verifier/backends/math/extract.h"

#include <cln/integer.h>
#include <cln/rational.h>

#include <algorithm>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/status_macros.h"
#include "services/verifier/backends/math/latex_parser.h"
#include "services/verifier/backends/math/normalize.h"
#include "services/verifier/backends/math/regex_util.h"

namespace cascade::verifier::math {
namespace {

constexpr int kMaxNextSpans = 5;  // "$a$, $b$ and $c$" joins up to 6 spans

enum class PatternKind { kLatexSpans, kLatexBoxed, kExpr };

struct Pattern {
  std::unique_ptr<Regex> regex;
  int priority;
  PatternKind kind;
};

// One math span: two groups (content, percent suffix). Branch reset gives
// every alternative the same group number.
std::string SpanPattern(bool boxed_inside) {
  std::string display_dollar = R"((?:[^$]|\$(?!\$)))";
  std::string display_bracket = R"((?:[^\\]|\\(?!\])))";
  std::string inline_dollar = R"((?:\\\$|[^\n$]))";
  std::string inline_paren = R"((?:[^\\\n]|\\(?!\))))";
  std::string inline_bracket = R"([^\n\]\[])";
  auto body = [&](const std::string& c) {
    if (boxed_inside) return absl::StrCat(c, R"(*?\\boxed\{)", c, R"(+?\})", c, "*?");
    return absl::StrCat(c, "+?");
  };
  std::string alternatives = absl::StrCat(
      R"((?<!\\)\$\$()", body(display_dollar), R"()(?<!\\)\$\$|)",
      R"((?<!\\)\\\[()", body(display_bracket), R"()(?<!\\)\\\]|)",
      R"((?<![\\\d])\$()", body(inline_dollar), R"()(?<!\\)\$|)",
      R"((?<!\\)\\\(()", body(inline_paren), R"()(?<!\\)\\\)|)",
      R"(\s\[()", body(inline_bracket), R"()\]\s)");
  if (!boxed_inside) {
    alternatives += R"(|(-?\\frac\{-?\d+(?:[.,]\d+)?\}\{-?\d+(?:[.,]\d+)?\}))";
  }
  return absl::StrCat("(?:(?|", alternatives, R"()\s*(\\?%|[Pp]ercentage|[Pp]ercent|[Pp]ct)?))");
}

std::string SpansPattern(bool boxed_inside) {
  std::string out = SpanPattern(boxed_inside);
  for (int i = 0; i < kMaxNextSpans; ++i) {
    absl::StrAppend(&out, R"((?:\s*(?:,?\s*and|,?\s*or|,)\s*)", SpanPattern(boxed_inside), ")?");
  }
  return out;
}

std::string NumberPattern() {
  return R"((?<!\d)(?:(?<int1>-?[1-9]\d{0,2}(?:[ ,]\d{3})+)(?<dec1>\.\d+)?|)"
         R"((?<int2>-?\d+)(?<dec2>[.,]\d+)|(?<dec3>\.\d+)|(?<int3>-?\d+)))"
         R"((?<pct>\s*(?:%|[Pp]ercentage|[Pp]ercent|[Pp]ct))?)";
}

std::string ExprPattern() {
  std::string ops = R"(\+\-\*×\/\^\(\)÷)";
  std::string chars = absl::StrCat(R"([\d\.\s)", ops, "]");
  return absl::StrCat(R"((?<expr>-?\(?-?\d)", chars, "*[", ops, "]", chars, R"(+\)?))");
}

const char kCurrency[] = "$€£¥₹₽₪₩₫฿₡₢₣₤₥₦₧₨₱₲₴₵₸₺₼₾₿";

std::vector<Pattern> BuildPatterns(const ExtractionConfig& config) {
  std::vector<Pattern> out;
  auto add = [&](const std::string& p, int priority, PatternKind kind, bool dotall) {
    out.push_back({std::make_unique<Regex>(p, /*caseless=*/false, dotall), priority, kind});
  };
  if (config.latex) {
    std::string spans = SpansPattern(false);
    add(absl::StrCat(R"((?i:final answer is):?\s*)", spans, R"(\.?\s?I hope)"), 0,
        PatternKind::kLatexSpans, true);
    add(absl::StrCat(R"((?i:final answer).{0,100}?\s+is:?\s*)", spans), 50,
        PatternKind::kLatexSpans, true);
    add(absl::StrCat(R"((?i:answer):.{0,50}?)", spans), 100, PatternKind::kLatexSpans, true);
    add(absl::StrCat(R"((?i:answer).{0,50}?)", spans), 200, PatternKind::kLatexSpans, true);
    add(spans, 300, PatternKind::kLatexSpans, true);
    if (config.boxed_priority >= 0) {
      add(SpansPattern(true), config.boxed_priority, PatternKind::kLatexSpans, true);
      add(R"((\\(?:boxed|fbox)\{.+\}))", config.boxed_priority, PatternKind::kLatexBoxed, true);
    }
  }
  if (config.expr) {
    std::string prefix = R"((?:^|\s|=)(?:\*\*)?)";
    std::string suffix = R"((?:\*\*)?(?:\.|,|:|\s|\)|\$|$))";
    std::string with_expr = absl::StrCat("(?:", prefix, ExprPattern(), suffix, ")");
    std::string with_number =
        absl::StrCat("(?:", prefix, "[", kCurrency, R"(]?)", NumberPattern(), ")");
    std::string either = absl::StrCat("(?:", with_expr, "|", with_number, ")");
    add(absl::StrCat(R"((?i:final answer is):?\s*)", either, R"(\.?\s?I hope)"), 0,
        PatternKind::kExpr, false);
    add(absl::StrCat(R"((?i:final answer).{0,100}?\s+is:?)", either), 50, PatternKind::kExpr,
        false);
    add(absl::StrCat(R"((?i:answer):(?:.{0,100}=\s*|.{0,50}?))", either, R"((?!\s*=))"), 100,
        PatternKind::kExpr, false);
    add(absl::StrCat(R"((?i:answer)(?:.{0,100}=\s*|.{0,50}?))", either, R"((?!\s*=))"), 200,
        PatternKind::kExpr, false);
    add(with_expr, 300, PatternKind::kExpr, false);
    add(with_number, 300, PatternKind::kExpr, false);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Pattern& a, const Pattern& b) { return a.priority < b.priority; });
  return out;
}

const std::vector<Pattern>& PatternsFor(const ExtractionConfig& config) {
  // Compiled once per configuration shape; immutable afterwards.
  static const auto* cache = [] {
    auto* table = new std::vector<std::vector<Pattern>>();
    for (int latex = 0; latex < 2; ++latex) {
      for (int expr = 0; expr < 2; ++expr) {
        for (int boxed : {0, 50}) {
          table->push_back(BuildPatterns({latex == 1, expr == 1, boxed}));
        }
      }
    }
    return table;
  }();
  int boxed_index = config.boxed_priority == 0 ? 0 : 1;
  return (*cache)[(config.latex ? 4 : 0) + (config.expr ? 2 : 0) + boxed_index];
}

// Splits at `=` signs that are not part of <=, >=, != or \= and returns the
// last part when there are more than two (a derivation chain).
std::string LastEquationPart(const std::string& latex) {
  if (latex.find(',') != std::string::npos || latex.find(';') != std::string::npos) return latex;
  std::vector<size_t> cuts;
  for (size_t i = 0; i < latex.size(); ++i) {
    if (latex[i] != '=') continue;
    if (i > 0 && (latex[i - 1] == '\\' || latex[i - 1] == '<' || latex[i - 1] == '!' ||
                  latex[i - 1] == '>')) {
      continue;
    }
    cuts.push_back(i);
  }
  if (cuts.size() < 2) return latex;
  return latex.substr(cuts.back() + 1);
}

NodePtr ParseLatexCandidate(const std::string& normalized) {
  auto parsed = ParseMath(normalized);
  if (!parsed.ok()) {
    std::string last = LastEquationPart(normalized);
    if (last == normalized) return nullptr;
    parsed = ParseMath(last);
    if (!parsed.ok()) return nullptr;
  }
  return ExpandPlusMinus(*parsed);
}

NodePtr MakePercent(NodePtr node) {
  auto pct = std::make_shared<Node>(*MakeNode(
      NodeKind::kMul, {std::move(node), MakeNumber(cln::cl_RA(1) / 100)}));
  pct->percent = true;
  return pct;
}

struct Extracted {
  NodePtr expr;
  std::string text;
  std::vector<std::pair<size_t, size_t>> failed_spans;
};

Extracted ExtractLatex(const RegexMatch& match, PatternKind kind) {
  Extracted out;
  std::vector<NodePtr> exprs;
  std::vector<std::string> texts;
  bool all_parsed = true;
  if (kind == PatternKind::kLatexBoxed) {
    std::string normalized = NormalizeLatex(match.Group(1), BoxedMode::kLast);
    NodePtr parsed = ParseLatexCandidate(normalized);
    out.expr = parsed;
    out.text = normalized;
    if (!parsed) out.failed_spans.push_back(match.groups[1]);
    return out;
  }
  for (int span = 0; span <= kMaxNextSpans; ++span) {
    int content_group = 1 + 2 * span;
    if (!match.Has(content_group)) continue;
    std::string normalized = NormalizeLatex(match.Group(content_group), BoxedMode::kAll);
    NodePtr parsed = ParseLatexCandidate(normalized);
    if (parsed && match.Has(content_group + 1) && !match.Group(content_group + 1).empty()) {
      parsed = MakePercent(parsed);
    }
    if (!parsed) {
      all_parsed = false;
      if (span == 0) out.failed_spans.push_back(match.groups[content_group]);
    }
    exprs.push_back(parsed);
    texts.push_back(normalized);
  }
  if (exprs.empty()) return out;
  if (exprs.size() > 1 && all_parsed) {
    // "$1$ and $2$": the answers form one set.
    std::vector<NodePtr> items;
    for (const NodePtr& e : exprs) {
      if (e->kind == NodeKind::kList || e->kind == NodeKind::kSet) {
        items.insert(items.end(), e->args.begin(), e->args.end());
      } else {
        items.push_back(e);
      }
    }
    out.expr = MakeNode(NodeKind::kList, std::move(items));
    out.text = absl::StrJoin(texts, " and ");
    return out;
  }
  out.expr = exprs[0];
  out.text = texts[0];
  return out;
}

Extracted ExtractExpr(const RegexMatch& match, const Regex& regex) {
  Extracted out;
  auto group = [&](const char* name) {
    int n = regex.GroupNumber(name);
    return n > 0 ? match.Group(n) : std::string();
  };
  std::string integer, decimal;
  for (const char* name : {"int1", "int2", "int3"}) {
    if (integer.empty()) integer = group(name);
  }
  for (const char* name : {"dec1", "dec2", "dec3"}) {
    if (decimal.empty()) decimal = group(name);
  }
  if (!integer.empty() || !decimal.empty()) {
    bool negative = !integer.empty() && integer[0] == '-';
    std::string digits;
    for (char c : integer) {
      if (c >= '0' && c <= '9') digits += c;
    }
    size_t nz = digits.find_first_not_of('0');
    digits = nz == std::string::npos ? "0" : digits.substr(nz);
    std::string fraction = decimal.empty() ? "" : decimal.substr(1);
    cln::cl_I numerator((digits + fraction).c_str());
    cln::cl_RA value =
        numerator / (fraction.empty() ? cln::cl_I(1) : cln::expt_pos(cln::cl_I(10), static_cast<long>(fraction.size())));
    if (negative) value = -value;
    out.text = absl::StrCat(negative ? "-" : "", digits, fraction.empty() ? "" : ".", fraction);
    out.expr = MakeNumber(value, !fraction.empty());
    if (!group("pct").empty()) out.expr = MakePercent(out.expr);
    return out;
  }
  std::string expr = group("expr");
  out.text = expr;
  std::string cleaned(absl::StripAsciiWhitespace(absl::StrReplaceAll(expr, {{"\n", " "}})));
  while (!cleaned.empty() && cleaned.back() == '.') cleaned.pop_back();
  auto parsed = ParseMath(cleaned);
  if (parsed.ok()) out.expr = *parsed;
  return out;
}

bool Overlaps(const RegexMatch& match, const Regex& regex,
              const std::vector<std::pair<size_t, size_t>>& spans) {
  for (const char* name : {"expr", "int1", "int2", "int3", "dec1", "dec2", "dec3"}) {
    int n = regex.GroupNumber(name);
    if (n <= 0 || !match.Has(n)) continue;
    auto [start, end] = match.groups[n];
    for (const auto& [lo, hi] : spans) {
      if (start < hi && end > lo) return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<Answer> ExtractAnswer(absl::string_view text, const ExtractionConfig& config,
                                     const CancelToken& cancel) {
  const std::vector<Pattern>& patterns = PatternsFor(config);
  Answer answer;
  std::vector<std::pair<size_t, size_t>> failed_spans;
  size_t i = 0;
  while (i < patterns.size()) {
    size_t j = i;
    struct Candidate {
      RegexMatch match;
      const Pattern* pattern;
    };
    std::vector<Candidate> candidates;
    for (; j < patterns.size() && patterns[j].priority == patterns[i].priority; ++j) {
      RETURN_IF_ERROR(cancel.Check());
      for (RegexMatch& m : patterns[j].regex->FindAll(text)) {
        candidates.push_back({std::move(m), &patterns[j]});
      }
    }
    // Rightmost end first; for equal ends the longer match first.
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const Candidate& a, const Candidate& b) {
                       if (a.match.end != b.match.end) return a.match.end > b.match.end;
                       return a.match.start < b.match.start;
                     });
    for (const Candidate& c : candidates) {
      RETURN_IF_ERROR(cancel.Check());
      Extracted extracted;
      if (c.pattern->kind == PatternKind::kExpr) {
        // A number inside a formula that failed to parse is not an answer.
        if (!failed_spans.empty() && Overlaps(c.match, *c.pattern->regex, failed_spans)) continue;
        extracted = ExtractExpr(c.match, *c.pattern->regex);
      } else {
        extracted = ExtractLatex(c.match, c.pattern->kind);
        failed_spans.insert(failed_spans.end(), extracted.failed_spans.begin(),
                            extracted.failed_spans.end());
      }
      if (!extracted.text.empty() && answer.strings.empty()) {
        answer.strings.push_back(extracted.text);
      }
      if (extracted.expr) {
        answer.exprs.push_back(extracted.expr);
        return answer;
      }
    }
    i = j;
  }
  return answer;
}

NodePtr ParseBareLatex(absl::string_view latex) {
  return ParseLatexCandidate(NormalizeLatex(latex, BoxedMode::kLast));
}

std::vector<std::string> ExtractChoice(absl::string_view text,
                                       const StringExtractionConfig& config) {
  std::vector<std::string> escaped;
  for (const std::string& s : config.strings) {
    std::string e;
    for (char c : s) {
      if (!std::isalnum(static_cast<unsigned char>(c))) e += '\\';
      e += c;
    }
    escaped.push_back(e);
  }
  std::string keys = absl::StrCat("(", absl::StrJoin(escaped, "|"), ")");
  std::string suffix = R"((?:\*\*)?(?:\.|,|:|\s|$))";
  std::string answer = absl::StrCat(R"((?:^|\s)(?:\*\*)?)", keys, suffix);
  struct Choice {
    std::string pattern;
    int priority;
  };
  std::vector<Choice> choices = {
      {absl::StrCat(R"((?i:final answer is):?\s*)", keys, R"(\.?\s?I hope)"), 0},
      {absl::StrCat(R"((?i:final answer.{0,100}?)\s+is:?\s*)", keys), 50},
      {absl::StrCat(R"((?i:answer):.{0,50}?)", answer), 100},
      {absl::StrCat(R"((?i:answer).{0,50}?)", answer), 200},
      {absl::StrCat(R"(^(?:\*\*)?)", keys, suffix), 250},
      {answer, 300},
  };
  for (const Choice& choice : choices) {
    Regex regex(choice.pattern);
    std::vector<RegexMatch> matches = regex.FindAll(text);
    if (matches.empty()) continue;
    // The rightmost match wins within a priority.
    const RegexMatch* best = &matches[0];
    for (const RegexMatch& m : matches) {
      if (m.end > best->end || (m.end == best->end && m.start < best->start)) best = &m;
    }
    std::string found = best->Group(1);
    if (found.empty()) found = best->Group(2);
    std::string parsed = config.lowercase ? absl::AsciiStrToLower(found) : found;
    return {parsed, found};
  }
  return {};
}

}  // namespace cascade::verifier::math
