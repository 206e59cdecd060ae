// Catch2 helpers shared by runtime_test.cc and gpu_check_test.cc (not part of
// the library): prompts that need padding, greedy requests, the logits of an
// independent Python implementation run on a saved model directory, and the
// exact sampling distribution with a chi-square test against it.
#ifndef CASCADE_MODEL_RUNTIME_TEST_UTIL_H_
#define CASCADE_MODEL_RUNTIME_TEST_UTIL_H_

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "model/json.h"
#include "model/runtime.h"

namespace cascade::model::testing {

// Prompts of different lengths so that batches need padding.
inline const std::vector<std::vector<int64_t>> kSequences = {
    {5, 17, 256, 3, 999, 42, 7, 7, 100, 1, 2, 3, 4},
    {998, 11},
    {300, 301, 302, 303, 304, 305, 306},
};

// Greedy decoding of `max_new` tokens, EOS ignored.
inline GenerationRequest GreedyRequest(std::vector<int64_t> prompt, int64_t max_new) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.params.temperature = 0;
  r.params.max_new_tokens = max_new;
  r.params.ignore_eos = true;
  return r;
}

// `params` with its own seed and length, EOS ignored.
inline GenerationRequest SampledRequest(std::vector<int64_t> prompt, const SamplingParams& params,
                                        uint64_t seed, int64_t max_new) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.params = params;
  r.params.seed = seed;
  r.params.max_new_tokens = max_new;
  r.params.ignore_eos = true;
  return r;
}

// The float32 logits of the position after `prompt`.
inline std::vector<float> NextTokenLogits(const Model& model, const std::vector<int64_t>& prompt) {
  auto logits = model.Logits({prompt}, /*use_cache=*/false);
  REQUIRE(logits.ok());
  const int64_t vocab = model.config().vocab_size;
  return std::vector<float>((*logits)[0].end() - vocab, (*logits)[0].end());
}

// How often each token was drawn first by `n` requests for `prompt` under
// `params` with seeds 1000, 1001, ...
inline std::map<int64_t, int> FirstTokenCounts(const Model& model,
                                               const std::vector<int64_t>& prompt,
                                               const SamplingParams& params, int n,
                                               const GenerateOptions& options) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < n; ++i) requests.push_back(SampledRequest(prompt, params, 1000 + i, 1));
  auto drawn = model.Generate(requests, options);
  REQUIRE(drawn.ok());
  std::map<int64_t, int> counts;
  for (const GenerationResult& r : *drawn) ++counts[r.token_ids[0]];
  return counts;
}

// Runs `script logits DIR IN.json OUT.bin` from tests/model_reference (the
// plain PyTorch reference.py, or transformers_reference.py) on a saved model
// and returns the float32 logits of every position of every sequence.
inline std::vector<std::vector<float>> ReferenceLogits(
    const std::string& dir, const std::vector<std::vector<int64_t>>& seqs, int64_t vocab,
    const std::string& script = "reference.py") {
  Json in = Json::MakeArray();
  for (const auto& s : seqs) {
    Json row = Json::MakeArray();
    for (int64_t id : s) row.push_back(Json(id));
    in.push_back(row);
  }
  REQUIRE(WriteStringToFile(dir + "/ref_in.json", in.Dump()).ok());
  const std::string cmd = std::string("REFERENCE_THREADS=1 ") + CASCADE_PYTHON + " " +
                          CASCADE_MODEL_REFERENCE_DIR + "/" + script + " logits " + dir + " " +
                          dir + "/ref_in.json " + dir + "/ref_out.bin";
  INFO(cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::string raw = *ReadFileToString(dir + "/ref_out.bin");
  std::vector<std::vector<float>> out;
  size_t off = 0;
  for (const auto& s : seqs) {
    std::vector<float> v(s.size() * vocab);
    REQUIRE(off + v.size() * 4 <= raw.size());
    std::memcpy(v.data(), raw.data() + off, v.size() * 4);
    off += v.size() * 4;
    out.push_back(std::move(v));
  }
  REQUIRE(off == raw.size());
  return out;
}

inline float MaxAbsDiff(const std::vector<std::vector<float>>& a,
                        const std::vector<std::vector<float>>& b) {
  REQUIRE(a.size() == b.size());
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].size() == b[i].size());
    for (size_t j = 0; j < a[i].size(); ++j) worst = std::max(worst, std::fabs(a[i][j] - b[i][j]));
  }
  return worst;
}

// The distribution a request samples from at the prompt's next position:
// softmax(logits / temperature), cut to top-k, then to the smallest prefix by
// probability whose mass reaches top-p (ties to the smaller id), renormalised.
inline std::vector<double> TargetDistribution(const std::vector<float>& logits,
                                              const SamplingParams& p) {
  const size_t vocab = logits.size();
  std::vector<size_t> order(vocab);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return logits[a] > logits[b]; });
  const size_t k = p.top_k > 0 ? std::min<size_t>(p.top_k, vocab) : vocab;
  std::vector<double> prob(vocab, 0.0);
  double total = 0;
  for (size_t r = 0; r < k; ++r) {
    prob[order[r]] = std::exp((logits[order[r]] - logits[order[0]]) / p.temperature);
    total += prob[order[r]];
  }
  double before = 0;
  for (size_t r = 0; r < k; ++r) {
    const double q = prob[order[r]] / total;
    prob[order[r]] = before < p.top_p ? q : 0.0;
    before += q;
  }
  total = std::accumulate(prob.begin(), prob.end(), 0.0);
  for (double& q : prob) q /= total;
  return prob;
}

// Pearson's statistic of `counts` against `prob`, tokens expected fewer than 5
// times pooled; `dof` gets the degrees of freedom. Infinite when a token of
// probability 0 was drawn.
inline double ChiSquare(const std::map<int64_t, int>& counts, const std::vector<double>& prob,
                        int n, int* dof) {
  double stat = 0, pooled_expected = 0, pooled_seen = 0;
  int cells = 0;
  for (size_t t = 0; t < prob.size(); ++t) {
    auto it = counts.find(static_cast<int64_t>(t));
    const double seen = it == counts.end() ? 0 : it->second;
    const double expected = prob[t] * n;
    if (prob[t] == 0 && seen > 0) return INFINITY;
    if (expected >= 5) {
      stat += (seen - expected) * (seen - expected) / expected;
      ++cells;
    } else {
      pooled_expected += expected;
      pooled_seen += seen;
    }
  }
  if (pooled_expected > 0) {
    stat += (pooled_seen - pooled_expected) * (pooled_seen - pooled_expected) / pooled_expected;
    ++cells;
  }
  *dof = cells - 1;
  return stat;
}

// The chi-square value exceeded with probability 1e-4 (Wilson-Hilferty).
inline double ChiSquareCritical(int dof) {
  const double z = 3.719, k = dof;
  return k * std::pow(1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k)), 3);
}

}  // namespace cascade::model::testing

#endif  // CASCADE_MODEL_RUNTIME_TEST_UTIL_H_
