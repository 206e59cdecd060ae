// Continuous batching against batch-at-a-time generation, measured in the
// same run on the same model and the same sequences:
//   static      - the sequences in arrival order, `--batch` at a time, each
//                 batch one model::Model::Generate call that runs until its
//                 longest sequence ends (how Hugging Face generate() is used
//                 by trainers without an inference server, and how this
//                 replica scheduled before it joined sequences per step);
//   continuous  - RolloutCore: one GRPO-shaped request (--prompts x --group)
//                 with a token budget of --batch sequences' reservations, so
//                 at most as many sequences run at once as in a static batch,
//                 joined and retired between decoding steps.
// Response lengths follow a realistic long tail: sampling at temperature 1
// from a random model is near-uniform over the vocabulary, and --stop_tokens
// of them stop a sequence, so lengths are geometric (mean vocab/stop_tokens)
// capped at --max_new. Each sequence's tokens depend only on its seed, so
// both schedulers generate exactly the same tokens (checked).
//
// usage: batching_bench [--prompts 8] [--group 8] [--batch 16] [--max_new 384]
//                       [--stop_tokens 320] [--threads 0] [--repeats 2] [--quick]
// Times are the best of --repeats alternating runs.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "bench/model/bench_config.h"
#include "model/runtime.h"
#include "services/rollout/heap_tuning.h"
#include "services/rollout/rollout_core.h"

namespace cascade::rollout {
namespace {

struct Args {
  int prompts = 8;
  int group = 8;
  int batch = 16;
  int64_t prompt_tokens = 32;
  int64_t max_new = 384;
  int stop_tokens = 320;
  int threads = 0;
  int repeats = 2;
};

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

int Run(const Args& args) {
  const model::ModelConfig config = model::BenchModelConfig();
  auto loaded = model::Model::CreateRandom(config, /*seed=*/1, {.num_threads = args.threads});
  if (!loaded.ok()) {
    std::fprintf(stderr, "batching_bench: %s\n", loaded.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<model::Model> m = std::move(*loaded);

  GenerateInput input;
  std::mt19937_64 rng(7);
  for (int p = 0; p < args.prompts; ++p) {
    PromptInput prompt{"p" + std::to_string(p), {}};
    for (int64_t t = 0; t < args.prompt_tokens; ++t) {
      prompt.token_ids.push_back(1 + static_cast<int64_t>(rng() % (config.vocab_size - 1)));
    }
    input.prompts.push_back(std::move(prompt));
  }
  input.samples_per_prompt = args.group;
  input.sampling.temperature = 1.0;
  input.sampling.seed = 11;
  input.sampling.max_new_tokens = args.max_new;
  input.sampling.ignore_eos = true;
  for (int k = 0; k < args.stop_tokens; ++k) {
    input.sampling.stop_token_ids.push_back(config.vocab_size - 1 - k);
  }

  // The same sequences as RolloutCore forms them: prompt-major, sample seeds.
  std::vector<model::GenerationRequest> sequences;
  for (int p = 0; p < args.prompts; ++p) {
    for (int g = 0; g < args.group; ++g) {
      model::GenerationRequest r;
      r.prompt = input.prompts[p].token_ids;
      r.params = input.sampling;
      r.params.seed = SampleSeed(input.sampling.seed, p, g);
      sequences.push_back(std::move(r));
    }
  }
  std::printf("model: %s-shaped, hidden %lld, %lld layers, vocab %lld; %d threads\n",
              "Qwen3", static_cast<long long>(config.hidden_size),
              static_cast<long long>(config.num_hidden_layers),
              static_cast<long long>(config.vocab_size), args.threads);
  std::printf("workload: %zu sequences (%d prompts x %d), prompt %lld tokens, at most %d at once\n",
              sequences.size(), args.prompts, args.group, static_cast<long long>(args.prompt_tokens),
              args.batch);

  // 1. Static batches.
  std::vector<std::vector<int64_t>> static_tokens;
  int64_t static_total = 0, static_steps = 0;
  auto run_static = [&]() -> double {
    static_tokens.clear();
    static_total = static_steps = 0;
    const auto start = std::chrono::steady_clock::now();
    for (size_t first = 0; first < sequences.size(); first += args.batch) {
      std::vector<model::GenerationRequest> part(
          sequences.begin() + first,
          sequences.begin() + std::min(sequences.size(), first + args.batch));
      auto out = m->Generate(part);
      if (!out.ok()) {
        std::fprintf(stderr, "batching_bench: static: %s\n", out.status().ToString().c_str());
        std::exit(1);
      }
      int64_t longest = 0;
      for (auto& r : *out) {
        static_total += static_cast<int64_t>(r.token_ids.size());
        longest = std::max<int64_t>(longest, r.token_ids.size());
        static_tokens.push_back(std::move(r.token_ids));
      }
      static_steps += longest;
    }
    return Seconds(start);
  };

  // 2. Continuous batching in the replica (a fresh one per run, so its
  //    counters describe that run).
  RolloutOptions options;
  options.max_batch_tokens = args.batch * (args.prompt_tokens + args.max_new);
  std::vector<SampleOutput> continuous_outputs;
  RolloutState state;
  auto run_continuous = [&]() -> double {
    auto served = model::Model::CreateRandom(config, /*seed=*/1, {.num_threads = args.threads});
    if (!served.ok()) {
      std::fprintf(stderr, "batching_bench: %s\n", served.status().ToString().c_str());
      std::exit(1);
    }
    RolloutCore core(std::move(*served), 0, options);
    const auto start = std::chrono::steady_clock::now();
    auto outputs = core.Generate(input, absl::Hours(2));
    const double seconds = Seconds(start);
    if (!outputs.ok()) {
      std::fprintf(stderr, "batching_bench: continuous: %s\n", outputs.status().ToString().c_str());
      std::exit(1);
    }
    continuous_outputs = std::move(*outputs);
    state = core.State();
    return seconds;
  };

  // Alternate the two so that neither alone pays for warming the heap and
  // caches; keep the best time of each.
  double static_seconds = 1e300, continuous_seconds = 1e300;
  for (int r = 0; r < args.repeats; ++r) {
    static_seconds = std::min(static_seconds, run_static());
    continuous_seconds = std::min(continuous_seconds, run_continuous());
  }
  int64_t continuous_total = 0, mismatched = 0;
  for (size_t i = 0; i < continuous_outputs.size(); ++i) {
    continuous_total += static_cast<int64_t>(continuous_outputs[i].token_ids.size());
    if (continuous_outputs[i].token_ids != static_tokens[i]) ++mismatched;
  }

  int64_t shortest = args.max_new, longest = 0;
  for (const auto& t : static_tokens) {
    shortest = std::min<int64_t>(shortest, t.size());
    longest = std::max<int64_t>(longest, t.size());
  }
  std::printf("response lengths: mean %.1f, min %lld, max %lld tokens\n",
              static_cast<double>(static_total) / static_cast<double>(static_tokens.size()),
              static_cast<long long>(shortest), static_cast<long long>(longest));
  // Tokens per step = sequences that produced a token in an average step.
  std::printf("%-11s %9s %9s %10s %8s %16s\n", "scheduler", "seconds", "tokens", "tokens/s", "steps",
              "tokens per step");
  std::printf("%-11s %9.2f %9lld %10.1f %8lld %16.2f\n", "static", static_seconds,
              static_cast<long long>(static_total), static_total / static_seconds,
              static_cast<long long>(static_steps),
              static_cast<double>(static_total) / static_cast<double>(static_steps));
  std::printf("%-11s %9.2f %9lld %10.1f %8lld %16.2f\n", "continuous", continuous_seconds,
              static_cast<long long>(continuous_total), continuous_total / continuous_seconds,
              static_cast<long long>(state.steps_total),
              static_cast<double>(continuous_total) /
                  static_cast<double>(std::max<int64_t>(1, state.steps_total)));
  std::printf("continuous / static tokens/s: %.2fx; sequences differing: %lld of %zu\n",
              (continuous_total / continuous_seconds) / (static_total / static_seconds),
              static_cast<long long>(mismatched), continuous_outputs.size());
  return mismatched == 0 && continuous_total == static_total ? 0 : 1;
}

}  // namespace
}  // namespace cascade::rollout

int main(int argc, char** argv) {
  cascade::rollout::KeepLargeAllocationsInHeap();
  cascade::rollout::Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (a == name && i + 1 < argc) return argv[++i];
      return nullptr;
    };
    if (const char* v = value("--prompts")) args.prompts = std::atoi(v);
    else if (const char* v = value("--group")) args.group = std::atoi(v);
    else if (const char* v = value("--batch")) args.batch = std::atoi(v);
    else if (const char* v = value("--max_new")) args.max_new = std::atoll(v);
    else if (const char* v = value("--stop_tokens")) args.stop_tokens = std::atoi(v);
    else if (const char* v = value("--threads")) args.threads = std::atoi(v);
    else if (const char* v = value("--repeats")) args.repeats = std::atoi(v);
    else if (a == "--quick") {
      args.prompts = 2;
      args.group = 4;
      args.batch = 4;
      args.max_new = 64;
    } else {
      std::fprintf(stderr,
                   "usage: batching_bench [--prompts N] [--group G] [--batch B] [--max_new T] "
                   "[--stop_tokens K] [--threads N] [--repeats R] [--quick]\n");
      return 2;
    }
  }
  if (args.prompts < 1 || args.group < 1 || args.batch < 1 || args.max_new < 1 || args.repeats < 1 ||
      args.stop_tokens < 0) {
    std::fprintf(stderr, "batching_bench: every count must be positive\n");
    return 2;
  }
  return cascade::rollout::Run(args);
}
