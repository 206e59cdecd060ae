#include "services/reward_model/reward_model_core.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/metrics.h"
#include "model/runtime.h"
#include "model/safetensors.h"
#include "services/reward_model/reward_model_train.h"
#include "services/reward_model/reward_net.h"
#include "tests/util/subprocess.h"

namespace cascade::reward_model {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / absl::StrCat("rm_core_test_", getpid(), "_", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// The tiny byte-level tokenizer of scripts/make-preference-data.py.
const std::string& TinyTokenizerPath() {
  static const std::string* path = [] {
    auto* p = new std::string(TempDir("tokenizer") + "/tokenizer.json");
    auto result = testing::RunCommand({"/usr/bin/python3", CASCADE_SOURCE_DIR "/scripts/make-preference-data.py",
                                       "--pairs", "1", "--out", "/dev/null", "--tokenizer-out", *p});
    REQUIRE(result.exit_code == 0);
    return p;
  }();
  return *path;
}

// A random 2-layer Qwen3 causal LM over the tiny tokenizer, with its tokenizer.json.
std::string TinyCausalLm(const std::string& name, uint64_t seed = 1) {
  auto tok = tokenizer::Tokenizer::FromFile(TinyTokenizerPath());
  REQUIRE(tok.ok());
  model::ModelConfig c;
  c.arch = model::Arch::kQwen3;
  c.vocab_size = (*tok)->vocab_size();
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.qk_norm = true;
  c.eos_token_ids = {*(*tok)->TokenId("<|im_end|>")};
  auto m = model::Model::CreateRandom(c, seed, {.num_threads = 1}, /*perturb=*/0.1);
  REQUIRE(m.ok());
  const std::string dir = TempDir(name);
  REQUIRE((*m)->Save(dir, {TinyTokenizerPath()}).ok());
  return dir;
}

std::vector<ScoreItem> SomeItems() {
  std::vector<ScoreItem> items;
  const char* responses[] = {"yes", "RED CAT", "a much longer answer with several words in it", "no"};
  for (int i = 0; i < 4; ++i) {
    tokenizer::ChatMessage user;
    user.content = absl::StrCat("question number ", i, std::string(i * 7, '!'));
    items.push_back({{user}, responses[i]});
  }
  return items;
}

TEST_CASE("pair files with a missing field fail naming the line and the field") {
  const std::string ok = R"({"prompt": "hi", "chosen": "a", "rejected": "b"})";
  auto missing = ParsePairsJsonl(ok + "\n\n" + R"({"prompt": "hi", "rejected": "b"})", "PAIRS.jsonl");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message() == "PAIRS.jsonl: line 3: chosen: required field is missing");

  auto bad_json = ParsePairsJsonl(ok + "\n{not json", "PAIRS.jsonl");
  REQUIRE_FALSE(bad_json.ok());
  CHECK(std::string(bad_json.status().message()).rfind("PAIRS.jsonl: line 2:", 0) == 0);

  auto bad_role = ParsePairsJsonl(
      R"({"prompt": [{"role": "robot", "content": "x"}], "chosen": "a", "rejected": "b"})", "P");
  REQUIRE_FALSE(bad_role.ok());
  CHECK(std::string(bad_role.status().message()).rfind("P: line 1: prompt[0].role: unknown role \"robot\"", 0) == 0);

  auto bad_prompt = ParsePairsJsonl(R"({"prompt": 3, "chosen": "a", "rejected": "b"})", "P");
  REQUIRE_FALSE(bad_prompt.ok());
  CHECK(bad_prompt.status().message() == "P: line 1: prompt: expected a string or a list of chat messages, got number");

  auto parsed = ParsePairsJsonl(
      ok + "\n" + R"({"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], "chosen": "c", "rejected": "r"})",
      "P");
  REQUIRE(parsed.ok());
  REQUIRE(parsed->size() == 2);
  CHECK((*parsed)[0].prompt.size() == 1);
  CHECK((*parsed)[1].prompt[0].role == tokenizer::Role::kSystem);
  CHECK((*parsed)[1].line == 2);
}

TEST_CASE("token-budget batches cover every item once and stay within the budget") {
  std::vector<size_t> lengths = {5, 40, 3, 12, 12, 100, 7, 8};
  auto batches = BatchByTokenBudget(lengths, /*token_budget=*/30);
  std::multiset<size_t> seen;
  for (const auto& batch : batches) {
    size_t longest = 0;
    for (size_t i : batch) {
      seen.insert(i);
      longest = std::max(longest, lengths[i]);
    }
    if (batch.size() > 1) CHECK(batch.size() * longest <= 30);
  }
  CHECK(seen == std::multiset<size_t>{0, 1, 2, 3, 4, 5, 6, 7});
}

TEST_CASE("a causal LM is refused as a reward model but starts one with a fresh head") {
  const std::string lm = TinyCausalLm("lm");
  auto refused = RewardNet::Load(lm, {.num_threads = 1});
  REQUIRE_FALSE(refused.ok());
  CHECK(std::string(refused.status().message()).find("no tensor \"score.weight\"") != std::string::npos);

  auto net = RewardNet::Load(lm, {.num_threads = 1}, /*allow_new_head=*/true, /*head_seed=*/3);
  REQUIRE(net.ok());
  const std::string rm = TempDir("rm_saved");
  REQUIRE((*net)->Save(rm, {TinyTokenizerPath()}).ok());

  // Hugging Face sequence-classification layout.
  auto config = ReadJsonFile(rm + "/config.json");
  REQUIRE(config.ok());
  CHECK((*config)["architectures"][0] == "Qwen3ForSequenceClassification");
  CHECK((*config)["id2label"].size() == 1);
  CHECK((*config)["pad_token_id"].is_number_integer());
  auto ckpt = model::SafetensorsCheckpoint::OpenDir(rm);
  REQUIRE(ckpt.ok());
  REQUIRE(ckpt->Find("score.weight") != nullptr);
  CHECK(ckpt->Find("score.weight")->shape == std::vector<int64_t>{1, 32});
  CHECK(ckpt->Find("lm_head.weight") == nullptr);

  // Reloaded, it scores exactly as before saving.
  auto reloaded = RewardNet::Load(rm, {.num_threads = 1});
  REQUIRE(reloaded.ok());
  std::vector<std::vector<int32_t>> seqs = {{1, 2, 3, 4}, {9, 8}};
  auto a = (*net)->Score(seqs);
  auto b = (*reloaded)->Score(seqs);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK((*a)[0] == (*b)[0]);
  CHECK((*a)[1] == (*b)[1]);
  CHECK((*a)[0] != (*a)[1]);
}

TEST_CASE("a checkpoint of the wrong shape is refused naming the tensor") {
  const std::string lm = TinyCausalLm("lm_shape");
  auto net = RewardNet::Load(lm, {.num_threads = 1}, /*allow_new_head=*/true);
  REQUIRE(net.ok());
  const std::string rm = TempDir("rm_shape");
  REQUIRE((*net)->Save(rm, {}).ok());

  // score.weight with two labels (a classifier, not a reward model).
  {
    auto ckpt = model::SafetensorsCheckpoint::OpenDir(rm);
    REQUIRE(ckpt.ok());
    std::vector<float> two_rows(2 * 32, 0.5f);
    std::vector<model::TensorToWrite> tensors;
    for (const std::string& name : ckpt->Names()) {
      const model::TensorView* v = ckpt->Find(name);
      if (name == "score.weight") {
        tensors.push_back({name, model::DType::kF32, {2, 32}, two_rows.data(), two_rows.size() * 4});
      } else {
        tensors.push_back({name, v->dtype, v->shape, v->data, v->nbytes});
      }
    }
    const std::string bad = TempDir("rm_two_labels");
    REQUIRE(model::WriteSafetensorsDir(bad, tensors).ok());
    fs::copy_file(rm + "/config.json", bad + "/config.json");
    auto refused = RewardNet::Load(bad, {.num_threads = 1});
    REQUIRE_FALSE(refused.ok());
    CHECK(std::string(refused.status().message()).find("tensor \"score.weight\": shape [2, 32]; a reward model needs [1, 32]") !=
          std::string::npos);
  }
  // A config that disagrees with the weights (hidden size).
  {
    auto config = ReadJsonFile(rm + "/config.json");
    REQUIRE(config.ok());
    (*config)["hidden_size"] = 64;
    (*config)["head_dim"] = 16;
    std::ofstream(rm + "/config.json", std::ios::trunc) << config->dump(2);
    auto refused = RewardNet::Load(rm, {.num_threads = 1});
    REQUIRE_FALSE(refused.ok());
    CHECK(std::string(refused.status().message()).find("model.embed_tokens.weight\": shape [") !=
          std::string::npos);
  }
  // id2label with two entries.
  {
    auto config = ReadJsonFile(rm + "/config.json");
    (*config)["hidden_size"] = 32;
    (*config)["head_dim"] = 8;
    (*config)["id2label"] = Json{{"0", "NEG"}, {"1", "POS"}};
    std::ofstream(rm + "/config.json", std::ios::trunc) << config->dump(2);
    auto refused = RewardNet::Load(rm, {.num_threads = 1});
    REQUIRE_FALSE(refused.ok());
    CHECK(std::string(refused.status().message()).find("num_labels is 2") != std::string::npos);
  }
}

TEST_CASE("scores do not depend on how items are batched") {
  const std::string lm = TinyCausalLm("lm_batch");
  auto net = RewardNet::Load(lm, {.num_threads = 1}, /*allow_new_head=*/true);
  REQUIRE(net.ok());
  const std::string rm = TempDir("rm_batch");
  REQUIRE((*net)->Save(rm, {TinyTokenizerPath()}).ok());

  RewardModelOptions one_at_a_time;
  one_at_a_time.net.num_threads = 1;
  one_at_a_time.token_budget = 1;
  RewardModelOptions together = one_at_a_time;
  together.token_budget = 100000;
  auto a = RewardModelCore::Load(rm, "", one_at_a_time);
  auto b = RewardModelCore::Load(rm, "", together);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto items = SomeItems();
  auto sa = (*a)->Score(items);
  auto sb = (*b)->Score(items);
  REQUIRE(sa.ok());
  REQUIRE(sb.ok());
  for (size_t i = 0; i < items.size(); ++i) CHECK(std::abs((*sa)[i] - (*sb)[i]) < 1e-4);
  // Both cores counted their items and tokens.
  const std::string metrics = RenderMetricsText();
  CHECK(metrics.find("cascade_reward_model_items_total{method=\"score\"} 8") != std::string::npos);
  CHECK(metrics.find("cascade_reward_model_tokens_total{method=\"score\"}") != std::string::npos);
  CHECK(metrics.find("cascade_reward_model_batch_seconds_count{method=\"score\"} 5") != std::string::npos);
  CHECK_FALSE((*a)->has_judge());
  CHECK((*a)->Judge({"q"}).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("judge P(yes) is the next-token mass of yes renormalized over yes and no") {
  const std::string lm = TinyCausalLm("judge", /*seed=*/7);
  RewardModelOptions options;
  options.net.num_threads = 1;
  auto core = RewardModelCore::Load("", lm, options);
  REQUIRE(core.ok());
  auto tok = tokenizer::Tokenizer::FromFile(TinyTokenizerPath());
  REQUIRE(tok.ok());
  // The tiny tokenizer has "yes", "Yes", "no", "No" as single tokens.
  const AnswerTokens& answers = (*core)->answer_tokens();
  CHECK(answers.yes == std::vector<int32_t>{*(*tok)->TokenId("yes"), *(*tok)->TokenId("Yes")});
  CHECK(answers.no == std::vector<int32_t>{*(*tok)->TokenId("no"), *(*tok)->TokenId("No")});

  const std::vector<std::string> questions = {"Is the sky blue?", "Are these patches the same change?"};
  auto p = (*core)->Judge(questions);
  REQUIRE(p.ok());
  REQUIRE(p->size() == 2);

  // Reference: the full logits of the causal LM through the torch-free runtime.
  auto m = model::Model::Load(lm, {.num_threads = 1});
  REQUIRE(m.ok());
  for (size_t i = 0; i < questions.size(); ++i) {
    tokenizer::ChatMessage user;
    user.content = questions[i];
    user.flag = tokenizer::ThinkingFlag::kNoThink;
    tokenizer::ChatTemplateOptions chat;
    chat.add_generation_prompt = true;
    auto rendered = tokenizer::RenderChat(**tok, {user}, {}, chat);
    REQUIRE(rendered.ok());
    std::vector<int64_t> ids(rendered->ids.begin(), rendered->ids.end());
    auto logits = (*m)->Logits({ids}, /*use_cache=*/false);
    REQUIRE(logits.ok());
    const int64_t vocab = (*m)->config().vocab_size;
    const float* last = (*logits)[0].data() + (ids.size() - 1) * vocab;
    double yes = 0, no = 0;
    for (int32_t id : answers.yes) yes += std::exp(last[id]);
    for (int32_t id : answers.no) no += std::exp(last[id]);
    const double p_yes = yes / (yes + no), p_no = no / (yes + no);
    CHECK(std::abs((*p)[i] - p_yes) < 1e-5);
    CHECK(std::abs((*p)[i] + p_no - 1.0) < 1e-5);
    CHECK((*p)[i] > 0.0);
    CHECK((*p)[i] < 1.0);
  }
  CHECK((*core)->Score(SomeItems()).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("training on pairs writes a reward model and reports each epoch") {
  const std::string lm = TinyCausalLm("lm_train");
  const std::string pairs = TempDir("pairs") + "/pairs.jsonl";
  auto gen = testing::RunCommand({"/usr/bin/python3", CASCADE_SOURCE_DIR "/scripts/make-preference-data.py",
                                  "--pairs", "20", "--out", pairs});
  REQUIRE(gen.exit_code == 0);
  TrainOptions options;
  options.pairs_path = pairs;
  options.model_dir = lm;
  options.out_dir = TempDir("rm_trained");
  options.epochs = 2;
  options.holdout = 0.25;
  options.net.num_threads = 1;
  std::ostringstream progress;
  auto reports = TrainRewardModel(options, progress);
  REQUIRE(reports.ok());
  REQUIRE(reports->size() == 2);
  CHECK((*reports)[0].heldout_pairs == 5);
  CHECK((*reports)[1].train_loss > 0.0);
  CHECK(progress.str().find("\"heldout_accuracy\"") != std::string::npos);
  // The pad token is one that never occurs inside a conversation.
  auto tok = tokenizer::Tokenizer::FromFile(TinyTokenizerPath());
  auto config = ReadJsonFile(options.out_dir + "/config.json");
  REQUIRE(config.ok());
  CHECK((*config)["pad_token_id"] == *(*tok)->TokenId("<|endoftext|>"));
  CHECK(fs::exists(options.out_dir + "/tokenizer.json"));
  CHECK(RewardModelCore::Load(options.out_dir, "", {}).ok());

  options.pairs_path = TempDir("bad_pairs") + "/p.jsonl";
  std::ofstream(options.pairs_path) << R"({"prompt": "x", "chosen": "a", "rejected": "b"})" "\n"
                                    << R"({"prompt": "x", "chosen": 5, "rejected": "b"})" "\n";
  auto bad = TrainRewardModel(options, progress);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message() == options.pairs_path + ": line 2: chosen: expected a string, got number");
}

}  // namespace
}  // namespace cascade::reward_model
