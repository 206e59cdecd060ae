#include "model/runtime.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "model/torch_status.h"
#include "model/transformer.h"

namespace cascade::model {
namespace {

// Sequences per forward in TokenLogProbs; bounds the KV cache and activations.
constexpr size_t kScoreBatch = 16;

// Uniform double in [0, 1) from 53 random bits (the same on every platform,
// unlike std::uniform_real_distribution).
double Uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Draws one token from a row of float32 logits under `p`. Runs on the CPU so
// that the result depends only on the logits and this request's stream.
int64_t SampleToken(const float* logits, int64_t vocab, const SamplingParams& p,
                    std::mt19937_64& rng) {
  if (p.temperature <= 0 || p.top_k == 1) {
    return std::max_element(logits, logits + vocab) - logits;
  }
  std::vector<int32_t> cand(static_cast<size_t>(vocab));
  std::iota(cand.begin(), cand.end(), 0);
  // Larger logit first; ties broken by the smaller id so the order is total.
  auto by_logit = [logits](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  if (p.top_k > 0 && p.top_k < vocab) {
    std::nth_element(cand.begin(), cand.begin() + p.top_k, cand.end(), by_logit);
    cand.resize(static_cast<size_t>(p.top_k));
  }
  const double inv_t = 1.0 / p.temperature;
  double max_logit = -INFINITY;
  for (int32_t i : cand) max_logit = std::max(max_logit, static_cast<double>(logits[i]));
  std::vector<double> w(static_cast<size_t>(vocab), 0.0);
  double total = 0;
  for (int32_t i : cand) {
    w[i] = std::exp((logits[i] - max_logit) * inv_t);
    total += w[i];
  }
  if (p.top_p < 1.0) {
    // Nucleus: the most likely tokens whose mass first reaches top_p. Sort
    // only as far as needed (most of the mass sits in a few hundred tokens).
    size_t k = std::min<size_t>(256, cand.size());
    size_t keep = cand.size();
    while (true) {
      std::partial_sort(cand.begin(), cand.begin() + k, cand.end(), by_logit);
      double cum = 0;
      size_t i = 0;
      for (; i < k; ++i) {
        cum += w[cand[i]] / total;
        if (cum >= p.top_p) break;
      }
      if (i < k) {
        keep = i + 1;
        break;
      }
      if (k == cand.size()) break;
      k = std::min(cand.size(), k * 4);
    }
    cand.resize(keep);
    total = 0;
    for (int32_t i : cand) total += w[i];
  } else if (p.top_k > 0 && p.top_k < vocab) {
    // nth_element left the top-k in no defined order; fix one. Without top-k
    // the candidates are already in id order, which is just as deterministic
    // and saves sorting the whole vocabulary for every token.
    std::sort(cand.begin(), cand.end(), by_logit);
  }
  double u = Uniform(rng) * total;
  for (int32_t i : cand) {
    u -= w[i];
    if (u < 0) return i;
  }
  return cand.back();
}

at::Tensor Tensor2D(const std::vector<int64_t>& flat, int64_t rows, int64_t cols) {
  return at::tensor(flat, at::TensorOptions().dtype(at::kLong)).view({rows, cols});
}

at::Tensor BoolTensor2D(const std::vector<int64_t>& flat, int64_t rows, int64_t cols) {
  return Tensor2D(flat, rows, cols).to(at::kBool);
}

}  // namespace

const char* FinishReasonName(FinishReason reason) {
  return reason == FinishReason::kStop ? "stop" : "length";
}

Model::Model(std::unique_ptr<Transformer> transformer) : transformer_(std::move(transformer)) {}
Model::~Model() = default;

const ModelConfig& Model::config() const { return transformer_->config(); }

std::vector<ParameterInfo> Model::Parameters() const {
  std::vector<ParameterInfo> out;
  for (const auto& [name, tensor] : transformer_->named_parameters()) {
    ParameterInfo info;
    info.name = name;
    switch (tensor.scalar_type()) {
      case at::kBFloat16: info.dtype = DType::kBF16; break;
      case at::kHalf: info.dtype = DType::kF16; break;
      default: info.dtype = DType::kF32; break;
    }
    info.shape = tensor.sizes().vec();
    out.push_back(std::move(info));
  }
  return out;
}

StatusOr<std::unique_ptr<Model>> Model::WithWeights(const std::vector<TensorView>& tensors) const {
  StatusOr<std::unique_ptr<Transformer>> t = transformer_->WithWeights(tensors);
  if (!t.ok()) return t.status();
  return std::unique_ptr<Model>(new Model(std::move(*t)));
}

StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& dir, const RuntimeOptions& options) {
  StatusOr<std::unique_ptr<Transformer>> t =
      Transformer::Load(dir, DeviceOptions{options.device, options.dtype, options.num_threads});
  if (!t.ok()) return t.status();
  return std::unique_ptr<Model>(new Model(std::move(*t)));
}

StatusOr<std::unique_ptr<Model>> Model::CreateRandom(const ModelConfig& config, uint64_t seed,
                                                     const RuntimeOptions& options, double perturb) {
  StatusOr<std::unique_ptr<Transformer>> t = Transformer::CreateRandom(
      config, InitOptions{seed, perturb},
      DeviceOptions{options.device, options.dtype, options.num_threads});
  if (!t.ok()) return t.status();
  return std::unique_ptr<Model>(new Model(std::move(*t)));
}

Status Model::Save(const std::string& dir, const std::vector<std::string>& extra_files,
                   const std::string& dtype, size_t max_shard_bytes) const {
  SaveOptions opts;
  opts.dtype = dtype;
  opts.extra_files = extra_files;
  opts.max_shard_bytes = max_shard_bytes;
  return transformer_->Save(dir, opts);
}

Status Model::CheckIds(const std::vector<int64_t>& ids, const std::string& what) const {
  const int64_t vocab = config().vocab_size;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      return InvalidArgumentError(what + "[" + std::to_string(i) + "]: token id " +
                                  std::to_string(ids[i]) + " outside the vocabulary [0, " +
                                  std::to_string(vocab) + ")");
    }
  }
  return OkStatus();
}

StatusOr<std::vector<GenerationResult>> Model::Generate(
    const std::vector<GenerationRequest>& requests, const GenerateOptions& options) const {
  if (requests.empty()) return std::vector<GenerationResult>{};
  for (size_t r = 0; r < requests.size(); ++r) {
    const std::string where = "requests[" + std::to_string(r) + "]";
    const SamplingParams& p = requests[r].params;
    if (requests[r].prompt.empty()) return InvalidArgumentError(where + ".prompt: empty");
    Status s = CheckIds(requests[r].prompt, where + ".prompt");
    if (!s.ok()) return s;
    if (p.max_new_tokens < 1) return InvalidArgumentError(where + ".max_new_tokens: must be >= 1");
    if (!(p.temperature >= 0)) return InvalidArgumentError(where + ".temperature: must be >= 0");
    if (!(p.top_p > 0 && p.top_p <= 1)) return InvalidArgumentError(where + ".top_p: must be in (0, 1]");
    if (p.top_k < 0) return InvalidArgumentError(where + ".top_k: must be >= 0");
  }
  Status pad = CheckIds({options.pad_token_id}, "pad_token_id");
  if (!pad.ok()) return pad;

  return CatchStatus("generate", [&]() -> StatusOr<std::vector<GenerationResult>> {
    c10::InferenceMode inference;
    const Transformer& m = *transformer_;
    const at::Device device = m.device();
    const int64_t b = static_cast<int64_t>(requests.size());
    const int64_t vocab = config().vocab_size;
    int64_t p_len = 0, max_new = 0;
    for (const GenerationRequest& r : requests) {
      p_len = std::max<int64_t>(p_len, r.prompt.size());
      max_new = std::max(max_new, r.params.max_new_tokens);
    }

    // Left padding puts every prompt's last token in the last column, so one
    // slot per step serves the whole batch; positions count real tokens only.
    std::vector<int64_t> ids(b * p_len, options.pad_token_id), valid(b * p_len, 0), pos(b * p_len, 0);
    std::vector<int64_t> next_pos(b);
    std::vector<std::set<int64_t>> stops(b);
    std::vector<std::mt19937_64> rngs;
    for (int64_t i = 0; i < b; ++i) {
      const auto& prompt = requests[i].prompt;
      const int64_t off = p_len - static_cast<int64_t>(prompt.size());
      for (size_t j = 0; j < prompt.size(); ++j) {
        ids[i * p_len + off + j] = prompt[j];
        valid[i * p_len + off + j] = 1;
        pos[i * p_len + off + j] = static_cast<int64_t>(j);
      }
      next_pos[i] = static_cast<int64_t>(prompt.size());
      const SamplingParams& p = requests[i].params;
      stops[i].insert(p.stop_token_ids.begin(), p.stop_token_ids.end());
      if (!p.ignore_eos) stops[i].insert(config().eos_token_ids.begin(), config().eos_token_ids.end());
      rngs.emplace_back(p.seed);
    }
    at::Tensor all_ids = Tensor2D(ids, b, p_len).to(device);
    at::Tensor all_valid = BoolTensor2D(valid, b, p_len).to(device);
    at::Tensor all_pos = Tensor2D(pos, b, p_len).to(device);

    KvCache cache;
    at::Tensor logits;
    if (options.use_cache) {
      cache = m.NewCache(b, p_len + max_new);
      at::Tensor hidden = m.Hidden(all_ids, all_pos, all_valid, &cache);
      logits = m.Logits(hidden.select(1, p_len - 1));
    } else {
      at::Tensor hidden = m.Hidden(all_ids, all_pos, all_valid, nullptr);
      logits = m.Logits(hidden.select(1, p_len - 1));
    }

    std::vector<GenerationResult> results(b);
    std::vector<bool> finished(b, false);
    for (int64_t step = 0; step < max_new; ++step) {
      at::Tensor logits_cpu = logits.to(at::kCPU).contiguous();
      at::Tensor logp_cpu = at::log_softmax(logits_cpu, -1).contiguous();
      const float* lg = logits_cpu.data_ptr<float>();
      const float* lp = logp_cpu.data_ptr<float>();
      std::vector<int64_t> next(b, options.pad_token_id), next_valid(b, 0), positions(b, 0);
      bool any_active = false;
      for (int64_t i = 0; i < b; ++i) {
        if (finished[i]) continue;
        const SamplingParams& p = requests[i].params;
        int64_t tok = SampleToken(lg + i * vocab, vocab, p, rngs[i]);
        GenerationResult& res = results[i];
        res.token_ids.push_back(tok);
        res.logprobs.push_back(lp[i * vocab + tok]);
        if (stops[i].count(tok)) {
          finished[i] = true;
          res.finish_reason = FinishReason::kStop;
        } else if (static_cast<int64_t>(res.token_ids.size()) >= p.max_new_tokens) {
          finished[i] = true;
          res.finish_reason = FinishReason::kLength;
        }
        if (finished[i]) continue;
        any_active = true;
        next[i] = tok;
        next_valid[i] = 1;
        positions[i] = next_pos[i]++;
      }
      if (!any_active) break;
      at::Tensor step_ids = Tensor2D(next, b, 1).to(device);
      at::Tensor step_valid = BoolTensor2D(next_valid, b, 1).to(device);
      at::Tensor step_pos = Tensor2D(positions, b, 1).to(device);
      if (options.use_cache) {
        logits = m.Logits(m.Hidden(step_ids, step_pos, step_valid, &cache).select(1, 0));
      } else {
        all_ids = at::cat({all_ids, step_ids}, 1);
        all_valid = at::cat({all_valid, step_valid}, 1);
        all_pos = at::cat({all_pos, step_pos}, 1);
        at::Tensor hidden = m.Hidden(all_ids, all_pos, all_valid, nullptr);
        logits = m.Logits(hidden.select(1, all_ids.size(1) - 1));
      }
    }
    return results;
  });
}

StatusOr<std::vector<std::vector<float>>> Model::TokenLogProbs(
    const std::vector<std::vector<int64_t>>& sequences, const LogProbOptions& options) const {
  for (size_t i = 0; i < sequences.size(); ++i) {
    const std::string where = "sequences[" + std::to_string(i) + "]";
    if (sequences[i].size() < 2) return InvalidArgumentError(where + ": needs at least 2 tokens");
    Status s = CheckIds(sequences[i], where);
    if (!s.ok()) return s;
  }
  return CatchStatus("token log-probs", [&]() -> StatusOr<std::vector<std::vector<float>>> {
    c10::InferenceMode inference;
    std::vector<std::vector<float>> out(sequences.size());
    for (size_t first = 0; first < sequences.size(); first += kScoreBatch) {
      const size_t last = std::min(sequences.size(), first + kScoreBatch);
      const int64_t b = static_cast<int64_t>(last - first);
      int64_t len = 0;
      for (size_t i = first; i < last; ++i) len = std::max<int64_t>(len, sequences[i].size());
      // Right padding: position t of every row is its own token t.
      std::vector<int64_t> ids(b * len, 0), valid(b * len, 0);
      for (int64_t r = 0; r < b; ++r) {
        const auto& s = sequences[first + r];
        std::copy(s.begin(), s.end(), ids.begin() + r * len);
        std::fill(valid.begin() + r * len, valid.begin() + r * len + s.size(), 1);
      }
      const at::Device device = transformer_->device();
      at::Tensor lp = transformer_
                          ->ScoreTokenLogProbs(Tensor2D(ids, b, len).to(device),
                                               BoolTensor2D(valid, b, len).to(device),
                                               options.chunk_size)
                          .to(at::kCPU)
                          .contiguous();
      const float* data = lp.data_ptr<float>();
      for (int64_t r = 0; r < b; ++r) {
        const size_t n = sequences[first + r].size() - 1;
        out[first + r].assign(data + r * (len - 1), data + r * (len - 1) + n);
      }
    }
    return out;
  });
}

StatusOr<std::vector<std::vector<float>>> Model::Logits(
    const std::vector<std::vector<int64_t>>& sequences, bool use_cache, int64_t step) const {
  for (size_t i = 0; i < sequences.size(); ++i) {
    const std::string where = "sequences[" + std::to_string(i) + "]";
    if (sequences[i].empty()) return InvalidArgumentError(where + ": empty");
    Status s = CheckIds(sequences[i], where);
    if (!s.ok()) return s;
  }
  if (sequences.empty()) return std::vector<std::vector<float>>{};
  return CatchStatus("logits", [&]() -> StatusOr<std::vector<std::vector<float>>> {
    c10::InferenceMode inference;
    const Transformer& m = *transformer_;
    const int64_t b = static_cast<int64_t>(sequences.size());
    const int64_t vocab = config().vocab_size;
    int64_t len = 0;
    for (const auto& s : sequences) len = std::max<int64_t>(len, s.size());
    std::vector<int64_t> ids(b * len, 0), valid(b * len, 0), pos(b * len, 0);
    for (int64_t r = 0; r < b; ++r) {
      const auto& s = sequences[r];
      const int64_t off = len - static_cast<int64_t>(s.size());
      for (size_t j = 0; j < s.size(); ++j) {
        ids[r * len + off + j] = s[j];
        valid[r * len + off + j] = 1;
        pos[r * len + off + j] = static_cast<int64_t>(j);
      }
    }
    const at::Device device = m.device();
    at::Tensor t_ids = Tensor2D(ids, b, len).to(device);
    at::Tensor t_valid = BoolTensor2D(valid, b, len).to(device);
    at::Tensor t_pos = Tensor2D(pos, b, len).to(device);
    at::Tensor logits;
    if (!use_cache) {
      logits = m.Logits(m.Hidden(t_ids, t_pos, t_valid, nullptr));
    } else {
      if (step <= 0) step = len;
      KvCache cache = m.NewCache(b, len);
      std::vector<at::Tensor> pieces;
      for (int64_t c0 = 0; c0 < len; c0 += step) {
        const int64_t n = std::min(step, len - c0);
        pieces.push_back(m.Logits(m.Hidden(t_ids.narrow(1, c0, n), t_pos.narrow(1, c0, n),
                                           t_valid.narrow(1, c0, n), &cache)));
      }
      logits = at::cat(pieces, 1);
    }
    logits = logits.to(at::kCPU).contiguous();
    const float* data = logits.data_ptr<float>();
    std::vector<std::vector<float>> out(b);
    for (int64_t r = 0; r < b; ++r) {
      const int64_t n = static_cast<int64_t>(sequences[r].size());
      const float* row = data + (r * len + (len - n)) * vocab;
      out[r].assign(row, row + n * vocab);
    }
    return out;
  });
}

}  // namespace cascade::model
