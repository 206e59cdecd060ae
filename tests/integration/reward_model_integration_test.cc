// The reward_model binary end to end: training on the synthetic preference
// task of scripts/make-preference-data.py, the served model over gRPC on
// loopback, and the verifier's swe backend judging through it.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/json_util.h"
#include "model/runtime.h"
#include "services/reward_model/reward_model_client.h"
#include "services/verifier/backends/swe/swe_backend.h"
#include "tests/util/subprocess.h"
#include "tokenizer/tokenizer.h"

namespace cascade::reward_model {
namespace {

namespace fs = std::filesystem;

const std::string kBinary = CASCADE_BIN_DIR "/reward_model";
const std::string kGenerator = CASCADE_SOURCE_DIR "/scripts/make-preference-data.py";

std::string TempDir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / absl::StrCat("rm_integration_", getpid(), "_", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// A random Qwen3 causal LM (2 layers) over the generator's tiny tokenizer:
// what `learner init --vocab-from` writes.
std::string TinyCausalLm(const std::string& name, int64_t hidden, uint64_t seed) {
  const std::string dir = TempDir(name);
  const std::string tokenizer_path = dir + "/tokenizer.json";
  auto gen = testing::RunCommand({"/usr/bin/python3", kGenerator, "--pairs", "1", "--out",
                                  "/dev/null", "--tokenizer-out", tokenizer_path});
  REQUIRE(gen.exit_code == 0);
  auto tok = tokenizer::Tokenizer::FromFile(tokenizer_path);
  REQUIRE(tok.ok());
  model::ModelConfig c;
  c.arch = model::Arch::kQwen3;
  c.vocab_size = (*tok)->vocab_size();
  c.hidden_size = hidden;
  c.intermediate_size = 2 * hidden;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = hidden / 4;
  c.qk_norm = true;
  c.eos_token_ids = {*(*tok)->TokenId("<|im_end|>")};
  auto m = model::Model::CreateRandom(c, seed, {.num_threads = 1}, /*perturb=*/0.1);
  REQUIRE(m.ok());
  REQUIRE((*m)->Save(dir, {}).ok());
  return dir;
}

// A `reward_model serve` child on a free loopback port.
struct Server {
  std::unique_ptr<testing::Subprocess> process;
  std::string address;
};

Server StartServer(const std::vector<std::string>& model_flags) {
  std::vector<std::string> argv = {kBinary, "serve", "--address", "localhost:0",
                                   "--metrics_port", "-1", "--threads", "1"};
  argv.insert(argv.end(), model_flags.begin(), model_flags.end());
  Server server;
  server.process = std::make_unique<testing::Subprocess>(argv);
  auto log = server.process->WaitForStderr("listening on port", absl::Seconds(60));
  REQUIRE(log.has_value());
  const int port = testing::ParseListeningPort(*log);
  REQUIRE(port > 0);
  server.address = absl::StrCat("localhost:", port);
  return server;
}

std::vector<Json> JsonLines(const std::string& text) {
  std::vector<Json> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    auto parsed = ParseJson(line, "output");
    REQUIRE(parsed.ok());
    lines.push_back(*parsed);
  }
  return lines;
}

TEST_CASE("a tiny reward model trained on the synthetic case task ranks held-out pairs well above "
          "chance, and its gRPC scores equal the offline ones") {
  const std::string lm = TinyCausalLm("lm", /*hidden=*/64, /*seed=*/1);
  const std::string data = TempDir("data");
  auto gen = testing::RunCommand({"/usr/bin/python3", kGenerator, "--task", "case", "--pairs",
                                  "400", "--seed", "5", "--out", data + "/pairs.jsonl"});
  REQUIRE(gen.exit_code == 0);

  // 1. Train: 320 pairs, 80 held out.
  const std::string out = data + "/rm";
  auto train = testing::RunCommand({kBinary, "train", "--pairs", data + "/pairs.jsonl", "--model",
                                    lm, "--out", out, "--epochs", "4", "--lr", "0.003", "--batch",
                                    "16", "--holdout", "0.2", "--seed", "3", "--threads", "1"});
  INFO(train.err);
  REQUIRE(train.exit_code == 0);
  std::vector<Json> epochs = JsonLines(train.out);
  REQUIRE(epochs.size() == 4);
  const double accuracy = epochs.back()["heldout_accuracy"].get<double>();
  WARN("held-out pairwise accuracy after 4 epochs: " << accuracy << " (chance 0.5), per epoch: " << train.out);
  CHECK(epochs.back()["heldout_pairs"] == 80);
  CHECK(accuracy >= 0.85);
  CHECK(epochs.back()["heldout_loss"].get<double>() < epochs.front()["heldout_loss"].get<double>() + 1e-9);

  // 2. Offline scores of a few (prompt, response) lines.
  std::vector<ClientScoreItem> items = {
      {{{"user", "Say it in upper case: red cat"}}, "RED CAT"},
      {{{"user", "Say it in upper case: red cat"}}, "red cat"},
      {{{"system", "Be brief."}, {"user", "Say it in lower case: moon fish tree"}}, "moon fish tree"},
      {{{"user", "Say it in lower case: moon fish tree"}}, "MOON FISH TREE"},
  };
  std::string input;
  for (const ClientScoreItem& item : items) {
    Json prompt = Json::array();
    for (const ClientMessage& m : item.prompt) prompt.push_back({{"role", m.role}, {"content", m.content}});
    input += Json{{"prompt", prompt}, {"response", item.response}}.dump() + "\n";
  }
  std::ofstream(data + "/score.jsonl") << input;
  auto offline = testing::RunCommand({kBinary, "score", "--model", out, "--input",
                                      data + "/score.jsonl", "--threads", "1"});
  INFO(offline.err);
  REQUIRE(offline.exit_code == 0);
  std::vector<Json> offline_scores = JsonLines(offline.out);
  REQUIRE(offline_scores.size() == items.size());
  // The trained model prefers the instruction-following response of each prompt.
  CHECK(offline_scores[0]["score"].get<double>() > offline_scores[1]["score"].get<double>());
  CHECK(offline_scores[2]["score"].get<double>() > offline_scores[3]["score"].get<double>());

  // 3. The same items over gRPC.
  Server server = StartServer({"--model", out});
  auto client = RewardModelClient::Connect(server.address);
  auto scores = client->Score(items, absl::Seconds(30));
  REQUIRE(scores.ok());
  REQUIRE(scores->size() == items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    CHECK(std::abs((*scores)[i] - offline_scores[i]["score"].get<double>()) < 1e-5);
  }
  // This server has no judge: Judge says so instead of guessing.
  auto judge = client->Judge({"Is it?"}, absl::Seconds(10));
  CHECK(judge.status().code() == absl::StatusCode::kFailedPrecondition);
  server.process->Signal(SIGTERM);
  CHECK(server.process->Wait(absl::Seconds(20)) == std::optional<int>(0));
}

// Forwards to the real judge and keeps the question it was asked.
class QuestionTap : public verifier::SemanticJudge {
 public:
  explicit QuestionTap(std::shared_ptr<const verifier::SemanticJudge> judge) : judge_(std::move(judge)) {}
  absl::StatusOr<double> ProbabilityYes(absl::string_view question,
                                        const CancelToken& cancel) const override {
    {
      absl::MutexLock lock(&mu_);
      questions_.emplace_back(question);
    }
    return judge_->ProbabilityYes(question, cancel);
  }
  std::vector<std::string> questions() const {
    absl::MutexLock lock(&mu_);
    return questions_;
  }

 private:
  std::shared_ptr<const verifier::SemanticJudge> judge_;
  mutable absl::Mutex mu_;
  mutable std::vector<std::string> questions_ ABSL_GUARDED_BY(mu_);
};

TEST_CASE("the swe backend's semantic similarity goes through a real reward_model judge on loopback") {
  const std::string lm = TinyCausalLm("judge_lm", /*hidden=*/32, /*seed=*/11);
  Server server = StartServer({"--judge_model", lm});
  auto tap = std::make_shared<QuestionTap>(GrpcSemanticJudge::Connect(server.address));
  verifier::SweBackendOptions options;
  options.judge = tap;
  std::unique_ptr<verifier::Backend> backend = verifier::NewSweBackend(options);

  Json item = {
      {"format", "unidiff"},
      {"similarity", "semantic"},
      {"ground_truth",
       "--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,4 @@\n def div(a, b):\n+    if b == 0:\n"
       "+        raise ZeroDivisionError\n     return a / b\n"},
      {"response",
       "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,4 @@\n def div(a, b):\n"
       "+    if not b:\n+        raise ValueError\n     return a / b\n```"},
  };
  CancelToken cancel(absl::Now() + absl::Seconds(30));
  auto result = backend->Check(item, JsonPath("item"), cancel);
  INFO((result.ok() ? result->details.dump() : result.status().ToString()));
  REQUIRE(result.ok());
  CHECK(result->verdict == verifier::kVerdictSimilar);
  CHECK(result->reward >= 0.0);
  CHECK(result->reward <= 1.0);

  // The reward is the server's P(yes) for the question the backend asked.
  REQUIRE(tap->questions().size() == 1);
  auto client = RewardModelClient::Connect(server.address);
  auto p = client->Judge({tap->questions()[0]}, absl::Seconds(30));
  REQUIRE(p.ok());
  CHECK(std::abs(result->reward - (*p)[0]) < 1e-6);
  CHECK((*p)[0] > 0.0);
  CHECK((*p)[0] < 1.0);
  // `reward_model judge` offline gives the same probability.
  const std::string questions = TempDir("questions") + "/q.jsonl";
  std::ofstream(questions) << Json{{"question", tap->questions()[0]}}.dump() << "\n";
  auto offline = testing::RunCommand({kBinary, "judge", "--judge_model", lm, "--input", questions,
                                      "--threads", "1"});
  INFO(offline.err);
  REQUIRE(offline.exit_code == 0);
  std::vector<Json> lines = JsonLines(offline.out);
  REQUIRE(lines.size() == 1);
  CHECK(std::abs(lines[0]["probability_yes"].get<double>() - (*p)[0]) < 1e-6);
  // A server without a reward model refuses Score with what to do.
  auto score = client->Score({{{{"user", "hi"}}, "hello"}}, absl::Seconds(10));
  CHECK(score.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(score.status().message()).find("--model") != std::string::npos);
}

TEST_CASE("malformed pair files and bad usage follow the exit-code contract") {
  const std::string data = TempDir("bad");
  std::ofstream(data + "/pairs.jsonl") << R"({"prompt": "a", "chosen": "b", "rejected": "c"})" "\n"
                                       << R"({"prompt": "a", "rejected": "c"})" "\n";
  auto train = testing::RunCommand({kBinary, "train", "--pairs", data + "/pairs.jsonl", "--model",
                                    data, "--out", data + "/out"});
  CHECK(train.exit_code == 1);
  CHECK(train.err.find(data + "/pairs.jsonl: line 2: chosen: required field is missing") != std::string::npos);
  auto usage = testing::RunCommand({kBinary, "train", "--pairs", data + "/pairs.jsonl"});
  CHECK(usage.exit_code == 2);
  auto unknown = testing::RunCommand({kBinary, "frobnicate"});
  CHECK(unknown.exit_code == 2);
  auto help = testing::RunCommand({kBinary, "--help"});
  CHECK(help.exit_code == 0);
}

}  // namespace
}  // namespace cascade::reward_model
