#include "tokenizer/tokenize_command.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/json_util.h"
#include "common/status_macros.h"

namespace cascade::tokenizer {
namespace {

absl::StatusOr<Json> EncodeLine(const Tokenizer& tokenizer, const Json& row, const JsonPath& path) {
  ASSIGN_OR_RETURN(std::string text, GetString(row, "text", path));
  ASSIGN_OR_RETURN(bool allow_special, GetBoolOr(row, "allow_special", path, true));
  return Json{{"ids", tokenizer.Encode(text, allow_special)}};
}

absl::StatusOr<Json> DecodeLine(const Tokenizer& tokenizer, const Json& row, const JsonPath& path) {
  ASSIGN_OR_RETURN(const Json* ids_json, GetArray(row, "ids", path));
  ASSIGN_OR_RETURN(bool skip_special, GetBoolOr(row, "skip_special", path, false));
  std::vector<int32_t> ids;
  ids.reserve(ids_json->size());
  for (size_t i = 0; i < ids_json->size(); ++i) {
    const Json& id = (*ids_json)[i];
    // Unknown ids would silently vanish from the text: refuse them here.
    const int64_t value = id.is_number_integer() ? id.get<int64_t>() : -1;
    if (value < 0 || value > INT32_MAX || !tokenizer.TokenString(static_cast<int32_t>(value))) {
      return path.Key("ids").Index(i).Error(absl::StrCat(
          "not a token id of this tokenizer (vocab size ", tokenizer.vocab_size(), "): ", id.dump()));
    }
    ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  // Decode() returns valid UTF-8 (U+FFFD for ids cut mid-character), so the
  // output line is always valid JSON.
  return Json{{"text", tokenizer.Decode(ids, skip_special)}};
}

}  // namespace

absl::Status RunTokenizeCommand(const Tokenizer& tokenizer, std::istream& in, std::ostream& out,
                                std::ostream& err, bool decode, absl::string_view input_name) {
  std::string line;
  size_t line_number = 0;
  size_t bad_lines = 0;
  std::string first_error;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string source = absl::StrCat(input_name, ":", line_number);
    absl::StatusOr<Json> result = ParseJson(line, source);
    if (result.ok()) {
      const JsonPath path(source);
      absl::Status is_object = ExpectObject(*result, path);
      result = !is_object.ok() ? absl::StatusOr<Json>(is_object)
               : decode        ? DecodeLine(tokenizer, *result, path)
                               : EncodeLine(tokenizer, *result, path);
    }
    if (!result.ok()) {
      ++bad_lines;
      const std::string message(result.status().message());
      if (first_error.empty()) first_error = message;
      err << message << "\n";
      out << Json{{"error", message}}.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
      continue;
    }
    out << result->dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(input_name, ": read error after line ", line_number));
  if (bad_lines > 0) {
    return absl::InvalidArgumentError(absl::StrCat(bad_lines, " of ", line_number,
                                                   " lines malformed; first: ", first_error));
  }
  return absl::OkStatus();
}

}  // namespace cascade::tokenizer
