#include "model/cli.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <sstream>

#include "model/json.h"
#include "model/runtime.h"
#include "model/test_util.h"

namespace cascade::model {
namespace {

namespace fs = std::filesystem;

// A small BPE tokenizer.json: 300 byte-level tokens plus ChatML specials.
std::string WriteTokenizer(const std::string& dir) {
  Json vocab = Json::MakeObject();
  for (int i = 0; i < 300; ++i) vocab["t" + std::to_string(i)] = i;
  Json added = Json::MakeArray();
  int id = 300;
  for (const char* special : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    Json t = Json::MakeObject();
    t["id"] = id++;
    t["content"] = special;
    t["special"] = true;
    added.push_back(t);
  }
  Json tok = Json::MakeObject();
  tok["version"] = "1.0";
  tok["model"]["type"] = "BPE";
  tok["model"]["vocab"] = vocab;
  tok["model"]["merges"] = Json::MakeArray();
  tok["added_tokens"] = added;
  const std::string path = dir + "/tokenizer.json";
  REQUIRE(WriteStringToFile(path, tok.Dump()).ok());
  REQUIRE(WriteStringToFile(dir + "/tokenizer_config.json", "{}").ok());
  return path;
}

TEST_CASE("tokenizer vocab size counts added tokens and finds the ChatML end token", "[model][cli]") {
  const std::string dir = testing::MakeTempDir("cli_vocab");
  WriteTokenizer(dir);
  auto v = ReadTokenizerVocab(dir);
  REQUIRE(v.ok());
  CHECK(v->vocab_size == 303);
  CHECK(v->eos_token_ids == std::vector<int64_t>{302, 300});
  fs::remove_all(dir);
}

TEST_CASE("learner init writes a loadable model directory with the tokenizer files", "[model][cli]") {
  const std::string dir = testing::MakeTempDir("cli_init");
  const std::string tok = WriteTokenizer(dir);
  const std::string out_dir = dir + "/model";
  std::ostringstream out, err;
  int rc = RunInitCommand({"--arch", "qwen3", "--hidden", "64", "--layers", "2", "--heads", "4",
                           "--kv-heads", "2", "--vocab-from", tok, "--seed", "3", "--out", out_dir},
                          out, err);
  INFO(err.str());
  REQUIRE(rc == 0);
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors",
                        "tokenizer.json", "tokenizer_config.json"}) {
    CHECK(fs::exists(out_dir + "/" + f));
  }
  auto model = Model::Load(out_dir);
  REQUIRE(model.ok());
  CHECK((*model)->config().vocab_size == 303);
  CHECK((*model)->config().num_key_value_heads == 2);
  Json gen = *Json::Parse(*ReadFileToString(out_dir + "/generation_config.json"));
  CHECK(gen.Find("eos_token_id")->as_array().size() == 2);

  // The same seed writes the same weights.
  std::ostringstream out2, err2;
  REQUIRE(RunInitCommand({"--arch", "qwen3", "--hidden", "64", "--layers", "2", "--heads", "4",
                          "--kv-heads", "2", "--vocab-from", tok, "--seed", "3", "--out",
                          dir + "/again"},
                         out2, err2) == 0);
  CHECK(*ReadFileToString(out_dir + "/model.safetensors") ==
        *ReadFileToString(dir + "/again/model.safetensors"));

  // rollout score agrees with TokenLogProbs and honours prompt_len.
  REQUIRE(WriteStringToFile(dir + "/in.jsonl",
                            "{\"ids\": [1, 2, 3, 4, 5]}\n{\"ids\": [7, 8, 9], \"prompt_len\": 2}\n")
              .ok());
  std::ostringstream sout, serr;
  rc = RunScoreCommand({"--model", out_dir, "--input", dir + "/in.jsonl"}, sout, serr);
  INFO(serr.str());
  REQUIRE(rc == 0);
  auto expected = (*model)->TokenLogProbs({{1, 2, 3, 4, 5}, {7, 8, 9}});
  REQUIRE(expected.ok());
  std::istringstream lines(sout.str());
  std::string line;
  REQUIRE(std::getline(lines, line));
  Json row0 = *Json::Parse(line);
  REQUIRE(row0.Find("logprobs")->as_array().size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK(row0.Find("logprobs")->as_array()[i].as_double() == Approx((*expected)[0][i]).margin(1e-6));
  }
  REQUIRE(std::getline(lines, line));
  Json row1 = *Json::Parse(line);
  REQUIRE(row1.Find("num_tokens")->as_int() == 1);
  CHECK(row1.Find("sum")->as_double() == Approx((*expected)[1][1]).margin(1e-6));
  fs::remove_all(dir);
}

TEST_CASE("model commands exit 2 on bad usage and 1 on bad input naming the line", "[model][cli]") {
  std::ostringstream out, err;
  CHECK(RunInitCommand({"--arch", "gpt2", "--out", "/tmp/x"}, out, err) == 2);
  CHECK(err.str().find("--arch") != std::string::npos);
  CHECK(RunInitCommand({"--help"}, out, err) == 0);
  CHECK(RunScoreCommand({"--bogus"}, out, err) == 2);

  const std::string dir = testing::MakeTempDir("cli_bad");
  auto m = Model::CreateRandom(testing::TinyConfig(Arch::kQwen3), 1);
  REQUIRE(m.ok());
  REQUIRE((*m)->Save(dir + "/model").ok());
  REQUIRE(WriteStringToFile(dir + "/in.jsonl", "{\"ids\": [1, 2]}\n{\"ids\": [1, \"x\"]}\n").ok());
  std::ostringstream err2;
  CHECK(RunScoreCommand({"--model", dir + "/model", "--input", dir + "/in.jsonl"}, out, err2) == 1);
  CHECK(err2.str().find("in.jsonl:2") != std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cascade::model
