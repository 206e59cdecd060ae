#include "model/json.h"

#include <catch2/catch.hpp>

namespace cascade::model {
namespace {

TEST_CASE("json parses nested documents and dumps them back identically", "[model][json]") {
  const std::string text =
      R"({"a":[1,-2,3.5,true,false,null],"b":{"c":"x\"y\\z\n"},"big":9007199254740993})";
  StatusOr<Json> j = Json::Parse(text);
  REQUIRE(j.ok());
  CHECK(j->Find("a")->as_array().size() == 6);
  CHECK(j->Find("a")->as_array()[1].as_int() == -2);
  CHECK(j->Find("a")->as_array()[2].as_double() == 3.5);
  CHECK(j->Find("b")->Find("c")->as_string() == "x\"y\\z\n");
  // Integers above 2^53 stay exact (safetensors offsets can be large).
  CHECK(j->Find("big")->as_int() == 9007199254740993LL);
  CHECK(j->Dump() == text);
}

TEST_CASE("json decodes unicode escapes including surrogate pairs", "[model][json]") {
  StatusOr<Json> j = Json::Parse(R"(["\u00e9\u4e2d\ud83d\ude00"])");
  REQUIRE(j.ok());
  CHECK(j->as_array()[0].as_string() == "\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80");
}

TEST_CASE("json reports the byte offset of a syntax error", "[model][json]") {
  StatusOr<Json> j = Json::Parse(R"({"a": [1, 2,, 3]})");
  REQUIRE_FALSE(j.ok());
  CHECK(j.status().message().find("byte 12") != std::string::npos);
  CHECK_FALSE(Json::Parse("[1, 2").ok());
  CHECK_FALSE(Json::Parse("{\"a\" 1}").ok());
  CHECK_FALSE(Json::Parse("[1] x").ok());
  CHECK_FALSE(Json::Parse(std::string(100000, '[')).ok());
}

TEST_CASE("json writes floats that read back as floats", "[model][json]") {
  Json j = Json::MakeObject();
  j["eps"] = 1e-6;
  j["one"] = 1.0;
  j["theta"] = 1000000.0;
  CHECK(j.Dump() == R"({"eps":1e-06,"one":1.0,"theta":1000000.0})");
  StatusOr<Json> back = Json::Parse(j.Dump(2));
  REQUIRE(back.ok());
  CHECK(back->Find("eps")->as_double() == 1e-6);
}

}  // namespace
}  // namespace cascade::model
