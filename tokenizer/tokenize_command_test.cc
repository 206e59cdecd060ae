#include "tokenizer/tokenize_command.h"

#include <sstream>

#include "absl/strings/str_split.h"

#include <catch2/catch.hpp>

#include "tokenizer/test_tokenizers.h"

namespace cascade::tokenizer {
namespace {

using testing::Qwen3;

TEST_CASE("tokenize turns text lines into id lines and decode turns them back") {
  const Tokenizer& tok = Qwen3();
  std::istringstream in("{\"text\": \"Hello world\"}\n\n{\"text\": \"<|im_end|>\", \"allow_special\": false}\n");
  std::ostringstream out, err;
  REQUIRE(RunTokenizeCommand(tok, in, out, err, /*decode=*/false, "in.jsonl").ok());
  CHECK(out.str() == "{\"ids\":[9707,1879]}\n{\"ids\":[27,91,318,6213,91,29]}\n");
  CHECK(err.str().empty());

  std::istringstream ids_in(out.str());
  std::ostringstream text_out;
  REQUIRE(RunTokenizeCommand(tok, ids_in, text_out, err, /*decode=*/true, "ids.jsonl").ok());
  CHECK(text_out.str() == "{\"text\":\"Hello world\"}\n{\"text\":\"<|im_end|>\"}\n");
}

TEST_CASE("malformed lines are named by line number and answered by an error line") {
  const Tokenizer& tok = Qwen3();
  std::istringstream in("{\"text\": \"ok\"}\n{\"txt\": 1}\nnot json\n{\"text\": \"fine\"}\n");
  std::ostringstream out, err;
  absl::Status status = RunTokenizeCommand(tok, in, out, err, /*decode=*/false, "in.jsonl");
  CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(status.message()).find("2 of 4 lines malformed; first: in.jsonl:2: text") == 0);
  CHECK(err.str().find("in.jsonl:2: text: required field is missing") != std::string::npos);
  CHECK(err.str().find("in.jsonl:3: line 1 column") != std::string::npos);
  std::vector<std::string> lines = absl::StrSplit(out.str(), '\n', absl::SkipEmpty());
  REQUIRE(lines.size() == 4);
  CHECK(lines[1].find("{\"error\":") == 0);
  CHECK(lines[3] == Json{{"ids", tok.Encode("fine")}}.dump());
}

TEST_CASE("decoding refuses ids the tokenizer does not have") {
  std::istringstream in("{\"ids\": [9707, 999999999]}\n{\"ids\": [1, \"x\"]}\n");
  std::ostringstream out, err;
  absl::Status status = RunTokenizeCommand(Qwen3(), in, out, err, /*decode=*/true, "ids.jsonl");
  CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  CHECK(err.str().find("ids.jsonl:1: ids[1]: not a token id of this tokenizer (vocab size 151669): 999999999") !=
        std::string::npos);
  CHECK(err.str().find("ids.jsonl:2: ids[1]") != std::string::npos);
}

}  // namespace
}  // namespace cascade::tokenizer
