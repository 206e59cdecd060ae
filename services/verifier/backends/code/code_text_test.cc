#include "services/verifier/backends/code/code_text.h"

#include <catch2/catch.hpp>

namespace cascade::verifier {
namespace {

const std::vector<std::string> kPython = {"python", "python3", "py"};

TEST_CASE("extraction takes the last block tagged with the language") {
  std::string response =
      "Idea first.\n```python\nprint(1)\n```\nBetter:\n```python\nprint(2)\n```\n"
      "And in C++:\n```cpp\nint main(){}\n```\n";
  CHECK(ExtractProgram(response, kPython) == "print(2)\n");
  CHECK(ExtractProgram(response, {"cpp"}) == "int main(){}\n");
}

TEST_CASE("extraction falls back to untagged blocks and then to the raw response") {
  CHECK(ExtractProgram("```\nprint(3)\n```", kPython) == "print(3)\n");
  CHECK(ExtractProgram("```js\nx\n```", kPython) == "x\n");
  CHECK(ExtractProgram("print(4)\n", kPython) == "print(4)\n");
}

TEST_CASE("extraction ignores the reasoning before </think> and keeps cut-off blocks") {
  CHECK(ExtractProgram("<think>```python\nprint(0)\n```</think>\n```python\nprint(5)\n```",
                       kPython) == "print(5)\n");
  CHECK(ExtractProgram("```python\nprint(6)\n", kPython) == "print(6)\n");
}

TEST_CASE("tests parse from a list, from inputs/outputs, and from a Python repr string") {
  JsonPath path("t");
  auto list = ParseTests(Json::parse(R"([{"input":"1\n","output":"2\n"}])"), path);
  REQUIRE(list.ok());
  CHECK(list->at(0).output == "2\n");
  auto columns = ParseTests(Json::parse(R"({"inputs":["a","b"],"outputs":["c","d"]})"), path);
  REQUIRE(columns.ok());
  CHECK(columns->size() == 2);
  CHECK(columns->at(1).input == "b");
  auto repr = ParseTests(Json("[{'input': '3\\n1 2\\'x\\'\\n', 'output': \"it's\\n\"}]"), path);
  REQUIRE(repr.ok());
  CHECK(repr->at(0).input == "3\n1 2'x'\n");
  CHECK(repr->at(0).output == "it's\n");
}

TEST_CASE("malformed tests are errors naming the JSON path") {
  JsonPath path("in.jsonl: line 3");
  auto missing = ParseTests(Json::parse(R"([{"input":"1"}])"), path.Key("tests"));
  CHECK(missing.status().message() ==
        "in.jsonl: line 3: tests[0]: missing required field \"output\"");
  CHECK_FALSE(ParseTests(Json::array(), path).ok());
  CHECK_FALSE(ParseTests(Json("[{'input': 'unterminated"), path).ok());
  CHECK_FALSE(ParseTests(Json(42), path).ok());
}

TEST_CASE("Python literals cover numbers, constants, tuples and escapes") {
  auto value = ParsePythonLiteral("{'a': (1, -2.5, True, None), 'b': '\\u00e9\\x41'}");
  REQUIRE(value.ok());
  CHECK(value->at("a") == Json::parse("[1, -2.5, true, null]"));
  CHECK(value->at("b") == "\xc3\xa9" "A");
}

TEST_CASE("token comparison ignores whitespace layout only") {
  CHECK(OutputsMatch("1 2\n3\n", "1\n2 3", CompareMode::kTokens, 0));
  CHECK_FALSE(OutputsMatch("1 2 3 4", "1 2 3", CompareMode::kTokens, 0));
  CHECK_FALSE(OutputsMatch("1.0", "1", CompareMode::kTokens, 0));
}

TEST_CASE("exact comparison tolerates only line-ending and trailing-newline differences") {
  CHECK(OutputsMatch("a b\r\nc\n\n", "a b\nc", CompareMode::kExact, 0));
  CHECK_FALSE(OutputsMatch("a  b\nc", "a b\nc", CompareMode::kExact, 0));
}

TEST_CASE("float comparison accepts numbers within the tolerance") {
  CHECK(OutputsMatch("0.3333334 x", "0.333333 x", CompareMode::kFloat, 1e-6));
  CHECK(OutputsMatch("1000000.5", "1000000", CompareMode::kFloat, 1e-6));
  CHECK_FALSE(OutputsMatch("0.3334", "0.3333", CompareMode::kFloat, 1e-6));
  CHECK_FALSE(OutputsMatch("nan", "0.5", CompareMode::kFloat, 1e-6));
  CHECK_FALSE(OutputsMatch("y", "x", CompareMode::kFloat, 1e-6));
}

TEST_CASE("unknown compare modes are rejected with the valid ones listed") {
  auto mode = ParseCompareMode("fuzzy");
  CHECK(mode.status().message() ==
        "unknown compare mode \"fuzzy\" (expected one of: tokens, exact, float)");
}

}  // namespace
}  // namespace cascade::verifier
