// JSON helpers whose errors name the JSON path at fault, e.g.
//   cascade.json: stages[2].reward.type: expected a string, got number
//
// A JsonPath is a cheap value: "$" prefix omitted, keys joined with '.',
// indices as [i]. The helpers never throw; nlohmann exceptions are caught at
// parse time and turned into INVALID_ARGUMENT with line/column.
#ifndef CASCADE_COMMON_JSON_UTIL_H_
#define CASCADE_COMMON_JSON_UTIL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace cascade {

using Json = nlohmann::json;

class JsonPath {
 public:
  JsonPath() = default;
  explicit JsonPath(std::string source) : source_(std::move(source)) {}

  JsonPath Key(absl::string_view key) const;
  JsonPath Index(size_t index) const;
  // "file.json: a.b[2]" or "a.b[2]" when no source is set; "<root>" for the root.
  std::string ToString() const;
  // INVALID_ARGUMENT "<path>: <message>".
  absl::Status Error(absl::string_view message) const;

 private:
  std::string source_;
  std::string path_;
};

// Parses text; errors say "<source>: line L column C: <reason>".
absl::StatusOr<Json> ParseJson(absl::string_view text, absl::string_view source);
absl::StatusOr<Json> ReadJsonFile(const std::string& path);

// Name of a JSON type for messages ("string", "number", "object", ...).
std::string JsonTypeName(const Json& value);

// Required fields: error when missing or of the wrong type.
absl::StatusOr<std::string> GetString(const Json& object, absl::string_view key,
                                      const JsonPath& path);
absl::StatusOr<double> GetNumber(const Json& object, absl::string_view key,
                                 const JsonPath& path);
absl::StatusOr<int64_t> GetInt(const Json& object, absl::string_view key,
                               const JsonPath& path);
absl::StatusOr<bool> GetBool(const Json& object, absl::string_view key,
                             const JsonPath& path);
absl::StatusOr<const Json*> GetObject(const Json& object, absl::string_view key,
                                      const JsonPath& path);
absl::StatusOr<const Json*> GetArray(const Json& object, absl::string_view key,
                                     const JsonPath& path);

// Optional fields: the default when missing or null, error when of the wrong type.
absl::StatusOr<std::string> GetStringOr(const Json& object, absl::string_view key,
                                        const JsonPath& path, std::string fallback);
absl::StatusOr<double> GetNumberOr(const Json& object, absl::string_view key,
                                   const JsonPath& path, double fallback);
absl::StatusOr<int64_t> GetIntOr(const Json& object, absl::string_view key,
                                 const JsonPath& path, int64_t fallback);
absl::StatusOr<bool> GetBoolOr(const Json& object, absl::string_view key,
                               const JsonPath& path, bool fallback);

// Error unless `object` is a JSON object.
absl::Status ExpectObject(const Json& object, const JsonPath& path);

}  // namespace cascade

#endif  // CASCADE_COMMON_JSON_UTIL_H_
