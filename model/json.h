// A small JSON value with a parser and a writer.
//
// model/ may depend only on libtorch and the standard library (it must build
// against a pip PyTorch on a GPU box that has nothing else installed), so it
// carries its own reader for config.json, safetensors headers, tokenizer.json
// and JSONL rows. It handles full JSON (escapes, \u surrogate pairs, nesting),
// keeps integers exact up to 64 bits, and reports parse errors with the byte
// offset. Objects keep their keys sorted (std::map), which is what the
// safetensors and Hugging Face writers want anyway.
//
// Thread-safety: a Json value is a plain value type; concurrent const use is safe.
#ifndef CASCADE_MODEL_JSON_H_
#define CASCADE_MODEL_JSON_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/status.h"

namespace cascade::model {

class Json {
 public:
  enum class Type { kNull, kBool, kInt, kDouble, kString, kArray, kObject };
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json>;

  Json() = default;
  Json(std::nullptr_t) {}                                // NOLINT
  Json(bool b) : type_(Type::kBool), bool_(b) {}         // NOLINT
  Json(int v) : type_(Type::kInt), int_(v) {}            // NOLINT
  Json(int64_t v) : type_(Type::kInt), int_(v) {}        // NOLINT
  Json(uint64_t v) : type_(Type::kInt), int_(static_cast<int64_t>(v)) {}  // NOLINT
  Json(double v) : type_(Type::kDouble), double_(v) {}   // NOLINT
  Json(const char* s) : type_(Type::kString), string_(s) {}       // NOLINT
  Json(std::string s) : type_(Type::kString), string_(std::move(s)) {}  // NOLINT
  Json(Array a);                                         // NOLINT
  Json(Object o);                                        // NOLINT
  Json(const Json& other);
  Json& operator=(const Json& other);
  Json(Json&&) noexcept = default;
  Json& operator=(Json&&) noexcept = default;

  static Json MakeArray() { return Json(Array{}); }
  static Json MakeObject() { return Json(Object{}); }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_int() const { return type_ == Type::kInt; }
  bool is_number() const { return type_ == Type::kInt || type_ == Type::kDouble; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  // Accessors assume the type was checked; on a mismatch they return a neutral
  // value (false, 0, "", empty) rather than crash, so callers that forgot to
  // check still fail on validation instead of on memory.
  bool as_bool() const { return type_ == Type::kBool && bool_; }
  int64_t as_int() const;
  double as_double() const;
  const std::string& as_string() const;
  const Array& as_array() const;
  const Object& as_object() const;
  Array& mutable_array();
  Object& mutable_object();

  // Object access: nullptr when this is not an object or the key is absent.
  const Json* Find(std::string_view key) const;
  // Sets a key, turning a null value into an object first.
  Json& operator[](const std::string& key);
  void push_back(Json v);

  // Compact (indent < 0) or pretty (indent >= 0) serialization.
  std::string Dump(int indent = -1) const;

  static StatusOr<Json> Parse(std::string_view text);

 private:
  void DumpTo(std::string* out, int indent, int depth) const;

  Type type_ = Type::kNull;
  bool bool_ = false;
  int64_t int_ = 0;
  double double_ = 0;
  std::string string_;
  // Pointers because Json is incomplete here; copies are deep.
  std::unique_ptr<Array> array_;
  std::unique_ptr<Object> object_;
};

// Human name of a JSON type, for error messages ("expected integer, got string").
const char* JsonTypeName(Json::Type type);

// Reads a whole file; NotFound when it cannot be opened.
StatusOr<std::string> ReadFileToString(const std::string& path);
// Writes a file atomically (temporary file in the same folder, then rename).
Status WriteStringToFile(const std::string& path, std::string_view data);

}  // namespace cascade::model

#endif  // CASCADE_MODEL_JSON_H_
