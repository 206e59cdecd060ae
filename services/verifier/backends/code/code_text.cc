#include "services/verifier/backends/code/code_text.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace cascade::verifier {

// ---------------------------------------------------------------------------
// Program extraction.

std::string ExtractProgram(absl::string_view response, const std::vector<std::string>& tags) {
  if (size_t think = response.rfind("</think>"); think != absl::string_view::npos) {
    response.remove_prefix(think + 8);
  }
  struct Block {
    std::string tag;
    absl::string_view body;
  };
  std::vector<Block> blocks;
  size_t pos = 0;
  while (true) {
    size_t open = response.find("```", pos);
    if (open == absl::string_view::npos) break;
    size_t line_end = response.find('\n', open);
    if (line_end == absl::string_view::npos) break;
    std::string tag = absl::AsciiStrToLower(
        absl::StripAsciiWhitespace(response.substr(open + 3, line_end - open - 3)));
    // A closing fence starts a line.
    size_t close = response.find("\n```", line_end);
    absl::string_view body;
    if (close == absl::string_view::npos) {
      // An unterminated block (the response was cut off) still counts.
      body = response.substr(line_end + 1);
      pos = response.size();
    } else {
      body = response.substr(line_end + 1, close + 1 - (line_end + 1));
      size_t after = response.find('\n', close + 4);
      pos = after == absl::string_view::npos ? response.size() : after;
    }
    blocks.push_back({tag, body});
  }
  if (blocks.empty()) return std::string(response);
  auto last_where = [&](auto predicate) -> const Block* {
    for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
      if (predicate(*it)) return &*it;
    }
    return nullptr;
  };
  const Block* chosen = last_where([&](const Block& b) {
    for (const std::string& t : tags) {
      if (b.tag == t) return true;
    }
    return false;
  });
  if (chosen == nullptr) chosen = last_where([](const Block& b) { return b.tag.empty(); });
  if (chosen == nullptr) chosen = &blocks.back();
  return std::string(chosen->body);
}

// ---------------------------------------------------------------------------
// Python literals.

namespace {

class PyParser {
 public:
  explicit PyParser(absl::string_view text) : text_(text) {}

  absl::StatusOr<Json> ParseAll() {
    ASSIGN_OR_RETURN(Json value, Parse(0));
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected trailing text");
    return value;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("Python literal at offset ", pos_, ": ", what));
  }
  void SkipSpace() {
    while (pos_ < text_.size() && absl::ascii_isspace(static_cast<unsigned char>(text_[pos_]))) {
      ++pos_;
    }
  }
  bool Consume(absl::string_view token) {
    if (absl::StartsWith(text_.substr(pos_), token)) {
      pos_ += token.size();
      return true;
    }
    return false;
  }

  absl::StatusOr<Json> Parse(int depth) {
    if (depth > 64) return Error("nested too deeply");
    SkipSpace();
    if (pos_ >= text_.size()) return Error("unexpected end");
    char c = text_[pos_];
    if (c == '[' || c == '(') return ParseSequence(c == '[' ? ']' : ')', depth);
    if (c == '{') return ParseDict(depth);
    if (c == '\'' || c == '"') return ParseString();
    if ((c == 'b' || c == 'r' || c == 'u' || c == 'B' || c == 'R' || c == 'U') &&
        pos_ + 1 < text_.size() && (text_[pos_ + 1] == '\'' || text_[pos_ + 1] == '"')) {
      return ParseString();
    }
    if (Consume("True")) return Json(true);
    if (Consume("False")) return Json(false);
    if (Consume("None")) return Json(nullptr);
    return ParseNumber();
  }

  absl::StatusOr<Json> ParseSequence(char close, int depth) {
    ++pos_;
    Json array = Json::array();
    while (true) {
      SkipSpace();
      if (Consume(absl::string_view(&close, 1))) return array;
      ASSIGN_OR_RETURN(Json item, Parse(depth + 1));
      array.push_back(std::move(item));
      SkipSpace();
      if (Consume(",")) continue;
      if (Consume(absl::string_view(&close, 1))) return array;
      return Error("expected ',' or a closing bracket");
    }
  }

  absl::StatusOr<Json> ParseDict(int depth) {
    ++pos_;
    Json object = Json::object();
    while (true) {
      SkipSpace();
      if (Consume("}")) return object;
      ASSIGN_OR_RETURN(Json key, Parse(depth + 1));
      if (!key.is_string()) return Error("only string keys are supported");
      SkipSpace();
      if (!Consume(":")) return Error("expected ':'");
      ASSIGN_OR_RETURN(Json value, Parse(depth + 1));
      object[key.get<std::string>()] = std::move(value);
      SkipSpace();
      if (Consume(",")) continue;
      if (Consume("}")) return object;
      return Error("expected ',' or '}'");
    }
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  absl::StatusOr<Json> ParseString() {
    bool raw = false;
    while (text_[pos_] != '\'' && text_[pos_] != '"') {
      if (text_[pos_] == 'r' || text_[pos_] == 'R') raw = true;
      ++pos_;
    }
    char quote = text_[pos_];
    bool triple = text_.substr(pos_, 3) == std::string(3, quote);
    pos_ += triple ? 3 : 1;
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) return Error("unterminated string");
      char c = text_[pos_];
      if (c == quote) {
        if (!triple) {
          ++pos_;
          return Json(std::move(out));
        }
        if (text_.substr(pos_, 3) == std::string(3, quote)) {
          pos_ += 3;
          return Json(std::move(out));
        }
      }
      if (c != '\\' || raw) {
        out.push_back(c);
        ++pos_;
        continue;
      }
      if (pos_ + 1 >= text_.size()) return Error("dangling backslash");
      char e = text_[pos_ + 1];
      pos_ += 2;
      auto hex = [&](int digits) -> absl::StatusOr<uint32_t> {
        if (pos_ + digits > text_.size()) return Error("short escape");
        uint32_t value = 0;
        for (int i = 0; i < digits; ++i) {
          char h = text_[pos_ + i];
          if (!absl::ascii_isxdigit(static_cast<unsigned char>(h))) return Error("bad hex escape");
          value = value * 16 + (absl::ascii_isdigit(h) ? h - '0' : (absl::ascii_tolower(h) - 'a' + 10));
        }
        pos_ += digits;
        return value;
      };
      switch (e) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case '0': out.push_back('\0'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'v': out.push_back('\v'); break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case '\n': break;  // line continuation
        case 'x': {
          ASSIGN_OR_RETURN(uint32_t v, hex(2));
          AppendUtf8(v, &out);
          break;
        }
        case 'u': {
          ASSIGN_OR_RETURN(uint32_t v, hex(4));
          AppendUtf8(v, &out);
          break;
        }
        case 'U': {
          ASSIGN_OR_RETURN(uint32_t v, hex(8));
          AppendUtf8(v, &out);
          break;
        }
        default:
          out.push_back('\\');
          out.push_back(e);
      }
    }
  }

  absl::StatusOr<Json> ParseNumber() {
    size_t start = pos_;
    while (pos_ < text_.size() &&
           (absl::ascii_isalnum(static_cast<unsigned char>(text_[pos_])) ||
            text_[pos_] == '.' || text_[pos_] == '-' || text_[pos_] == '+' ||
            text_[pos_] == '_')) {
      ++pos_;
    }
    std::string token(text_.substr(start, pos_ - start));
    token.erase(std::remove(token.begin(), token.end(), '_'), token.end());
    if (token.empty()) return Error("unexpected character");
    char* end = nullptr;
    long long integer = std::strtoll(token.c_str(), &end, 10);
    if (end == token.c_str() + token.size()) return Json(integer);
    double real = std::strtod(token.c_str(), &end);
    if (end == token.c_str() + token.size()) return Json(real);
    return Error(absl::StrCat("not a literal: ", token));
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

// A test value may be a string or (in some datasets) a list of lines.
absl::StatusOr<std::string> TestText(const Json& value, const JsonPath& path) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_array()) {
    std::string text;
    for (const Json& line : value) {
      if (!line.is_string()) return path.Error("expected a string or a list of strings");
      absl::StrAppend(&text, line.get<std::string>(), "\n");
    }
    return text;
  }
  return path.Error(absl::StrCat("expected a string, got ", JsonTypeName(value)));
}

}  // namespace

absl::StatusOr<Json> ParsePythonLiteral(absl::string_view text) {
  return PyParser(text).ParseAll();
}

absl::StatusOr<std::vector<TestCase>> ParseTests(const Json& tests, const JsonPath& path) {
  if (tests.is_string()) {
    const std::string& text = tests.get_ref<const std::string&>();
    absl::StatusOr<Json> parsed = ParseJson(text, path.ToString());
    if (!parsed.ok()) parsed = ParsePythonLiteral(text);
    if (!parsed.ok()) {
      return path.Error(absl::StrCat("a string that is neither JSON nor a Python literal (",
                                     parsed.status().message(), ")"));
    }
    if (parsed->is_string()) return path.Error("a string holding a string");
    return ParseTests(*parsed, path);
  }
  std::vector<TestCase> cases;
  if (tests.is_object()) {
    ASSIGN_OR_RETURN(const Json* inputs, GetArray(tests, "inputs", path));
    ASSIGN_OR_RETURN(const Json* outputs, GetArray(tests, "outputs", path));
    if (inputs->size() != outputs->size()) {
      return path.Error(absl::StrCat(inputs->size(), " inputs but ", outputs->size(), " outputs"));
    }
    for (size_t i = 0; i < inputs->size(); ++i) {
      TestCase test;
      ASSIGN_OR_RETURN(test.input, TestText((*inputs)[i], path.Key("inputs").Index(i)));
      ASSIGN_OR_RETURN(test.output, TestText((*outputs)[i], path.Key("outputs").Index(i)));
      cases.push_back(std::move(test));
    }
  } else if (tests.is_array()) {
    for (size_t i = 0; i < tests.size(); ++i) {
      JsonPath at = path.Index(i);
      RETURN_IF_ERROR(ExpectObject(tests[i], at));
      auto input = tests[i].find("input");
      auto output = tests[i].find("output");
      if (input == tests[i].end()) return at.Error("missing required field \"input\"");
      if (output == tests[i].end()) return at.Error("missing required field \"output\"");
      TestCase test;
      ASSIGN_OR_RETURN(test.input, TestText(*input, at.Key("input")));
      ASSIGN_OR_RETURN(test.output, TestText(*output, at.Key("output")));
      cases.push_back(std::move(test));
    }
  } else {
    return path.Error(absl::StrCat("expected a list of tests, got ", JsonTypeName(tests)));
  }
  if (cases.empty()) return path.Error("no tests");
  return cases;
}

// ---------------------------------------------------------------------------
// Output comparison.

absl::StatusOr<CompareMode> ParseCompareMode(absl::string_view name) {
  if (name == "tokens") return CompareMode::kTokens;
  if (name == "exact") return CompareMode::kExact;
  if (name == "float") return CompareMode::kFloat;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown compare mode \"", name, "\" (expected one of: tokens, exact, float)"));
}

namespace {

std::vector<absl::string_view> Tokens(absl::string_view text) {
  return absl::StrSplit(text, absl::ByAnyChar(" \t\n\r\v\f"), absl::SkipEmpty());
}

std::string NormalizeExact(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
    out.push_back(text[i]);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\r')) {
    out.pop_back();
  }
  return out;
}

bool ParseDouble(absl::string_view token, double* value) {
  std::string copy(token);
  char* end = nullptr;
  *value = std::strtod(copy.c_str(), &end);
  return end == copy.c_str() + copy.size() && !copy.empty();
}

}  // namespace

bool OutputsMatch(absl::string_view actual, absl::string_view expected, CompareMode mode,
                  double tolerance) {
  if (mode == CompareMode::kExact) return NormalizeExact(actual) == NormalizeExact(expected);
  std::vector<absl::string_view> a = Tokens(actual);
  std::vector<absl::string_view> e = Tokens(expected);
  if (a.size() != e.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == e[i]) continue;
    if (mode != CompareMode::kFloat) return false;
    double x = 0, y = 0;
    if (!ParseDouble(a[i], &x) || !ParseDouble(e[i], &y)) return false;
    if (std::isnan(x) || std::isnan(y)) return false;
    if (std::fabs(x - y) > tolerance * std::max(1.0, std::fabs(y))) return false;
  }
  return true;
}

}  // namespace cascade::verifier
