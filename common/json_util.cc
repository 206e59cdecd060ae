#include "common/json_util.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace cascade {

JsonPath JsonPath::Key(absl::string_view key) const {
  JsonPath next = *this;
  if (!next.path_.empty()) next.path_ += '.';
  absl::StrAppend(&next.path_, key);
  return next;
}

JsonPath JsonPath::Index(size_t index) const {
  JsonPath next = *this;
  absl::StrAppend(&next.path_, "[", index, "]");
  return next;
}

std::string JsonPath::ToString() const {
  if (path_.empty()) return source_.empty() ? "<root>" : source_;
  if (source_.empty()) return path_;
  return absl::StrCat(source_, ": ", path_);
}

absl::Status JsonPath::Error(absl::string_view message) const {
  return absl::InvalidArgumentError(absl::StrCat(ToString(), ": ", message));
}

namespace {

// Converts a byte offset into 1-based line and column.
std::pair<size_t, size_t> LineColumn(absl::string_view text, size_t offset) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

}  // namespace

absl::StatusOr<Json> ParseJson(absl::string_view text, absl::string_view source) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    // nlohmann reports the byte after the fault; point at the fault itself.
    size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    auto [line, column] = LineColumn(text, offset);
    std::string reason = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] parse error at line ..., column ...: " prefix.
    if (size_t colon = reason.find(": "); colon != std::string::npos) {
      reason = reason.substr(colon + 2);
    }
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": line ", line, " column ", column, ": ", reason));
  }
}

absl::StatusOr<Json> ReadJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParseJson(buffer.str(), path);
}

std::string JsonTypeName(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "object";
    case Json::value_t::array: return "array";
    case Json::value_t::string: return "string";
    case Json::value_t::boolean: return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float: return "number";
    default: return "unknown";
  }
}

absl::Status ExpectObject(const Json& object, const JsonPath& path) {
  if (object.is_object()) return absl::OkStatus();
  return path.Error(absl::StrCat("expected an object, got ", JsonTypeName(object)));
}

namespace {

// Finds `key` in `object`; nullptr when missing or null.
absl::StatusOr<const Json*> Find(const Json& object, absl::string_view key,
                                 const JsonPath& path) {
  if (!object.is_object()) {
    return path.Error(absl::StrCat("expected an object, got ", JsonTypeName(object)));
  }
  auto it = object.find(std::string(key));
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::Status WrongType(const Json& value, absl::string_view expected,
                       const JsonPath& path) {
  return path.Error(absl::StrCat("expected ", expected, ", got ", JsonTypeName(value)));
}

absl::Status Missing(absl::string_view key, const JsonPath& path) {
  return path.Key(key).Error("required field is missing");
}

}  // namespace

#define CASCADE_JSON_GETTER_(Name, Type, check, expected, convert)                    \
  absl::StatusOr<Type> Name##Or(const Json& object, absl::string_view key,             \
                                const JsonPath& path, Type fallback) {                 \
    auto found = Find(object, key, path);                                              \
    if (!found.ok()) return found.status();                                            \
    if (*found == nullptr) return fallback;                                            \
    const Json& value = **found;                                                       \
    if (!(check)) return WrongType(value, expected, path.Key(key));                    \
    return convert;                                                                    \
  }                                                                                    \
  absl::StatusOr<Type> Name(const Json& object, absl::string_view key,                 \
                            const JsonPath& path) {                                    \
    auto found = Find(object, key, path);                                              \
    if (!found.ok()) return found.status();                                            \
    if (*found == nullptr) return Missing(key, path);                                  \
    const Json& value = **found;                                                       \
    if (!(check)) return WrongType(value, expected, path.Key(key));                    \
    return convert;                                                                    \
  }

CASCADE_JSON_GETTER_(GetString, std::string, value.is_string(), "a string",
                     value.get<std::string>())
CASCADE_JSON_GETTER_(GetNumber, double, value.is_number(), "a number", value.get<double>())
CASCADE_JSON_GETTER_(GetInt, int64_t,
                     value.is_number_integer() ||
                         (value.is_number_float() &&
                          value.get<double>() == static_cast<double>(
                                                     static_cast<int64_t>(value.get<double>()))),
                     "an integer",
                     value.is_number_integer() ? value.get<int64_t>()
                                               : static_cast<int64_t>(value.get<double>()))
CASCADE_JSON_GETTER_(GetBool, bool, value.is_boolean(), "a boolean", value.get<bool>())

#undef CASCADE_JSON_GETTER_

absl::StatusOr<const Json*> GetObject(const Json& object, absl::string_view key,
                                      const JsonPath& path) {
  auto found = Find(object, key, path);
  if (!found.ok()) return found.status();
  if (*found == nullptr) return Missing(key, path);
  if (!(*found)->is_object()) return WrongType(**found, "an object", path.Key(key));
  return *found;
}

absl::StatusOr<const Json*> GetArray(const Json& object, absl::string_view key,
                                     const JsonPath& path) {
  auto found = Find(object, key, path);
  if (!found.ok()) return found.status();
  if (*found == nullptr) return Missing(key, path);
  if (!(*found)->is_array()) return WrongType(**found, "an array", path.Key(key));
  return *found;
}

}  // namespace cascade
