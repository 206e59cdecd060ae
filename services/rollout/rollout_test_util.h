// Helpers shared by the rollout tests (not part of any library): tiny random
// models and their weights as raw named buffers.
#ifndef CASCADE_SERVICES_ROLLOUT_ROLLOUT_TEST_UTIL_H_
#define CASCADE_SERVICES_ROLLOUT_ROLLOUT_TEST_UTIL_H_

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "model/runtime.h"
#include "model/safetensors.h"
#include "model/test_util.h"

namespace cascade::rollout::testing {

// Qwen2 layout (untied head, q/k/v biases): every kind of tensor travels.
inline model::ModelConfig TinyRolloutConfig() {
  return model::testing::TinyConfig(model::Arch::kQwen2);
}

inline std::unique_ptr<model::Model> TinyModel(uint64_t seed) {
  auto m = model::Model::CreateRandom(TinyRolloutConfig(), seed, {.num_threads = 1},
                                      /*perturb=*/0.1);
  return m.ok() ? std::move(*m) : nullptr;
}

// Empty when every token of `generated` is a greedy choice of `m` after
// `prompt` and the tokens before it: its logit is within `tolerance` of the
// largest. Otherwise says which token is not. Greedy tokens from differently
// shaped batches may differ where two logits tie up to float rounding; this
// accepts such a flip and nothing else.
inline std::string GreedyViolation(const model::Model& m, const std::vector<int64_t>& prompt,
                                   const std::vector<int64_t>& generated, float tolerance = 1e-4f) {
  std::vector<int64_t> sequence = prompt;
  sequence.insert(sequence.end(), generated.begin(), generated.end());
  auto logits = m.Logits({sequence}, /*use_cache=*/false);
  if (!logits.ok()) return logits.status().ToString();
  const int64_t vocab = m.config().vocab_size;
  for (size_t t = 0; t < generated.size(); ++t) {
    // Logits at the position before token t predict it.
    const float* row = logits->front().data() + (prompt.size() + t - 1) * vocab;
    const float best = *std::max_element(row, row + vocab);
    if (row[generated[t]] < best - tolerance) {
      return "token " + std::to_string(t) + " (" + std::to_string(generated[t]) + ") has logit " +
             std::to_string(row[generated[t]]) + ", the largest is " + std::to_string(best);
    }
  }
  return "";
}

// A model's weights as the learner would hold them: named little-endian
// buffers. Goes through a saved safetensors directory, whose mapping the
// views point into.
struct ExportedWeights {
  std::string dir;
  std::unique_ptr<model::SafetensorsCheckpoint> checkpoint;
  std::vector<model::TensorView> tensors;
  size_t total_bytes = 0;

  ~ExportedWeights() {
    checkpoint.reset();
    std::error_code ignored;
    if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
  }
};

inline std::unique_ptr<ExportedWeights> ExportWeights(const model::Model& m) {
  auto out = std::make_unique<ExportedWeights>();
  out->dir = model::testing::MakeTempDir("rollout_weights");
  if (out->dir.empty() || !m.Save(out->dir).ok()) return nullptr;
  auto ckpt = model::SafetensorsCheckpoint::OpenDir(out->dir);
  if (!ckpt.ok()) return nullptr;
  out->checkpoint = std::make_unique<model::SafetensorsCheckpoint>(std::move(*ckpt));
  for (const std::string& name : out->checkpoint->Names()) {
    out->tensors.push_back(*out->checkpoint->Find(name));
    out->total_bytes += out->tensors.back().nbytes;
  }
  return out;
}

}  // namespace cascade::rollout::testing

#endif  // CASCADE_SERVICES_ROLLOUT_ROLLOUT_TEST_UTIL_H_
