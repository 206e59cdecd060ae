#include "model/json.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <unistd.h>

namespace cascade::model {
namespace {

const Json::Array& EmptyArray() {
  static const Json::Array* kEmpty = new Json::Array();
  return *kEmpty;
}
const Json::Object& EmptyObject() {
  static const Json::Object* kEmpty = new Json::Object();
  return *kEmpty;
}

// Recursive-descent parser over a string_view. Depth is bounded so that a
// hostile header ("[[[[...") cannot overflow the stack.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  StatusOr<Json> ParseDocument() {
    Json value;
    Status s = ParseValue(&value, 0);
    if (!s.ok()) return s;
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected trailing characters");
    return value;
  }

 private:
  static constexpr int kMaxDepth = 512;

  Status Error(const std::string& what) const {
    return InvalidArgumentError("JSON parse error at byte " + std::to_string(pos_) + ": " + what);
  }

  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool Consume(std::string_view word) {
    if (text_.substr(pos_, word.size()) == word) {
      pos_ += word.size();
      return true;
    }
    return false;
  }

  Status ParseValue(Json* out, int depth) {
    if (depth > kMaxDepth) return Error("nesting too deep");
    SkipSpace();
    if (pos_ >= text_.size()) return Error("unexpected end of input");
    char c = text_[pos_];
    if (c == '{') return ParseObject(out, depth);
    if (c == '[') return ParseArray(out, depth);
    if (c == '"') {
      std::string s;
      Status st = ParseString(&s);
      if (!st.ok()) return st;
      *out = Json(std::move(s));
      return OkStatus();
    }
    if (Consume("true")) {
      *out = Json(true);
      return OkStatus();
    }
    if (Consume("false")) {
      *out = Json(false);
      return OkStatus();
    }
    if (Consume("null")) {
      *out = Json();
      return OkStatus();
    }
    // Python's json module writes these for non-finite floats; accept them.
    if (Consume("NaN")) {
      *out = Json(std::nan(""));
      return OkStatus();
    }
    if (Consume("Infinity")) {
      *out = Json(HUGE_VAL);
      return OkStatus();
    }
    if (Consume("-Infinity")) {
      *out = Json(-HUGE_VAL);
      return OkStatus();
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
    return Error(std::string("unexpected character '") + c + "'");
  }

  Status ParseNumber(Json* out) {
    size_t start = pos_;
    bool is_float = false;
    if (text_[pos_] == '-') ++pos_;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c >= '0' && c <= '9') {
        ++pos_;
      } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
        is_float = true;
        ++pos_;
      } else {
        break;
      }
    }
    std::string token(text_.substr(start, pos_ - start));
    if (token == "-") return Error("bad number");
    errno = 0;
    char* end = nullptr;
    if (!is_float) {
      long long v = std::strtoll(token.c_str(), &end, 10);
      if (errno == 0 && end == token.c_str() + token.size()) {
        *out = Json(static_cast<int64_t>(v));
        return OkStatus();
      }
      errno = 0;  // Too large for int64: fall through to double.
    }
    double d = std::strtod(token.c_str(), &end);
    if (end != token.c_str() + token.size()) return Error("bad number '" + token + "'");
    *out = Json(d);
    return OkStatus();
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

  Status ParseHex4(uint32_t* cp) {
    if (pos_ + 4 > text_.size()) return Error("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= c - '0';
      } else if (c >= 'a' && c <= 'f') {
        v |= c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        v |= c - 'A' + 10;
      } else {
        return Error("bad \\u escape");
      }
    }
    *cp = v;
    return OkStatus();
  }

  Status ParseString(std::string* out) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= text_.size()) return Error("unterminated string");
      char c = text_[pos_++];
      if (c == '"') return OkStatus();
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) return Error("unterminated escape");
      char e = text_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          Status s = ParseHex4(&cp);
          if (!s.ok()) return s;
          if (cp >= 0xD800 && cp < 0xDC00 && text_.substr(pos_, 2) == "\\u") {
            pos_ += 2;
            uint32_t lo = 0;
            s = ParseHex4(&lo);
            if (!s.ok()) return s;
            if (lo >= 0xDC00 && lo < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else {
              AppendUtf8(cp, out);
              cp = lo;
            }
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return Error(std::string("bad escape '\\") + e + "'");
      }
    }
  }

  Status ParseArray(Json* out, int depth) {
    ++pos_;
    Json::Array items;
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      *out = Json(std::move(items));
      return OkStatus();
    }
    while (true) {
      Json item;
      Status s = ParseValue(&item, depth + 1);
      if (!s.ok()) return s;
      items.push_back(std::move(item));
      SkipSpace();
      if (pos_ >= text_.size()) return Error("unterminated array");
      char c = text_[pos_++];
      if (c == ']') break;
      if (c != ',') return Error("expected ',' or ']' in array");
    }
    *out = Json(std::move(items));
    return OkStatus();
  }

  Status ParseObject(Json* out, int depth) {
    ++pos_;
    Json::Object members;
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      *out = Json(std::move(members));
      return OkStatus();
    }
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '"') return Error("expected a string key");
      std::string key;
      Status s = ParseString(&key);
      if (!s.ok()) return s;
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != ':') return Error("expected ':' after key");
      ++pos_;
      Json value;
      s = ParseValue(&value, depth + 1);
      if (!s.ok()) return s;
      members[std::move(key)] = std::move(value);
      SkipSpace();
      if (pos_ >= text_.size()) return Error("unterminated object");
      char c = text_[pos_++];
      if (c == '}') break;
      if (c != ',') return Error("expected ',' or '}' in object");
    }
    *out = Json(std::move(members));
    return OkStatus();
  }

  std::string_view text_;
  size_t pos_ = 0;
};

void EscapeString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

}  // namespace

Json::Json(Array a) : type_(Type::kArray), array_(std::make_unique<Array>(std::move(a))) {}
Json::Json(Object o) : type_(Type::kObject), object_(std::make_unique<Object>(std::move(o))) {}

Json::Json(const Json& other)
    : type_(other.type_),
      bool_(other.bool_),
      int_(other.int_),
      double_(other.double_),
      string_(other.string_),
      array_(other.array_ ? std::make_unique<Array>(*other.array_) : nullptr),
      object_(other.object_ ? std::make_unique<Object>(*other.object_) : nullptr) {}

Json& Json::operator=(const Json& other) {
  if (this != &other) {
    Json copy(other);
    *this = std::move(copy);
  }
  return *this;
}

int64_t Json::as_int() const {
  if (type_ == Type::kInt) return int_;
  if (type_ == Type::kDouble) return static_cast<int64_t>(double_);
  return 0;
}

double Json::as_double() const {
  if (type_ == Type::kDouble) return double_;
  if (type_ == Type::kInt) return static_cast<double>(int_);
  return 0;
}

const std::string& Json::as_string() const {
  static const std::string* kEmpty = new std::string();
  return type_ == Type::kString ? string_ : *kEmpty;
}

const Json::Array& Json::as_array() const {
  return type_ == Type::kArray ? *array_ : EmptyArray();
}

const Json::Object& Json::as_object() const {
  return type_ == Type::kObject ? *object_ : EmptyObject();
}

Json::Array& Json::mutable_array() {
  if (type_ != Type::kArray) *this = Json(Array{});
  return *array_;
}

Json::Object& Json::mutable_object() {
  if (type_ != Type::kObject) *this = Json(Object{});
  return *object_;
}

const Json* Json::Find(std::string_view key) const {
  if (type_ != Type::kObject) return nullptr;
  auto it = object_->find(std::string(key));
  return it == object_->end() ? nullptr : &it->second;
}

Json& Json::operator[](const std::string& key) { return mutable_object()[key]; }

void Json::push_back(Json v) { mutable_array().push_back(std::move(v)); }

std::string Json::Dump(int indent) const {
  std::string out;
  DumpTo(&out, indent, 0);
  return out;
}

void Json::DumpTo(std::string* out, int indent, int depth) const {
  auto newline = [&](int d) {
    if (indent < 0) return;
    out->push_back('\n');
    out->append(static_cast<size_t>(indent * d), ' ');
  };
  switch (type_) {
    case Type::kNull: out->append("null"); break;
    case Type::kBool: out->append(bool_ ? "true" : "false"); break;
    case Type::kInt: out->append(std::to_string(int_)); break;
    case Type::kDouble: {
      if (!std::isfinite(double_)) {
        // JSON has no spelling for these; Python's reader accepts this one.
        out->append(std::isnan(double_) ? "NaN" : (double_ > 0 ? "Infinity" : "-Infinity"));
        break;
      }
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.17g", double_);
      // Shortest form that round-trips, so 1e-06 stays 1e-06 rather than 9.99..e-07.
      for (int prec = 1; prec <= 17; ++prec) {
        char trial[32];
        std::snprintf(trial, sizeof(trial), "%.*g", prec, double_);
        if (std::strtod(trial, nullptr) == double_) {
          std::memcpy(buf, trial, sizeof(trial));
          break;
        }
      }
      std::string s(buf);
      // Integral values print in full ("1000000.0", as Python writes them).
      if (std::fabs(double_) < 1e15 && double_ == std::floor(double_)) {
        std::snprintf(buf, sizeof(buf), "%.1f", double_);
        s = buf;
      }
      // Keep floats recognisable as floats ("1.0", not "1") for Python readers.
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
      out->append(s);
      break;
    }
    case Type::kString: EscapeString(string_, out); break;
    case Type::kArray: {
      out->push_back('[');
      bool first = true;
      for (const Json& v : *array_) {
        if (!first) out->push_back(',');
        first = false;
        newline(depth + 1);
        v.DumpTo(out, indent, depth + 1);
      }
      if (!array_->empty()) newline(depth);
      out->push_back(']');
      break;
    }
    case Type::kObject: {
      out->push_back('{');
      bool first = true;
      for (const auto& [k, v] : *object_) {
        if (!first) out->push_back(',');
        first = false;
        newline(depth + 1);
        EscapeString(k, out);
        out->append(indent < 0 ? ":" : ": ");
        v.DumpTo(out, indent, depth + 1);
      }
      if (!object_->empty()) newline(depth);
      out->push_back('}');
      break;
    }
  }
}

StatusOr<Json> Json::Parse(std::string_view text) { return Parser(text).ParseDocument(); }

const char* JsonTypeName(Json::Type type) {
  switch (type) {
    case Json::Type::kNull: return "null";
    case Json::Type::kBool: return "boolean";
    case Json::Type::kInt: return "integer";
    case Json::Type::kDouble: return "number";
    case Json::Type::kString: return "string";
    case Json::Type::kArray: return "array";
    case Json::Type::kObject: return "object";
  }
  return "unknown";
}

StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return DataLossError(path + ": read failed");
  return ss.str();
}

Status WriteStringToFile(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return FailedPreconditionError(tmp + ": cannot create: " + std::strerror(errno));
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      return DataLossError(tmp + ": write failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return FailedPreconditionError(path + ": rename failed: " + std::strerror(errno));
  }
  return OkStatus();
}

}  // namespace cascade::model
