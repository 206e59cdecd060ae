// Learner step time: one GRPO step (forward, token-level loss, backward,
// clipping, AdamW) of Cascade's learner against a plain PyTorch eager
// reference of the same loss (bench/learner/grpo_reference.py) on the same
// ~21.7M-parameter model, batch, learning rate and thread count, in one run.
// The first step of each side is a warm-up; the table reports the median of
// the rest, and the step-1 losses of both sides as a check that they compute
// the same thing.
//
// The learner runs twice, with the vocabulary projection in chunks (the
// default) and in one piece, reporting each one's step time and the peak RSS.
//
//   learner_bench [--sequences 8] [--prompt 64] [--response 192] [--steps 4] [--threads 2]
//                 [--reference 0]   (0: skip the Python reference)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "bench/model/bench_config.h"
#include "common/json_util.h"
#include "model/runtime.h"
#include "services/learner/learner_core.h"
#include "services/rollout/heap_tuning.h"

namespace cascade::learner {
namespace {

namespace fs = std::filesystem;

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

int Flag(int argc, char** argv, const std::string& name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

int Run(int argc, char** argv) {
  const int sequences = Flag(argc, argv, "sequences", 8);
  const int prompt = Flag(argc, argv, "prompt", 64);
  const int response = Flag(argc, argv, "response", 192);
  const int steps = std::max(2, Flag(argc, argv, "steps", 4));
  const int threads = Flag(argc, argv, "threads", 2);
  const double lr = 1e-5;

  // 1. One model directory both sides load.
  const fs::path root = fs::temp_directory_path() / ("learner_bench_" + std::to_string(getpid()));
  fs::create_directories(root);
  const std::string dir = (root / "model").string();
  auto model = model::Model::CreateRandom(model::BenchModelConfig(), /*seed=*/7);
  if (!model.ok() || !(*model)->Save(dir).ok()) {
    std::cerr << "learner_bench: cannot create the model\n";
    return 1;
  }

  // 2. One GRPO batch: groups of two responses with advantages +1 / -1.
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> token(1, 31999);
  Batch batch;
  batch.loss = LossKind::kGrpo;
  Json spec_sequences = Json::array();
  for (int i = 0; i < sequences; ++i) {
    Sequence sequence;
    for (int t = 0; t < prompt + response; ++t) {
      sequence.token_ids.push_back(token(rng));
      sequence.loss_mask.push_back(t >= prompt ? 1 : 0);
    }
    sequence.advantage = i % 2 == 0 ? 1.0f : -1.0f;
    spec_sequences.push_back({{"ids", sequence.token_ids},
                              {"mask", sequence.loss_mask},
                              {"advantage", sequence.advantage}});
    batch.sequences.push_back(std::move(sequence));
  }

  // 3. Cascade: the learner core, constant learning rate, clipping at 1;
  //    first with activation checkpointing, then with the vocabulary
  //    projection in chunks (the default), then in one piece. Peak RSS after
  //    each is the process's high-water mark, so the sides run in the order
  //    of the memory they are expected to need, and a figure grows only if
  //    its side needs more than every side before it.
  struct Side {
    std::vector<double> seconds;
    double first_loss = 0;
    double peak_rss_gib = 0;
  };
  auto run_learner = [&](int64_t logit_chunk_elements,
                         bool activation_checkpointing) -> std::optional<Side> {
    LearnerOptions options;
    options.optimizer.learning_rate = lr;
    options.num_threads = threads;
    options.logit_chunk_elements = logit_chunk_elements;
    options.activation_checkpointing = activation_checkpointing;
    auto core = LearnerCore::Open(dir, options);
    if (!core.ok()) {
      std::cerr << "learner_bench: " << core.status() << "\n";
      return std::nullopt;
    }
    Side side;
    for (int step = 0; step < steps; ++step) {
      batch.policy_version = step;
      double start = Seconds();
      auto stats = (*core)->TrainStep(batch);
      if (!stats.ok()) {
        std::cerr << "learner_bench: " << stats.status() << "\n";
        return std::nullopt;
      }
      if (step == 0) side.first_loss = stats->loss;
      if (step > 0) side.seconds.push_back(Seconds() - start);
    }
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    side.peak_rss_gib = static_cast<double>(usage.ru_maxrss) / (1024.0 * 1024.0);  // KiB -> GiB
    return side;
  };
  const int64_t default_chunk = LearnerOptions().logit_chunk_elements;
  const std::optional<Side> recomputed = run_learner(default_chunk, /*activation_checkpointing=*/true);
  const std::optional<Side> chunked = run_learner(default_chunk, false);
  const std::optional<Side> whole = run_learner(std::numeric_limits<int64_t>::max(), false);
  if (!recomputed.has_value() || !chunked.has_value() || !whole.has_value()) return 1;
  const double tokens = static_cast<double>(sequences) * (prompt + response);
  std::printf("learner step: %d sequences x %d tokens (%d assistant), %.1fM parameters, %d threads\n",
              sequences, prompt + response, response,
              static_cast<double>((*model)->config().NumParameters()) / 1e6, threads);
  std::printf("| side | step seconds (median) | tokens/s | step-1 loss | peak RSS so far (GiB) |\n"
              "|---|---|---|---|---|\n");
  std::printf("| Cascade learner, head in chunks, activation checkpointing | %.3f | %.0f | %.6f | %.2f |\n",
              Median(recomputed->seconds), tokens / Median(recomputed->seconds), recomputed->first_loss,
              recomputed->peak_rss_gib);
  std::printf("| Cascade learner, head in chunks | %.3f | %.0f | %.6f | %.2f |\n", Median(chunked->seconds),
              tokens / Median(chunked->seconds), chunked->first_loss, chunked->peak_rss_gib);
  std::printf("| Cascade learner, head in one piece | %.3f | %.0f | %.6f | %.2f |\n", Median(whole->seconds),
              tokens / Median(whole->seconds), whole->first_loss, whole->peak_rss_gib);
  if (Flag(argc, argv, "reference", 1) == 0) {
    fs::remove_all(root);
    return 0;
  }
  const std::vector<double>& ours = chunked->seconds;

  // 4. The Python reference on the same weights and batch.
  const std::string spec_path = (root / "spec.json").string();
  std::ofstream(spec_path) << Json{{"sequences", spec_sequences},
                                   {"steps", steps},
                                   {"lr", lr},
                                   {"threads", threads}}
                                  .dump();
  const std::string command = std::string("/usr/bin/python3 ") + CASCADE_SOURCE_DIR +
                              "/bench/learner/grpo_reference.py " + dir + " " + spec_path;
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  char buffer[4096];
  while (pipe != nullptr && fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  if (pipe == nullptr || pclose(pipe) != 0) {
    std::cerr << "learner_bench: the Python reference failed\n";
    return 1;
  }
  Json report = Json::parse(output);
  std::vector<double> theirs;
  for (size_t i = 1; i < report["step_seconds"].size(); ++i) {
    theirs.push_back(report["step_seconds"][i].get<double>());
  }
  const double their_first_loss = report["losses"][0].get<double>();
  fs::remove_all(root);

  std::printf("| Python reference | %.3f | %.0f | %.6f | (another process) |\n", Median(theirs),
              tokens / Median(theirs), their_first_loss);
  std::printf("ratio (reference / Cascade step time): %.2fx\n", Median(theirs) / Median(ours));
  return 0;
}

}  // namespace
}  // namespace cascade::learner

int main(int argc, char** argv) {
  // The heap settings of the `learner` binary, so the step measured is the
  // step it runs.
  cascade::rollout::KeepLargeAllocationsInHeap();
  return cascade::learner::Run(argc, argv);
}
