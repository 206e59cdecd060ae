#include "services/rollout/rollout_core.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/metrics.h"
#include "services/rollout/rollout_test_util.h"
#include "services/rollout/weights_assembler.h"

namespace cascade::rollout {
namespace {

using testing::ExportWeights;
using testing::GreedyViolation;
using testing::TinyModel;

GenerateInput Greedy(std::vector<std::vector<int64_t>> prompts, int samples, int64_t version,
                     int64_t max_new_tokens = 6) {
  GenerateInput in;
  for (size_t i = 0; i < prompts.size(); ++i) {
    in.prompts.push_back({"p" + std::to_string(i), std::move(prompts[i])});
  }
  in.samples_per_prompt = samples;
  in.sampling.temperature = 0;
  in.sampling.max_new_tokens = max_new_tokens;
  in.sampling.ignore_eos = true;
  in.policy_version = version;
  return in;
}

// What `m` generates for one prompt on its own.
model::GenerationResult Direct(const model::Model& m, const std::vector<int64_t>& prompt,
                               const model::SamplingParams& params) {
  auto r = m.Generate({model::GenerationRequest{prompt, params}});
  REQUIRE(r.ok());
  return (*r)[0];
}

TEST_CASE("generate returns G responses per prompt equal to the model's own output") {
  auto reference = TinyModel(1);
  RolloutCore core(TinyModel(1), /*policy_version=*/0);
  GenerateInput in = Greedy({{1, 2, 3}, {4, 5, 6, 7}}, /*samples=*/2, /*version=*/0);
  auto out = core.Generate(in);
  REQUIRE(out.ok());
  REQUIRE(out->size() == 4);
  for (const SampleOutput& o : *out) {
    const auto& prompt = in.prompts[o.prompt_index].token_ids;
    model::GenerationResult want = Direct(*reference, prompt, in.sampling);
    CHECK(o.prompt_id == in.prompts[o.prompt_index].prompt_id);
    CHECK(o.token_ids == want.token_ids);
    CHECK(o.policy_version == 0);
    CHECK(o.finish_reason == FinishReason::kLength);
    REQUIRE(o.logprobs.size() == want.logprobs.size());
    for (size_t t = 0; t < o.logprobs.size(); ++t) CHECK(std::abs(o.logprobs[t] - want.logprobs[t]) < 1e-4);
  }
}

TEST_CASE("a request for a version the replica does not hold is refused with failed precondition") {
  RolloutCore core(TinyModel(1), /*policy_version=*/3);
  auto out = core.Generate(Greedy({{1, 2}}, 1, /*version=*/4));
  REQUIRE(out.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(out.status().message().find("serves version 3") != std::string::npos);
  CHECK(core.Generate(Greedy({{1, 2}}, 1, /*version=*/3)).ok());
}

TEST_CASE("sampled responses do not depend on which requests share their batch") {
  RolloutCore alone(TinyModel(2), 0);
  RolloutCore crowded(TinyModel(2), 0, {.max_batch_tokens = 64});
  GenerateInput in = Greedy({{10, 11, 12}}, /*samples=*/3, 0);
  in.sampling.temperature = 1.0;
  in.sampling.seed = 42;
  auto a = alone.Generate(in);
  // The same request among others, split over several small batches.
  std::vector<std::thread> others;
  for (int k = 0; k < 3; ++k) {
    others.emplace_back([&crowded, k] {
      GenerateInput other = Greedy({{20 + k, 21, 22, 23}}, 2, 0);
      other.sampling.temperature = 1.0;
      other.sampling.seed = k;
      (void)crowded.Generate(other);
    });
  }
  auto b = crowded.Generate(in);
  for (auto& t : others) t.join();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(a->size() == 3);
  REQUIRE(b->size() == 3);
  for (size_t i = 0; i < a->size(); ++i) CHECK((*a)[i].token_ids == (*b)[i].token_ids);
  // Different samples of one prompt use different streams.
  CHECK(((*a)[0].token_ids != (*a)[1].token_ids || (*a)[1].token_ids != (*a)[2].token_ids));
}

TEST_CASE("requests that arrive while a long one runs join its batch and leave first") {
  auto reference = TinyModel(3);
  RolloutCore core(TinyModel(3), 0);
  // A long request (ended by Cancel below) is running before the others arrive.
  absl::Notification long_done;
  absl::Status long_status;
  int long_responses = 0;
  auto long_id = core.Submit(
      Greedy({{1, 2, 3}}, 1, 0, /*max_new_tokens=*/10000),
      [&](std::vector<SampleOutput> o) { long_responses += static_cast<int>(o.size()); },
      [&](absl::Status s) {
        long_status = s;
        long_done.Notify();
      });
  REQUIRE(long_id.ok());
  const absl::Time limit = absl::Now() + absl::Seconds(60);
  while (core.State().steps_total < 2 && absl::Now() < limit) absl::SleepFor(absl::Milliseconds(1));
  REQUIRE(core.State().steps_total >= 2);

  const std::vector<std::vector<int64_t>> prompts = {{5, 6, 7}, {9}, {11, 12, 13, 14, 15}, {8, 8}};
  std::vector<absl::StatusOr<std::vector<SampleOutput>>> outputs(prompts.size());
  std::vector<std::thread> clients;
  for (size_t k = 0; k < prompts.size(); ++k) {
    clients.emplace_back([&, k] { outputs[k] = core.Generate(Greedy({prompts[k]}, 2, 0)); });
  }
  for (std::thread& t : clients) t.join();
  // Every short request finished while the long one was still generating:
  // they joined its batch instead of waiting for it to end.
  CHECK(!long_done.HasBeenNotified());
  RolloutState state = core.State();
  CHECK(state.peak_running_sequences >= 3);
  CHECK(state.sequences_total == 9);
  for (size_t k = 0; k < prompts.size(); ++k) {
    REQUIRE(outputs[k].ok());
    REQUIRE(outputs[k]->size() == 2);
    model::GenerationResult want = Direct(*reference, prompts[k], Greedy({prompts[k]}, 1, 0).sampling);
    for (const SampleOutput& o : *outputs[k]) {
      // Joining a batch mid-way changes the shapes the logits are computed
      // in, so a near-tie may break the other way than alone: require the
      // reference model's greedy choices and its log-probs of them.
      CHECK(GreedyViolation(*reference, prompts[k], o.token_ids) == "");
      CHECK(o.token_ids.size() == want.token_ids.size());
      std::vector<int64_t> sequence = prompts[k];
      sequence.insert(sequence.end(), o.token_ids.begin(), o.token_ids.end());
      auto forced = reference->TokenLogProbs({sequence});
      REQUIRE(forced.ok());
      const size_t first = prompts[k].size() - 1;
      REQUIRE(o.logprobs.size() == o.token_ids.size());
      for (size_t t = 0; t < o.logprobs.size(); ++t) {
        CHECK(std::abs(o.logprobs[t] - forced->front()[first + t]) < 1e-4);
      }
    }
  }

  // The greedy check tells a wrong token from a tie.
  std::vector<int64_t> wrong = (*outputs[0])[0].token_ids;
  wrong[1] = (wrong[1] + 1) % reference->config().vocab_size;
  CHECK(GreedyViolation(*reference, prompts[0], wrong).find("token 1 ") == 0);

  // Cancelling the running request takes it out of the batch at once.
  core.Cancel(*long_id);
  long_done.WaitForNotification();
  CHECK(long_status.code() == absl::StatusCode::kCancelled);
  CHECK(long_responses == 0);
  state = core.State();
  CHECK(state.running_sequences == 0);
  CHECK(state.sequence_steps_total > state.steps_total);  // steps ran with several sequences
  const std::string metrics = RenderMetricsText();
  CHECK(metrics.find("cascade_rollout_tokens_total") != std::string::npos);
  CHECK(metrics.find("cascade_rollout_batch_occupancy_ratio") != std::string::npos);
  CHECK(metrics.find("cascade_rollout_step_seconds") != std::string::npos);
}

TEST_CASE("a request larger than the token budget runs in parts as room frees up") {
  auto reference = TinyModel(2);
  // Room for two sequences of 3 + 6 tokens at a time.
  RolloutCore core(TinyModel(2), 0, {.max_batch_tokens = 18});
  GenerateInput in = Greedy({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}, 2, 0);
  auto out = core.Generate(in);
  REQUIRE(out.ok());
  REQUIRE(out->size() == 6);
  for (const SampleOutput& o : *out) {
    CHECK(GreedyViolation(*reference, in.prompts[o.prompt_index].token_ids, o.token_ids) == "");
    CHECK(o.token_ids.size() == 6);
  }
  RolloutState state = core.State();
  CHECK(state.peak_running_sequences == 2);
  CHECK(state.steps_total == 18);  // three pairs of 6 tokens each
}

TEST_CASE("a cancelled queued request ends with cancelled and no responses") {
  RolloutCore core(TinyModel(3), 0, {.max_batch_tokens = 70});  // the blocker leaves no room
  absl::Notification blocker_done;
  auto sink = [](std::vector<SampleOutput>) {};
  REQUIRE(core.Submit(Greedy({{1, 2, 3}}, 1, 0, 64), sink, [&](absl::Status) { blocker_done.Notify(); })
              .ok());
  int responses = 0;
  absl::Status final_status;
  absl::Notification done;
  auto id = core.Submit(
      Greedy({{4, 5}}, 4, 0), [&](std::vector<SampleOutput> o) { responses += o.size(); },
      [&](absl::Status s) {
        final_status = s;
        done.Notify();
      });
  REQUIRE(id.ok());
  core.Cancel(*id);
  done.WaitForNotification();
  CHECK(final_status.code() == absl::StatusCode::kCancelled);
  CHECK(responses == 0);
  blocker_done.WaitForNotification();
}

TEST_CASE("generate past its timeout cancels the request and the core keeps serving") {
  model::ModelConfig endless = testing::TinyRolloutConfig();
  endless.eos_token_ids.clear();
  auto m = model::Model::CreateRandom(endless, 1, {.num_threads = 1});
  REQUIRE(m.ok());
  RolloutCore core(std::move(*m), 0, {.max_batch_tokens = 2 * (3 + 300)});
  auto late = core.Generate(Greedy({{1, 2, 3}}, /*samples=*/16, 0, /*max_new_tokens=*/300),
                            absl::Milliseconds(100));
  CHECK(late.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(core.State().sequences_total < 16);
  CHECK(core.Generate(Greedy({{1, 2, 3}}, 1, 0)).ok());
}

TEST_CASE("apply weights serves the new model as the new version") {
  auto second = TinyModel(7);
  auto weights = ExportWeights(*second);
  REQUIRE(weights != nullptr);
  RolloutCore core(TinyModel(1), 0);
  GenerateInput in = Greedy({{1, 2, 3, 4}}, 1, 0, 8);
  auto before = core.Generate(in);
  REQUIRE(before.ok());
  REQUIRE(core.ApplyWeights(1, weights->tensors).ok());
  CHECK(core.policy_version() == 1);
  CHECK(core.Generate(in).status().code() == absl::StatusCode::kFailedPrecondition);
  in.policy_version = 1;
  auto after = core.Generate(in);
  REQUIRE(after.ok());
  model::GenerationResult want = Direct(*second, in.prompts[0].token_ids, in.sampling);
  CHECK((*after)[0].token_ids == want.token_ids);
  CHECK((*after)[0].policy_version == 1);
  CHECK((*after)[0].token_ids != (*before)[0].token_ids);
}

TEST_CASE("a rejected weight update leaves the old version serving") {
  auto weights = ExportWeights(*TinyModel(7));
  REQUIRE(weights != nullptr);
  RolloutCore core(TinyModel(1), 0);
  std::vector<model::TensorView> partial(weights->tensors.begin(), weights->tensors.end() - 1);
  absl::Status s = core.ApplyWeights(1, partial);
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message().find("missing") != std::string::npos);
  CHECK(core.policy_version() == 0);
  CHECK(core.Generate(Greedy({{1, 2}}, 1, 0)).ok());
}

TEST_CASE("weights assembler rebuilds tensors split into chunks and checks the header totals") {
  auto model = TinyModel(5);
  auto weights = ExportWeights(*model);
  REQUIRE(weights != nullptr);
  auto assembler = WeightsAssembler::Create(model->Parameters(),
                                            static_cast<int64_t>(weights->tensors.size()),
                                            static_cast<int64_t>(weights->total_bytes));
  REQUIRE(assembler.ok());
  for (const auto& t : weights->tensors) {
    const char* data = static_cast<const char*>(t.data);
    for (size_t off = 0; off < t.nbytes; off += 1000) {
      size_t n = std::min<size_t>(1000, t.nbytes - off);
      ChunkRef c{t.name, model::DTypeName(t.dtype), t.shape, static_cast<int64_t>(off),
                 static_cast<int64_t>(t.nbytes), absl::string_view(data + off, n)};
      REQUIRE((*assembler)->Add(c).ok());
    }
    // Not finished before the last tensor arrived.
    if (&t != &weights->tensors.back()) CHECK((*assembler)->Finish().status().code() == absl::StatusCode::kDataLoss);
  }
  auto views = (*assembler)->Finish();
  REQUIRE(views.ok());
  REQUIRE(views->size() == weights->tensors.size());
  for (const auto& v : *views) {
    const model::TensorView* src = weights->checkpoint->Find(v.name);
    REQUIRE(src != nullptr);
    REQUIRE(v.nbytes == src->nbytes);
    CHECK(std::memcmp(v.data, src->data, v.nbytes) == 0);
  }
}

TEST_CASE("weights assembler names the tensor of a bad chunk") {
  auto model = TinyModel(5);
  auto params = model->Parameters();
  auto assembler = WeightsAssembler::Create(params, static_cast<int64_t>(params.size()), 1 << 20);
  REQUIRE(assembler.ok());
  std::string bytes(64, '\0');
  ChunkRef unknown{"model.layers.9.mlp.up_proj.weight", "F32", {4, 4}, 0, 64, bytes};
  CHECK((*assembler)->Add(unknown).message().find("model.layers.9.mlp.up_proj.weight") !=
        std::string::npos);
  ChunkRef misshapen{"model.norm.weight", "F32", {16}, 0, 64, bytes};
  absl::Status s = (*assembler)->Add(misshapen);
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message().find("shape [16], the model's is [64]") != std::string::npos);
  ChunkRef wrong_dtype{"model.norm.weight", "I8", {64}, 0, 64, bytes};
  CHECK((*assembler)->Add(wrong_dtype).message().find("dtype \"I8\"") != std::string::npos);
  ChunkRef out_of_order{"model.norm.weight", "F32", {64}, 128, 256, bytes};
  CHECK((*assembler)->Add(out_of_order).message().find("expected 0") != std::string::npos);
  CHECK(WeightsAssembler::Create(params, static_cast<int64_t>(params.size()) + 1, 0)
            .status()
            .code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cascade::rollout
