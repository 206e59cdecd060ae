#include "common/json_util.h"

#include <catch2/catch.hpp>

namespace cascade {
namespace {

TEST_CASE("parse errors name the source, line and column") {
  auto parsed = ParseJson("{\n  \"a\": 1,\n  \"b\": tru\n}", "cascade.json");
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(parsed.status().message()),
             Catch::StartsWith("cascade.json: line 3 column"));
}

TEST_CASE("getters name the JSON path of a wrong type") {
  Json doc = Json::parse(R"({"stages": [{"reward": {"type": 3}}]})");
  JsonPath path("cascade.json");
  const Json& reward = doc["stages"][0]["reward"];
  auto type = GetString(reward, "type", path.Key("stages").Index(0).Key("reward"));
  REQUIRE_FALSE(type.ok());
  CHECK(type.status().message() ==
        "cascade.json: stages[0].reward.type: expected a string, got number");
}

TEST_CASE("required fields report their own path when missing") {
  Json doc = Json::parse(R"({"a": {}})");
  auto value = GetNumber(doc["a"], "precision", JsonPath().Key("a"));
  REQUIRE_FALSE(value.ok());
  CHECK(value.status().message() == "a.precision: required field is missing");
}

TEST_CASE("optional getters fall back on missing or null and reject wrong types") {
  Json doc = Json::parse(R"({"n": null, "i": 7, "f": 2.5, "s": "x"})");
  CHECK(*GetIntOr(doc, "missing", JsonPath(), 4) == 4);
  CHECK(*GetIntOr(doc, "n", JsonPath(), 4) == 4);
  CHECK(*GetIntOr(doc, "i", JsonPath(), 4) == 7);
  CHECK_FALSE(GetIntOr(doc, "f", JsonPath(), 4).ok());
  CHECK(*GetNumberOr(doc, "f", JsonPath(), 0) == 2.5);
  CHECK_FALSE(GetBoolOr(doc, "s", JsonPath(), false).ok());
}

}  // namespace
}  // namespace cascade
