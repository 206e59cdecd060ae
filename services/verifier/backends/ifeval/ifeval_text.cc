#include "services/verifier/backends/ifeval/ifeval_text.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "unicode/brkiter.h"
#include "unicode/locid.h"
#include "unicode/uchar.h"
#include "unicode/unistr.h"
#include "unicode/utf8.h"

namespace cascade::verifier::ifeval {
namespace {

// Decodes `text` into code points; ill-formed bytes become U+FFFD.
std::u32string Decode(absl::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  int32_t i = 0;
  const int32_t n = static_cast<int32_t>(text.size());
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  while (i < n) {
    UChar32 c;
    U8_NEXT(s, i, n, c);
    out.push_back(c < 0 ? 0xFFFD : static_cast<char32_t>(c));
  }
  return out;
}

std::string Encode(const std::u32string& text, size_t begin, size_t end) {
  std::string out;
  out.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) {
    char buf[4];
    int32_t len = 0;
    UBool error = false;
    U8_APPEND(reinterpret_cast<uint8_t*>(buf), len, 4, static_cast<UChar32>(text[i]), error);
    if (!error) out.append(buf, len);
  }
  return out;
}

std::string Encode(const std::u32string& text) { return Encode(text, 0, text.size()); }

// Python's notion of a cased character's case (CPython uses the derived
// Uppercase/Lowercase properties and the Lt category).
bool IsPyLower(UChar32 c) { return u_hasBinaryProperty(c, UCHAR_LOWERCASE); }
bool IsPyUpper(UChar32 c) { return u_hasBinaryProperty(c, UCHAR_UPPERCASE); }
bool IsPyTitle(UChar32 c) { return u_charType(c) == U_TITLECASE_LETTER; }

}  // namespace

std::string ToValidUtf8(absl::string_view text) { return Encode(Decode(text)); }

bool PyIsSpace(int32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D:
    case 0x1C: case 0x1D: case 0x1E: case 0x1F: case 0x20:
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

namespace {

std::string StripImpl(absl::string_view text, bool left, bool right,
                      absl::string_view chars, bool whitespace) {
  std::u32string s = Decode(text);
  auto strip_this = [&](char32_t c) {
    if (whitespace) return PyIsSpace(static_cast<int32_t>(c));
    return c < 0x80 && chars.find(static_cast<char>(c)) != absl::string_view::npos;
  };
  size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end && strip_this(s[begin])) ++begin;
  }
  if (right) {
    while (end > begin && strip_this(s[end - 1])) --end;
  }
  return Encode(s, begin, end);
}

}  // namespace

std::string PyStrip(absl::string_view text) { return StripImpl(text, true, true, "", true); }
std::string PyStripChars(absl::string_view text, absl::string_view chars) {
  return StripImpl(text, true, true, chars, false);
}
std::string PyLStripChars(absl::string_view text, absl::string_view chars) {
  return StripImpl(text, true, false, chars, false);
}
std::string PyRStripChars(absl::string_view text, absl::string_view chars) {
  return StripImpl(text, false, true, chars, false);
}

std::vector<std::string> PySplitWhitespace(absl::string_view text) {
  std::u32string s = Decode(text);
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && PyIsSpace(static_cast<int32_t>(s[i]))) ++i;
    size_t start = i;
    while (i < s.size() && !PyIsSpace(static_cast<int32_t>(s[i]))) ++i;
    if (i > start) out.push_back(Encode(s, start, i));
  }
  return out;
}

std::vector<std::string> PySplit(absl::string_view text, absl::string_view sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t found = text.find(sep, start);
    if (found == absl::string_view::npos) break;
    out.emplace_back(text.substr(start, found - start));
    start = found + sep.size();
  }
  out.emplace_back(text.substr(start));
  return out;
}

std::string PyReplace(absl::string_view text, absl::string_view from, absl::string_view to) {
  std::vector<std::string> parts = PySplit(text, from);
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) absl::StrAppend(&out, to);
    absl::StrAppend(&out, parts[i]);
  }
  return out;
}

std::string PyLower(absl::string_view text) {
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  u.toLower(icu::Locale::getRoot());
  std::string out;
  u.toUTF8String(out);
  return out;
}

namespace {

bool PyIsCase(absl::string_view text, bool upper) {
  bool cased = false;
  for (char32_t c : Decode(text)) {
    UChar32 cp = static_cast<UChar32>(c);
    if (IsPyTitle(cp)) return false;
    if (upper ? IsPyLower(cp) : IsPyUpper(cp)) return false;
    if (upper ? IsPyUpper(cp) : IsPyLower(cp)) cased = true;
  }
  return cased;
}

}  // namespace

bool PyIsUpper(absl::string_view text) { return PyIsCase(text, /*upper=*/true); }
bool PyIsLower(absl::string_view text) { return PyIsCase(text, /*upper=*/false); }

size_t CodePointCount(absl::string_view text) { return Decode(text).size(); }

// ---------------------------------------------------------------------------
// Regex

struct Regex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

namespace {

// Backtracking budget per match call: generous for real responses, but a
// pathological user-supplied keyword pattern fails instead of hanging.
constexpr uint32_t kMatchLimit = 20'000'000;

std::string Pcre2Message(int code) {
  PCRE2_UCHAR buffer[256];
  int len = pcre2_get_error_message(code, buffer, sizeof(buffer));
  if (len < 0) return absl::StrCat("PCRE2 error ", code);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(len));
}

struct MatchContext {
  MatchContext() : context(pcre2_match_context_create(nullptr)) {
    pcre2_set_match_limit(context, kMatchLimit);
  }
  ~MatchContext() { pcre2_match_context_free(context); }
  pcre2_match_context* context;
};

struct MatchData {
  explicit MatchData(const pcre2_code* code)
      : data(pcre2_match_data_create_from_pattern(code, nullptr)) {}
  ~MatchData() { pcre2_match_data_free(data); }
  pcre2_match_data* data;
};

absl::Status MatchError(int rc) {
  if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
      rc == PCRE2_ERROR_HEAPLIMIT) {
    return absl::ResourceExhaustedError(
        absl::StrCat("pattern match gave up: ", Pcre2Message(rc)));
  }
  if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21) {
    return absl::InvalidArgumentError(absl::StrCat("text is not valid UTF-8: ", Pcre2Message(rc)));
  }
  return absl::InternalError(absl::StrCat("pattern match failed: ", Pcre2Message(rc)));
}

size_t Utf8Length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

}  // namespace

absl::StatusOr<Regex> Regex::Compile(absl::string_view pattern, Flags flags) {
  uint32_t options = PCRE2_UTF | PCRE2_UCP;
  if (flags.caseless) options |= PCRE2_CASELESS;
  if (flags.multiline) options |= PCRE2_MULTILINE;
  if (flags.literal) options |= PCRE2_LITERAL;
  pcre2_compile_context* context = pcre2_compile_context_create(nullptr);
  // Python's `.` and `$` know only "\n" as a line end.
  pcre2_set_newline(context, PCRE2_NEWLINE_LF);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error, &offset, context);
  pcre2_compile_context_free(context);
  if (code == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("bad pattern \"", pattern, "\" at offset ",
                                                   offset, ": ", Pcre2Message(error)));
  }
  auto holder = std::make_shared<Code>();
  holder->code = code;
  return Regex(std::move(holder));
}

Regex Regex::MustCompile(absl::string_view pattern, Flags flags) {
  absl::StatusOr<Regex> regex = Compile(pattern, flags);
  if (!regex.ok()) {
    fprintf(stderr, "ifeval: %s\n", std::string(regex.status().message()).c_str());
    abort();
  }
  return *std::move(regex);
}

absl::StatusOr<std::vector<std::pair<size_t, size_t>>> Regex::FindAll(
    absl::string_view text, const CancelToken& cancel) const {
  std::vector<std::pair<size_t, size_t>> spans;
  MatchContext context;
  MatchData match(code_->code);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t offset = 0;
  while (offset <= text.size()) {
    RETURN_IF_ERROR(cancel.Check());
    int rc = pcre2_match(code_->code, subject, text.size(), offset, 0, match.data,
                         context.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) return MatchError(rc);
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.data);
    size_t begin = ovector[0], end = ovector[1];
    spans.emplace_back(begin, end);
    if (end > begin) {
      offset = end;
    } else {
      // An empty match: step over one character so the scan advances.
      if (end >= text.size()) break;
      offset = end + Utf8Length(static_cast<unsigned char>(text[end]));
    }
  }
  return spans;
}

absl::StatusOr<bool> Regex::Search(absl::string_view text, const CancelToken& cancel) const {
  RETURN_IF_ERROR(cancel.Check());
  MatchContext context;
  MatchData match(code_->code);
  int rc = pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0,
                       match.data, context.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) return MatchError(rc);
  return true;
}

absl::StatusOr<std::vector<std::string>> Regex::Split(absl::string_view text,
                                                      const CancelToken& cancel) const {
  ASSIGN_OR_RETURN(auto spans, FindAll(text, cancel));
  std::vector<std::string> pieces;
  size_t start = 0;
  for (const auto& [begin, end] : spans) {
    pieces.emplace_back(text.substr(start, begin - start));
    start = end;
  }
  pieces.emplace_back(text.substr(start));
  return pieces;
}

absl::StatusOr<std::string> Regex::ReplaceAll(absl::string_view text,
                                              absl::string_view replacement) const {
  MatchContext context;
  std::string out(text.size() * 2 + 64, '\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    PCRE2_SIZE out_len = out.size();
    int rc = pcre2_substitute(
        code_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0,
        PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH, nullptr, context.context,
        reinterpret_cast<PCRE2_SPTR>(replacement.data()), replacement.size(),
        reinterpret_cast<PCRE2_UCHAR*>(out.data()), &out_len);
    if (rc >= 0) {
      out.resize(out_len);
      return out;
    }
    if (rc != PCRE2_ERROR_NOMEMORY) return MatchError(rc);
    out.assign(out_len + 1, '\0');
  }
  return absl::InternalError("pattern substitution did not fit its buffer");
}

// ---------------------------------------------------------------------------
// Words and sentences

absl::StatusOr<int64_t> CountWords(absl::string_view text, const CancelToken& cancel) {
  static const Regex& kWord = *new Regex(Regex::MustCompile(R"(\w+)", {}));
  ASSIGN_OR_RETURN(auto spans, kWord.FindAll(text, cancel));
  return static_cast<int64_t>(spans.size());
}

namespace {

bool IsLineBreak(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x85 || c == 0x2028 ||
         c == 0x2029;
}

bool IsSentenceEnd(char32_t c) { return c == '.' || c == '?' || c == '!'; }

// Closing punctuation that may follow a sentence end ("Stop." she said).
bool IsCloser(char32_t c) {
  return c == '"' || c == '\'' || c == ')' || c == ']' || c == '}' || c == 0x201D ||
         c == 0x2019 || c == 0xBB;
}

bool IsSpace32(char32_t c) { return PyIsSpace(static_cast<int32_t>(c)); }

// Words punkt's English model knows as abbreviations and that commonly
// precede a lowercase word ("etc. and", "approx. ten"); a period after them
// does not end a sentence.
const absl::flat_hash_set<std::string>& Abbreviations() {
  static const auto& kSet = *new absl::flat_hash_set<std::string>{
      "etc",  "vs",   "v",    "cf",   "al",    "approx", "appr",  "fig",  "figs", "eq",
      "eqs",  "no",   "nos",  "vol",  "vols",  "pp",     "p",     "ca",   "ch",   "sec",
      "mr",   "mrs",  "ms",   "dr",   "prof",  "st",     "jr",    "sr",   "inc",  "ltd",
      "co",   "corp", "dept", "univ", "est",   "min",    "max",   "misc", "ft",   "oz",
      "lb",   "lbs",  "hr",   "hrs",  "yr",    "yrs",    "mt",    "gen",  "gov",  "govt",
      "sen",  "rep",  "rev",  "capt", "col",   "lt",     "sgt",   "jan",  "feb",  "mar",
      "apr",  "jun",  "jul",  "aug",  "sep",   "sept",   "oct",   "nov",  "dec",  "ed",
      "eds",  "esp",  "excl", "incl", "viz",   "resp",   "ref",   "refs", "tel",  "op",
      "cit",  "ibid", "assn", "bros", "mfg",   "intl",   "dist",  "div",  "ave",  "blvd",
      "rd",   "mins", "sq",   "km",   "cm",    "mm",     "kg",    "approx"};
  return kSet;
}

// punkt's number type: ^-?[\.,]?\d[\d,\.-]*\.?$ (checked without the final period).
bool LooksLikeNumber(const std::u32string& word) {
  size_t i = 0;
  if (i < word.size() && word[i] == '-') ++i;
  if (i < word.size() && (word[i] == '.' || word[i] == ',')) ++i;
  if (i >= word.size() || !u_isdigit(static_cast<UChar32>(word[i]))) return false;
  for (++i; i < word.size(); ++i) {
    char32_t c = word[i];
    if (!(u_isdigit(static_cast<UChar32>(c)) || c == ',' || c == '.' || c == '-')) return false;
  }
  return true;
}

// Whether punkt would end a sentence after `token` (which ends in '.') when
// the next word starts lowercase: only when the token is an ordinary word.
bool PeriodEndsSentenceBeforeLowercase(const std::u32string& token) {
  std::u32string word = token.substr(0, token.size() - 1);
  // Opening punctuation is split off by punkt's word tokenizer.
  size_t start = 0;
  while (start < word.size() && !u_isalnum(static_cast<UChar32>(word[start]))) ++start;
  word = word.substr(start);
  if (word.empty()) return false;                            // "..." or a lone "."
  if (word.find(U'.') != std::u32string::npos) return false;  // e.g. / U.S. / a.m.
  if (LooksLikeNumber(word)) return false;
  if (word.size() == 1 && u_isalpha(static_cast<UChar32>(word[0]))) return false;  // initial
  std::string lowered = PyLower(Encode(word));
  return !Abbreviations().contains(lowered);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> SplitSentences(absl::string_view text,
                                                        const CancelToken& cancel) {
  std::u32string s = Decode(text);
  for (char32_t& c : s) {
    if (IsLineBreak(c)) c = ' ';
  }
  const size_t n = s.size();
  std::set<size_t> cuts;

  // 1. ICU's boundaries, kept where punkt could also end a sentence: after
  //    . ? ! (and closers), followed by whitespace or the end of the text.
  icu::UnicodeString u = icu::UnicodeString::fromUTF32(
      reinterpret_cast<const UChar32*>(s.data()), static_cast<int32_t>(n));
  std::vector<size_t> utf16_to_cp(static_cast<size_t>(u.length()) + 1, 0);
  {
    size_t cp = 0;
    for (int32_t i = 0; i < u.length(); i = u.moveIndex32(i, 1), ++cp) {
      utf16_to_cp[static_cast<size_t>(i)] = cp;
      if (U16_IS_LEAD(u.charAt(i)) && i + 1 < u.length()) {
        utf16_to_cp[static_cast<size_t>(i) + 1] = cp;
      }
    }
    utf16_to_cp[static_cast<size_t>(u.length())] = n;
  }
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<icu::BreakIterator> breaks(
      icu::BreakIterator::createSentenceInstance(icu::Locale("en@ss=standard"), status));
  if (U_FAILURE(status) || breaks == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot create the ICU sentence iterator: ", u_errorName(status)));
  }
  breaks->setText(u);
  for (int32_t b = breaks->next(); b != icu::BreakIterator::DONE; b = breaks->next()) {
    RETURN_IF_ERROR(cancel.Check());
    size_t cut = utf16_to_cp[static_cast<size_t>(b)];
    if (cut >= n || cut == 0) continue;
    if (!IsSpace32(s[cut - 1])) continue;
    size_t j = cut;
    while (j > 0 && IsSpace32(s[j - 1])) --j;
    while (j > 0 && IsCloser(s[j - 1])) --j;
    if (j > 0 && IsSentenceEnd(s[j - 1])) cuts.insert(cut);
  }

  // 2. punkt's rule for a period before a lowercase word.
  size_t i = 0;
  while (i < n) {
    RETURN_IF_ERROR(cancel.Check());
    while (i < n && IsSpace32(s[i])) ++i;
    size_t start = i;
    while (i < n && !IsSpace32(s[i])) ++i;
    if (i == start || s[i - 1] != '.') continue;
    size_t next = i;
    while (next < n && IsSpace32(s[next])) ++next;
    if (next >= n || next == i) continue;
    if (!IsPyLower(static_cast<UChar32>(s[next]))) continue;
    if (PeriodEndsSentenceBeforeLowercase(s.substr(start, i - start))) cuts.insert(next);
  }

  std::vector<std::string> sentences;
  size_t begin = 0;
  cuts.insert(n);
  for (size_t cut : cuts) {
    std::string piece = PyStrip(Encode(s, begin, cut));
    if (!piece.empty()) sentences.push_back(std::move(piece));
    begin = cut;
  }
  return sentences;
}

// ---------------------------------------------------------------------------
// NLTK word tokenizer

namespace {

struct Rewrite {
  Regex pattern;
  std::string replacement;
};

Rewrite R(absl::string_view pattern, absl::string_view replacement) {
  return Rewrite{Regex::MustCompile(pattern, {}), std::string(replacement)};
}

// The substitutions of nltk.tokenize.destructive.NLTKWordTokenizer, in its
// order, written as PCRE2 patterns and templates.
const std::vector<Rewrite>& TokenizerBefore() {
  static const auto& kRules = *new std::vector<Rewrite>{
      // Starting quotes.
      R("([«“‘„]|[`]+)", " $1 "),
      R(R"(^")", "``"),
      R("(``)", " $1 "),
      R(R"(([ \(\[{<])("|'{2}))", "$1 `` "),
      R(R"((?i)(?<!\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w))", "$1 "),
      // Punctuation.
      R(R"(([^\.])(\.)([\]\)}>"'»”’ ]*)\s*$)", "$1 $2 $3 "),
      R(R"(([:,])([^\d]))", " $1 $2"),
      R(R"(([:,])$)", " $1 "),
      R(R"(\.{2,})", " $0 "),
      R(R"([;@#$%&])", " $0 "),
      R(R"([\x{2012}-\x{2015}])", " $0 "),
      R(R"(([^\.])(\.)([\]\)}>"']*)\s*$)", "$1 $2$3 "),
      R(R"([?!])", " $0 "),
      R(R"(([^'])' )", "$1 ' "),
      R(R"([*])", " $0 "),
      // Parentheses and brackets, double dashes.
      R(R"([\]\[\(\)\{\}\<\>])", " $0 "),
      R("--", " -- "),
  };
  return kRules;
}

const std::vector<Rewrite>& TokenizerAfter() {
  static const auto& kRules = *new std::vector<Rewrite>{
      // Ending quotes.
      R("([»”’])", " $1 "),
      R("''", " '' "),
      R("\"", " '' "),
      R(R"(\s+)", " "),
      R(R"(([^' ])('[sS]|'[mM]|'[dD]|') )", "$1 $2 "),
      R(R"(([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) )", "$1 $2 "),
      // MacIntyre contractions.
      R(R"((?i)\b(can)(not)\b)", " $1 $2 "),
      R(R"((?i)\b(d)('ye)\b)", " $1 $2 "),
      R(R"((?i)\b(gim)(me)\b)", " $1 $2 "),
      R(R"((?i)\b(gon)(na)\b)", " $1 $2 "),
      R(R"((?i)\b(got)(ta)\b)", " $1 $2 "),
      R(R"((?i)\b(lem)(me)\b)", " $1 $2 "),
      R(R"((?i)\b(more)('n)\b)", " $1 $2 "),
      R(R"((?i)\b(wan)(na)(?=\s))", " $1 $2 "),
      R(R"((?i) ('t)(is)\b)", " $1 $2 "),
      R(R"((?i) ('t)(was)\b)", " $1 $2 "),
  };
  return kRules;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> WordTokenize(absl::string_view text,
                                                      const CancelToken& cancel) {
  ASSIGN_OR_RETURN(std::vector<std::string> sentences, SplitSentences(text, cancel));
  std::vector<std::string> tokens;
  for (const std::string& sentence : sentences) {
    RETURN_IF_ERROR(cancel.Check());
    std::string work = sentence;
    for (const Rewrite& rule : TokenizerBefore()) {
      ASSIGN_OR_RETURN(work, rule.pattern.ReplaceAll(work, rule.replacement));
    }
    work = absl::StrCat(" ", work, " ");
    for (const Rewrite& rule : TokenizerAfter()) {
      ASSIGN_OR_RETURN(work, rule.pattern.ReplaceAll(work, rule.replacement));
    }
    for (std::string& token : PySplitWhitespace(work)) tokens.push_back(std::move(token));
  }
  return tokens;
}

}  // namespace cascade::verifier::ifeval
