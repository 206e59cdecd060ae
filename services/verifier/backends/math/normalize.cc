#include "services/verifier/backends/math/normalize.h"

#include <cctype>

#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "services/verifier/backends/math/regex_util.h"

namespace cascade::verifier::math {
namespace {

// Commands a model may write with a doubled backslash (escaped JSON or
// Python strings). Only these are rewritten, so `x\\y` in a matrix keeps its
// row break.
const char* const kKnownCommands[] = {
    "frac", "dfrac", "tfrac", "cfrac", "sqrt", "boxed", "fbox", "left", "right", "le", "leq",
    "ge", "geq", "lt", "gt", "ne", "neq", "text", "textbf", "mathrm", "mbox", "cdot", "times",
    "pi", "infty", "in", "cup", "cap", "pm", "mp", "begin", "end", "sin", "cos", "tan", "log",
    "ln", "circ", "approx", "mathbf", "operatorname", "div", "alpha", "beta", "gamma", "theta"};

bool StartsWithCommand(absl::string_view text, size_t pos, size_t* length) {
  for (const char* command : kKnownCommands) {
    absl::string_view name(command);
    if (text.substr(pos, name.size()) == name) {
      size_t end = pos + name.size();
      if (end >= text.size() || !std::isalpha(static_cast<unsigned char>(text[end]))) {
        *length = name.size();
        return true;
      }
    }
  }
  return false;
}

// Units dropped when written in \text{} or directly after a number.
const char kUnitWords[] =
    "(?:cm|mm|km|m|meters?|metres?|centimeters?|millimeters?|kilometers?|inch(?:es)?|in|feet|"
    "foot|ft|yards?|yd|miles?|mi|kg|g|grams?|kilograms?|mg|lbs?|pounds?|ounces?|oz|tons?|"
    "seconds?|sec|s|minutes?|mins?|hours?|hrs?|h|days?|weeks?|months?|years?|yr|liters?|"
    "litres?|l|ml|mL|gallons?|degrees?|deg|radians?|rad|dollars?|cents?|euros?|units?|"
    "square|sq|cubic|mph|km/h|m/s|kph|percent|percentage|pct|points?|people|persons?|ways|"
    "students|items|apples|times|steps|hundred|th|st|nd|rd)";

// Units dropped after a number and a space (`35 cm`); only words that are
// not plausible variable names.
const char kBareUnitWords[] =
    "(?:cm|mm|km|meters?|metres?|centimeters?|millimeters?|kilometers?|inches|feet|ft|yards?|"
    "miles?|kg|grams?|kilograms?|lbs?|pounds?|ounces?|seconds?|minutes?|hours?|days?|weeks?|"
    "months?|years?|liters?|litres?|ml|gallons?|degrees?|dollars?|cents?|euros?|units?|"
    "mph|square units|sq units)";

}  // namespace

std::vector<std::string> BoxedContents(absl::string_view text) {
  std::vector<std::string> out;
  static const Regex kBoxed(R"(\\(?:boxed|fbox)\s*\{)");
  size_t from = 0;
  RegexMatch match;
  while (kBoxed.Find(text, from, &match)) {
    size_t depth = 1;
    size_t i = match.end;
    for (; i < text.size(); ++i) {
      if (text[i] == '\\' && i + 1 < text.size()) {
        ++i;  // skip escaped characters such as \{ and \}
        continue;
      }
      if (text[i] == '{') ++depth;
      if (text[i] == '}' && --depth == 0) break;
    }
    out.emplace_back(text.substr(match.end, i - match.end));
    from = i < text.size() ? i + 1 : text.size();
    if (from >= text.size()) break;
  }
  return out;
}

std::string FixDoubledBackslashes(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    size_t length = 0;
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == '\\' &&
        (i == 0 || text[i - 1] != '\\') &&
        (i + 2 >= text.size() || text[i + 2] != '\\') && StartsWithCommand(text, i + 2, &length)) {
      out += '\\';
      ++i;  // drop one backslash; the command follows
      continue;
    }
    out += text[i];
  }
  return out;
}

std::string NormalizeLatex(absl::string_view latex, BoxedMode boxed) {
  std::string text = FixDoubledBackslashes(latex);

  std::vector<std::string> boxes = BoxedContents(text);
  if (!boxes.empty()) {
    text = boxed == BoxedMode::kLast ? boxes.back() : absl::StrJoin(boxes, ",");
  }

  // Thousands written `11,\!111` keep their comma here and lose it below.
  static const Regex kThinComma(R"(,\\!\s*)");
  text = kThinComma.Replace(text, ",");
  static const Regex kBraceComma(R"((\d)\s*\{\s*,\s*\}\s*(\d))");
  text = kBraceComma.Replace(text, "$1$2");

  // Spacing and sizing commands.
  static const Regex kSpacing(
      R"((?<!\\)\\(?:!|,|;|:|>|(?:quad|qquad|displaystyle|textstyle|limits|nolimits|(?:big|Big|bigg|Bigg)[lr]?)(?![A-Za-z]))|~)");
  text = kSpacing.Replace(text, " ");
  static const Regex kBackslashSpace(R"((?<!\\)\\ )");
  text = kBackslashSpace.Replace(text, " ");
  static const Regex kLeftRightDot(R"(\\(?:left|right)\s*\.)");
  text = kLeftRightDot.Replace(text, "");
  static const Regex kLeftRight(R"(\\(?:left|right)(?![A-Za-z]))");
  text = kLeftRight.Replace(text, "");
  static const Regex kFracVariants(R"(\\(?:d|t|c)frac(?![A-Za-z]))");
  text = kFracVariants.Replace(text, "\\frac");
  static const Regex kBinomVariants(R"(\\(?:d|t)binom(?![A-Za-z]))");
  text = kBinomVariants.Replace(text, "\\binom");

  // Degrees: the number is kept as written (no conversion to radians).
  static const Regex kDegrees(
      R"((?:\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|°|\^\s*\{\s*o\s*\}))");
  text = kDegrees.Replace(text, "");

  // Dollars: both math delimiters and currency.
  text = absl::StrReplaceAll(text, {{"\\$", ""}, {"$", ""}});

  // Units in text-like commands, possibly squared: `15\mbox{ cm}^2`.
  static const Regex kTextUnit(std::string(R"(\\(?:text|textbf|textit|textnormal|textrm|mbox|mathrm|mathit|rm|textsf)\s*\{\s*)") +
                               kUnitWords + R"(\s*\}(?:\s*\^\s*(?:\d|\{\d\}))?)");
  text = kTextUnit.Replace(text, "");
  // Percent written as words.
  static const Regex kPercentWord(R"((?<![A-Za-z])(?:percentage|percent|pct)(?![A-Za-z]))");
  text = kPercentWord.Replace(text, "\\%");
  // A unit word right after a number: `35 cm`, `125 miles`.
  static const Regex kBareUnit(std::string(R"((\d)\s+)") + kBareUnitWords +
                               R"((?:\^\s*(?:\d|\{\d\}))?(?![A-Za-z]))");
  text = kBareUnit.Replace(text, "$1");

  // `and` / `or` between answers list them.
  static const Regex kAnd(
      R"(\\(?:text|textbf|mbox|mathrm)\s*\{\s*(?:and|or|,)\s*\}|(?<![A-Za-z\\])(?:and|or)(?![A-Za-z]))");
  text = kAnd.Replace(text, ",");

  // Thousands separators: 7,425,000 (groups of exactly three digits).
  static const Regex kThousands(R"((?<![\d.,])(\d{1,3}(?:,\d{3})+)(?![\d,]))");
  // Not inside a bracketed pair: `(12,102)` is a point, not 12102.
  text = kThousands.ReplaceAll(text, [&text](const RegexMatch& match) {
    size_t before = match.start;
    while (before > 0 && text[before - 1] == ' ') --before;
    size_t after = match.end;
    while (after < text.size() && text[after] == ' ') ++after;
    bool opened = before > 0 && (text[before - 1] == '(' || text[before - 1] == '[' ||
                                 text[before - 1] == '{');
    bool closed = after < text.size() &&
                  (text[after] == ')' || text[after] == ']' || text[after] == '}');
    if (opened || closed) return match.Group(0);
    return absl::StrReplaceAll(match.Group(1), {{",", ""}});
  });

  // Trailing punctuation and line breaks.
  absl::string_view view = absl::StripAsciiWhitespace(text);
  while (!view.empty()) {
    if (view.back() == '.' || view.back() == ',' || view.back() == ';' ||
        std::isspace(static_cast<unsigned char>(view.back()))) {
      view.remove_suffix(1);
    } else if (absl::EndsWith(view, "\\\\")) {
      view.remove_suffix(2);
    } else {
      break;
    }
  }
  while (!view.empty() && (view.front() == ',' || std::isspace(static_cast<unsigned char>(view.front())))) {
    view.remove_prefix(1);
  }
  return std::string(view);
}

}  // namespace cascade::verifier::math
