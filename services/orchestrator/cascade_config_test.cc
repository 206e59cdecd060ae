#include "services/orchestrator/cascade_config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "services/orchestrator/dataset.h"

namespace cascade::orchestrator {
namespace {

namespace fs = std::filesystem;

// A directory with a model stub (config.json) and small datasets, so path
// checks pass and each test breaks exactly one thing.
class Fixture {
 public:
  Fixture() {
    dir_ = fs::temp_directory_path() / ("cascade_config_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "model");
    Write("model/config.json", "{}");
    Write("math.jsonl", R"({"id": "m1", "prompt": "What is 1+1?", "ground_truth": "2"})" "\n");
    Write("sft.jsonl", R"({"prompt": "Hi", "response": "Hello!"})" "\n");
  }
  ~Fixture() { fs::remove_all(dir_); }

  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  std::string dir() const { return dir_.string(); }

  // A valid document to break.
  static Json Valid() {
    return Json::parse(R"({
      "name": "t", "model": "model", "output_dir": "out", "seed": 3,
      "services": {"embedded": true},
      "defaults": {"group_size": 4, "learning_rate": 0.001},
      "stages": [
        {"name": "warmup", "kind": "sft", "datasets": {"train": "sft.jsonl"}, "steps": 2},
        {"name": "math", "kind": "grpo", "reward": {"type": "math"},
         "datasets": {"train": "math.jsonl", "eval": {"path": "math.jsonl", "limit": 1}},
         "max_response_tokens": 64, "curriculum": [{"max_response_tokens": 16, "steps": 2},
                                                   {"max_response_tokens": 64}],
         "sampling": {"temperature": 1.0, "top_p": 0.9},
         "dynamic_filtering": {"enabled": true, "max_refill_rounds": 2},
         "steps": 5}
      ]})");
  }

  absl::StatusOr<CascadeConfig> Parse(const Json& document) const {
    return ParseCascadeConfig(document.dump(), "cascade.json", dir());
  }

 private:
  fs::path dir_;
};

TEST_CASE("a valid cascade parses with defaults applied and paths resolved") {
  Fixture f;
  auto config = f.Parse(Fixture::Valid());
  REQUIRE(config.ok());
  REQUIRE(config->stages.size() == 2);
  CHECK(config->seed == 3);
  CHECK(config->model == f.dir() + "/model");
  CHECK(config->output_dir == f.dir() + "/out");
  const StageConfig& math = config->stages[1];
  CHECK(math.kind == StageKind::kGrpo);
  CHECK(math.reward.type == RewardType::kMath);
  CHECK(math.group_size == 4);  // from defaults
  CHECK(math.learning_rate == Approx(0.001));
  CHECK(math.top_p == Approx(0.9));
  CHECK(math.filtering.max_refill_rounds == 2);
  CHECK(math.eval.has_value());
  CHECK(math.eval->limit == 1);
  CHECK(config->stages[0].kind == StageKind::kSft);
  CHECK(math.reset_optimizer);  // each stage starts from fresh AdamW state by default
  CHECK(config->services.items_per_call == 64);
  CHECK_FALSE(config->services.activation_checkpointing);

  Json carried = Fixture::Valid();
  carried["defaults"]["reset_optimizer"] = false;
  auto carried_config = f.Parse(carried);
  REQUIRE(carried_config.ok());
  CHECK_FALSE(carried_config->stages[1].reset_optimizer);

  Json recompute = Fixture::Valid();
  recompute["services"]["activation_checkpointing"] = true;
  auto recompute_config = f.Parse(recompute);
  REQUIRE(recompute_config.ok());
  CHECK(recompute_config->services.activation_checkpointing);
}

TEST_CASE("the curriculum gives each step its phase's limits") {
  Fixture f;
  auto config = f.Parse(Fixture::Valid());
  REQUIRE(config.ok());
  const StageConfig& math = config->stages[1];
  CHECK(math.LimitsAt(0).max_response_tokens == 16);
  CHECK(math.LimitsAt(1).max_response_tokens == 16);
  CHECK(math.LimitsAt(2).max_response_tokens == 64);
  CHECK(math.LimitsAt(4).max_response_tokens == 64);
  CHECK(config->stages[0].LimitsAt(0).max_response_tokens == 1024);
}

// Each mistake and the path + words its error must contain.
struct Mistake {
  const char* what;
  std::function<void(Json&)> apply;
  const char* path;
  const char* expected;
};

TEST_CASE("malformed cascades get errors naming the JSON path and what was expected") {
  Fixture f;
  const std::vector<Mistake> mistakes = {
      {"unknown top-level key", [](Json& d) { d["stagez"] = Json::array(); }, "cascade.json: stagez",
       "unknown key"},
      {"unknown stage key", [](Json& d) { d["stages"][1]["batch_size"] = 4; }, "stages[1].batch_size",
       "expected one of"},
      {"unknown reward", [](Json& d) { d["stages"][1]["reward"]["type"] = "maths"; },
       "stages[1].reward.type", "expected one of: reward_model, if, if+rm, math, code, swe"},
      {"wrong type", [](Json& d) { d["stages"][1]["group_size"] = "four"; }, "stages[1].group_size",
       "expected"},
      {"group of one", [](Json& d) { d["stages"][1]["group_size"] = 1; }, "stages[1].group_size",
       "at least 2"},
      {"missing dataset file", [](Json& d) { d["stages"][1]["datasets"]["train"] = "nope.jsonl"; },
       "stages[1].datasets.train", "no such file"},
      {"missing model", [](Json& d) { d["model"] = "no-model"; }, "cascade.json: model", "no config.json"},
      {"steps and epochs", [](Json& d) { d["stages"][1]["epochs"] = 1; }, "stages[1].steps", "not both"},
      {"neither steps nor epochs", [](Json& d) { d["stages"][0].erase("steps"); }, "stages[0].steps",
       "required"},
      {"duplicate stage name", [](Json& d) { d["stages"][1]["name"] = "warmup"; }, "stages[1].name",
       "duplicate"},
      {"greedy GRPO", [](Json& d) { d["stages"][1]["sampling"]["temperature"] = 0; },
       "stages[1].sampling.temperature", "must be > 0"},
      {"top_p out of range", [](Json& d) { d["stages"][1]["sampling"]["top_p"] = 1.5; },
       "stages[1].sampling.top_p", "(0, 1]"},
      {"shrinking curriculum", [](Json& d) { d["stages"][1]["curriculum"][1]["max_response_tokens"] = 8; },
       "stages[1].curriculum[1].max_response_tokens", "must not shrink"},
      {"curriculum longer than the stage", [](Json& d) { d["stages"][1]["curriculum"][0]["steps"] = 9; },
       "stages[1].curriculum", "more than the stage's 5"},
      {"unknown overlong policy", [](Json& d) { d["stages"][1]["overlong"] = "drop"; }, "stages[1].overlong",
       "zero_reward, exclude, keep"},
      {"odd batch in both modes", [](Json& d) {
         d["stages"][1]["thinking"] = "both";
         d["stages"][1]["batch_prompts"] = 3;
       }, "stages[1].thinking", "must be even"},
      {"reward on an sft stage", [](Json& d) { d["stages"][0]["reward"] = "math"; }, "stages[0].reward",
       "sft stage has no reward"},
      {"grpo stage without reward", [](Json& d) { d["stages"][1].erase("reward"); }, "stages[1].reward",
       "required"},
      {"reward model without a model", [](Json& d) { d["stages"][1]["reward"]["type"] = "reward_model"; },
       "stages[1].reward.type", "needs a reward model"},
      {"no services", [](Json& d) { d.erase("services"); }, "cascade.json: services", "required"},
      {"remote without a learner", [](Json& d) { d["services"] = {{"rollout", "h:1"}, {"verifier", "h:2"}}; },
       "services.learner", "required"},
      {"bad address", [](Json& d) { d["services"]["rollout"] = Json::array({"host-without-port"}); },
       "services.rollout[0]", "host:port"},
      {"reset_optimizer not a boolean", [](Json& d) { d["stages"][1]["reset_optimizer"] = "yes"; },
       "stages[1].reset_optimizer", "expected"},
      {"activation_checkpointing not a boolean",
       [](Json& d) { d["services"]["activation_checkpointing"] = 1; },
       "services.activation_checkpointing", "expected"},
      {"zero items per call", [](Json& d) { d["services"]["items_per_call"] = 0; }, "services.items_per_call",
       "must be >= 1"},
      {"empty stage list", [](Json& d) { d["stages"] = Json::array(); }, "cascade.json: stages",
       "non-empty list"},
      {"unknown dataset field", [](Json& d) {
         d["stages"][1]["datasets"]["train"] = {{"path", "math.jsonl"}, {"fields", {{"answer", "x"}}}};
       }, "stages[1].datasets.train.fields.answer", "unknown key"},
      {"bad default", [](Json& d) { d["defaults"]["learning_rate"] = -1; }, "defaults.learning_rate",
       "must be > 0"},
      {"name in defaults", [](Json& d) { d["defaults"]["name"] = "x"; }, "defaults.name", "unknown key"},
      {"stage name with a slash", [](Json& d) { d["stages"][1]["name"] = "a/b"; }, "stages[1].name",
       "it names files"},
      {"partial credit outside code", [](Json& d) { d["stages"][1]["reward"]["partial_credit"] = true; },
       "stages[1].reward.partial_credit", "only the code reward"},
  };
  REQUIRE(mistakes.size() >= 10);
  for (const Mistake& mistake : mistakes) {
    INFO(mistake.what);
    Json document = Fixture::Valid();
    mistake.apply(document);
    auto config = f.Parse(document);
    REQUIRE_FALSE(config.ok());
    const std::string message(config.status().message());
    INFO(message);
    CHECK(config.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(message.find(mistake.path) != std::string::npos);
    CHECK(message.find(mistake.expected) != std::string::npos);
  }
}

TEST_CASE("a syntax error names the file, line and column") {
  Fixture f;
  auto config = ParseCascadeConfig("{\n  \"name\": \"x\",\n  oops\n}", "cascade.json", f.dir());
  REQUIRE_FALSE(config.ok());
  const std::string message(config.status().message());
  CHECK(message.find("cascade.json: line 3") != std::string::npos);
}

TEST_CASE("the shipped schema documents exactly the keys the parser accepts") {
  std::ifstream in(std::string(CASCADE_SOURCE_DIR) + "/services/orchestrator/cascade.schema.json");
  REQUIRE(in);
  Json schema = Json::parse(in);
  Fixture f;
  // Every stage property of the schema is accepted by the parser (an
  // unknown one would fail with "unknown key") and vice versa: a made-up
  // key is refused by both.
  const Json& stage_properties = schema["$defs"]["stage"]["properties"];
  for (const auto& [key, value] : stage_properties.items()) {
    Json document = Fixture::Valid();
    document["stages"][1][key] = nullptr;
    auto config = f.Parse(document);
    const std::string message = config.ok() ? "" : std::string(config.status().message());
    INFO(key << ": " << message);
    CHECK(message.find("unknown key") == std::string::npos);
  }
  CHECK(schema["$defs"]["stage"]["additionalProperties"] == false);
  for (const auto& [key, value] : schema["properties"].items()) {
    Json document = Fixture::Valid();
    if (!document.contains(key)) document[key] = nullptr;
    auto config = f.Parse(document);
    const std::string message = config.ok() ? "" : std::string(config.status().message());
    INFO(key << ": " << message);
    CHECK(message.find("unknown key") == std::string::npos);
  }
  CHECK(schema["additionalProperties"] == false);
  // The examples validate.
  for (const char* example : {"/examples/tiny/cascade.json"}) {
    const std::string path = std::string(CASCADE_SOURCE_DIR) + example;
    if (!fs::exists(path)) continue;
    INFO(path);
    Json document = Json::parse(std::ifstream(path));
    CHECK(document.contains("stages"));
  }
}

TEST_CASE("datasets map public field names and report the line of a bad row") {
  Fixture f;
  f.Write("public.jsonl",
          R"({"problem": "1+1?", "reward_model": {"ground_truth": "2"}})" "\n"
          R"({"problem": "2+2?", "reward_model": {"ground_truth": "4"}})" "\n");
  DatasetSpec spec;
  spec.path = f.dir() + "/public.jsonl";
  spec.fields = {{"prompt", "problem"}, {"ground_truth", "reward_model.ground_truth"}};
  auto rows = LoadDataset(spec, StageKind::kGrpo, RewardType::kMath, "Be brief.");
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 2);
  CHECK((*rows)[1].messages.size() == 2);
  CHECK((*rows)[1].messages[0].role == "system");
  CHECK((*rows)[1].messages[1].content == "2+2?");
  CHECK((*rows)[1].spec["ground_truth"] == "4");
  CHECK((*rows)[0].id == "public:1");

  f.Write("bad.jsonl", R"({"prompt": "1+1?", "ground_truth": "2"})" "\n" R"({"prompt": "no answer"})" "\n");
  spec.path = f.dir() + "/bad.jsonl";
  spec.fields.clear();
  auto bad = LoadDataset(spec, StageKind::kGrpo, RewardType::kMath, "");
  REQUIRE_FALSE(bad.ok());
  const std::string message(bad.status().message());
  CHECK(message.find("bad.jsonl: line 2: ground_truth: missing") != std::string::npos);
}

}  // namespace
}  // namespace cascade::orchestrator
