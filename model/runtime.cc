#include "model/runtime.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>
#include <tuple>

#include "model/torch_status.h"
#include "model/transformer.h"

namespace cascade::model {
namespace {

// Sequences per forward in TokenLogProbs; bounds the KV cache and activations.
constexpr size_t kScoreBatch = 16;

// About how much memory the device sampler's temporaries take at once (a
// batch of 256 rows over Qwen3's 152k vocabulary would take ~2 GB unchunked).
constexpr int64_t kSamplerChunkBytes = int64_t{256} << 20;

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

// The next token of each row of `logits` [rows, vocab] (float32, any
// device), with its log-prob under the unscaled distribution. `params[i]` is
// null for a row that takes no token (finished, or padding of the batch);
// `rngs[i]` is that row's stream.
struct Drawn {
  explicit Drawn(int64_t rows) : tokens(rows, -1), logprobs(rows, 0.0f) {}
  std::vector<int64_t> tokens;  // -1 for rows without params
  std::vector<float> logprobs;
};

// Logits that are NaN or infinite come from diverged or corrupt weights; no
// token drawn from them means anything, so the step fails instead.
[[noreturn]] void ThrowNotFinite(int64_t row) {
  throw std::runtime_error("the logits of batch row " + std::to_string(row) +
                           " are not finite (NaN or inf): the weights diverged or are corrupt");
}

// On the CPU, row by row with SampleToken.
Drawn DrawOnHost(const at::Tensor& logits, const std::vector<const SamplingParams*>& params,
                 const std::vector<std::mt19937_64*>& rngs) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  at::Tensor lg_cpu = logits.to(at::kCPU).contiguous();
  at::Tensor lp_cpu = at::log_softmax(lg_cpu, -1).contiguous();
  const float* lg = lg_cpu.data_ptr<float>();
  const float* lp = lp_cpu.data_ptr<float>();
  Drawn out(rows);
  for (int64_t i = 0; i < rows; ++i) {
    if (params[i] == nullptr) continue;
    const float* row = lg + i * vocab;
    if (!std::all_of(row, row + vocab, [](float x) { return std::isfinite(x); })) ThrowNotFinite(i);
    out.tokens[i] = SampleToken(row, vocab, *params[i], *rngs[i]);
    out.logprobs[i] = lp[i * vocab + out.tokens[i]];
  }
  return out;
}

// On the logits' device, a chunk of rows at a time, by inverse CDF: each row's
// candidates sorted by logit (a stable sort of the unscaled logits, so ties
// go to the smaller id as in SampleToken), cut to top-k, then to the
// smallest prefix whose mass reaches top-p, and the token taken where the
// cumulative mass first exceeds u times the total, u being one uniform from
// the row's stream. The arithmetic after the sort is in float64, as on the
// host: in float32 the cumulative mass saturates near 1 and the tail of a
// large vocabulary (probabilities under ~6e-8) could never be drawn. Greedy
// rows are top-1 and draw no uniform, as on the host; an all-greedy step is
// one argmax. Only a few numbers per row come back to the CPU.
Drawn DrawOnDevice(const at::Tensor& logits, const std::vector<const SamplingParams*>& params,
                   const std::vector<std::mt19937_64*>& rngs, int64_t chunk_rows) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  std::vector<double> temperature(rows, 1.0), top_p(rows, 2.0), uniform(rows, 0.0);
  std::vector<int64_t> top_k(rows, 1);
  bool any_sampled = false;
  for (int64_t i = 0; i < rows; ++i) {
    const SamplingParams* p = params[i];
    // A temperature below the smallest normal float is greedy in effect.
    if (p == nullptr || p->temperature < 1e-30 || p->top_k == 1) continue;
    any_sampled = true;
    temperature[i] = p->temperature;
    top_k[i] = p->top_k > 0 && p->top_k < vocab ? p->top_k : vocab;
    // No nucleus cut at top_p == 1: a threshold the mass never reaches.
    top_p[i] = p->top_p < 1.0 ? p->top_p : 2.0;
    uniform[i] = Uniform(*rngs[i]);
  }
  const at::Device device = logits.device();
  auto column = [&](const auto& values, at::ScalarType type) {
    return at::tensor(values, at::TensorOptions().dtype(type)).to(device).unsqueeze(1);
  };
  at::Tensor lg = logits.to(at::kFloat);
  at::Tensor finite = at::isfinite(lg).all(-1, /*keepdim=*/true);
  at::Tensor token;
  if (!any_sampled) {
    token = lg.argmax(-1, /*keepdim=*/true);  // the first maximum: the smaller id
  } else {
    const at::Tensor temperatures = column(temperature, at::kDouble);
    const at::Tensor top_ks = column(top_k, at::kLong), top_ps = column(top_p, at::kDouble);
    const at::Tensor uniforms = column(uniform, at::kDouble);
    const at::Tensor rank =
        at::arange(vocab, at::TensorOptions().dtype(at::kLong).device(device)).unsqueeze(0);
    // The temporaries take about 50 bytes per logit; rows go through in
    // chunks so that they stay near kSamplerChunkBytes whatever the batch.
    if (chunk_rows <= 0) chunk_rows = std::max<int64_t>(1, kSamplerChunkBytes / (50 * vocab));
    std::vector<at::Tensor> tokens;
    for (int64_t first = 0; first < rows; first += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows - first);
      at::Tensor sorted, order;
      std::tie(sorted, order) =
          at::sort(lg.narrow(0, first, n), /*stable=*/true, /*dim=*/-1, /*descending=*/true);
      // Shifted so the best candidate is 0 before scaling: no overflow at
      // any temperature, and the order is the unscaled one.
      at::Tensor scaled =
          (sorted - sorted.narrow(1, 0, 1)).to(at::kDouble) / temperatures.narrow(0, first, n);
      at::Tensor probs = at::softmax(scaled, -1);
      probs = probs.masked_fill(rank >= top_ks.narrow(0, first, n), 0.0);
      probs = probs / probs.sum(-1, /*keepdim=*/true);
      // Nucleus: keep a candidate while the mass before it is below top_p
      // (the first always stays).
      probs = probs.masked_fill(probs.cumsum(-1) - probs >= top_ps.narrow(0, first, n), 0.0);
      at::Tensor cdf = probs.cumsum(-1);
      at::Tensor target = uniforms.narrow(0, first, n) * cdf.narrow(1, vocab - 1, 1);
      // The first position whose cumulative mass exceeds the target, within
      // the candidates kept (rounding may put the target at the very total).
      at::Tensor pick = at::searchsorted(cdf, target, /*out_int32=*/false, /*right=*/true);
      at::Tensor last_kept = (probs.gt(0).sum(-1, /*keepdim=*/true) - 1).clamp_min(0);
      tokens.push_back(order.gather(1, at::minimum(pick, last_kept)));
    }
    token = at::cat(tokens, 0);
  }
  at::Tensor logprob = at::log_softmax(lg, -1).gather(1, token);
  at::Tensor both =
      at::cat({token.to(at::kDouble), logprob.to(at::kDouble), finite.to(at::kDouble)}, 1)
          .to(at::kCPU)
          .contiguous();
  const double* v = both.data_ptr<double>();
  Drawn out(rows);
  for (int64_t i = 0; i < rows; ++i) {
    if (params[i] == nullptr) continue;
    if (v[3 * i + 2] == 0) ThrowNotFinite(i);
    out.tokens[i] = static_cast<int64_t>(v[3 * i]);
    out.logprobs[i] = static_cast<float>(v[3 * i + 1]);
  }
  return out;
}

Drawn DrawTokens(const GenerateOptions& options, const at::Tensor& logits,
                 const std::vector<const SamplingParams*>& params,
                 const std::vector<std::mt19937_64*>& rngs) {
  const bool on_device =
      options.sampler == GenerateOptions::Sampler::kDevice ||
      (options.sampler == GenerateOptions::Sampler::kAuto && logits.device().is_cuda());
  return on_device ? DrawOnDevice(logits, params, rngs, options.sampler_chunk_rows)
                   : DrawOnHost(logits, params, rngs);
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

std::unique_ptr<Model> Model::Wrap(std::unique_ptr<Transformer> transformer) {
  return std::unique_ptr<Model>(new Model(std::move(transformer)));
}
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

Status Model::CheckRequests(const std::vector<GenerationRequest>& requests,
                            const GenerateOptions& options) const {
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
  return CheckIds({options.pad_token_id}, "pad_token_id");
}

// Rows of the batch in cache order; `logits` row i is row i's next-token
// distribution (float32, on the model's device), `cache` row i holds its keys
// and values.
struct GenerationBatch::State {
  struct Row {
    uint64_t id = 0;
    SamplingParams params;
    std::set<int64_t> stops;
    std::mt19937_64 rng;
    int64_t next_position = 0;  // RoPE position of the next token fed
    GenerationResult result;
    bool alive = true;
    int64_t Remaining() const {
      return params.max_new_tokens - static_cast<int64_t>(result.token_ids.size());
    }
  };

  const Model* model = nullptr;
  GenerateOptions options;
  std::vector<Row> rows;
  int64_t alive = 0;
  KvCache cache;
  at::Tensor logits;

  const Transformer& transformer() const { return *model->transformer(); }

  void Clear() {
    rows.clear();
    alive = 0;
    cache = KvCache{};
    logits = at::Tensor();
  }

  // Rebuilds the cache with the live rows followed by `incoming_rows`, whose
  // keys and values are `incoming` (a prefill cache, nullptr when none).
  // Each part keeps only the columns its rows use, right-aligned to the new
  // last column, and the capacity covers every row's remaining tokens.
  void Rebuild(const KvCache* incoming, std::vector<Row> incoming_rows,
               const at::Tensor& incoming_logits) {
    const Transformer& m = transformer();
    std::vector<int64_t> keep;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].alive) keep.push_back(static_cast<int64_t>(i));
    }
    const int64_t kept = static_cast<int64_t>(keep.size());
    const int64_t joining = static_cast<int64_t>(incoming_rows.size());
    const int64_t length = cache.length;
    at::Tensor keep_index =
        at::tensor(keep, at::TensorOptions().dtype(at::kLong)).to(m.device());
    int64_t first = length;  // first column a kept row uses
    if (kept > 0 && length > 0) {
      at::Tensor used =
          cache.key_valid.narrow(1, 0, length).index_select(0, keep_index).any(0).to(at::kCPU);
      const bool* u = used.data_ptr<bool>();
      first = std::find(u, u + length, true) - u;
    }
    const int64_t old_span = kept > 0 ? length - first : 0;
    const int64_t new_span = incoming != nullptr ? incoming->length : 0;
    const int64_t span = std::max(old_span, new_span);
    int64_t need = 0;
    for (int64_t i : keep) need = std::max(need, rows[i].Remaining());
    for (const Row& row : incoming_rows) need = std::max(need, row.Remaining());

    KvCache next = m.NewCache(kept + joining, span + need);
    next.length = span;
    // Keys/values are [rows, kv_heads, columns, head_dim], key_valid [rows, columns].
    auto place = [&](const at::Tensor& to, const at::Tensor& old_part, const at::Tensor& new_part) {
      const int64_t column_dim = to.dim() == 4 ? 2 : 1;
      if (old_span > 0) to.narrow(0, 0, kept).narrow(column_dim, span - old_span, old_span).copy_(old_part);
      if (new_span > 0) {
        to.narrow(0, kept, joining).narrow(column_dim, span - new_span, new_span).copy_(new_part);
      }
    };
    for (size_t l = 0; l < next.k.size(); ++l) {
      at::Tensor old_k, old_v, new_k, new_v;
      if (old_span > 0) {
        old_k = cache.k[l].narrow(2, first, old_span).index_select(0, keep_index);
        old_v = cache.v[l].narrow(2, first, old_span).index_select(0, keep_index);
      }
      if (new_span > 0) {
        new_k = incoming->k[l].narrow(2, 0, new_span);
        new_v = incoming->v[l].narrow(2, 0, new_span);
      }
      place(next.k[l], old_k, new_k);
      place(next.v[l], old_v, new_v);
    }
    place(next.key_valid,
          old_span > 0 ? cache.key_valid.narrow(1, first, old_span).index_select(0, keep_index)
                       : at::Tensor(),
          new_span > 0 ? incoming->key_valid.narrow(1, 0, new_span) : at::Tensor());

    std::vector<at::Tensor> logit_parts;
    if (kept > 0) logit_parts.push_back(logits.index_select(0, keep_index));
    if (joining > 0) logit_parts.push_back(incoming_logits);
    std::vector<Row> next_rows;
    next_rows.reserve(kept + joining);
    for (int64_t i : keep) next_rows.push_back(std::move(rows[i]));
    for (Row& row : incoming_rows) next_rows.push_back(std::move(row));

    rows = std::move(next_rows);
    alive = kept + joining;
    cache = std::move(next);
    logits = logit_parts.empty() ? at::Tensor() : at::cat(logit_parts, 0).contiguous();
  }
};

GenerationBatch::GenerationBatch(std::unique_ptr<State> state) : state_(std::move(state)) {}
GenerationBatch::~GenerationBatch() = default;

int64_t GenerationBatch::size() const { return state_->alive; }

int64_t GenerationBatch::cache_columns() const { return state_->cache.length; }

std::unique_ptr<GenerationBatch> Model::NewBatch(const GenerateOptions& options) const {
  auto state = std::make_unique<GenerationBatch::State>();
  state->model = this;
  state->options = options;
  return std::unique_ptr<GenerationBatch>(new GenerationBatch(std::move(state)));
}

Status GenerationBatch::Add(const std::vector<uint64_t>& ids,
                            const std::vector<GenerationRequest>& requests) {
  State& st = *state_;
  if (ids.size() != requests.size()) {
    return InvalidArgumentError("GenerationBatch::Add: " + std::to_string(ids.size()) +
                                " ids for " + std::to_string(requests.size()) + " requests");
  }
  if (requests.empty()) return OkStatus();
  Status valid = st.model->CheckRequests(requests, st.options);
  if (!valid.ok()) return valid;
  std::set<uint64_t> taken;
  for (const State::Row& row : st.rows) {
    if (row.alive) taken.insert(row.id);
  }
  for (uint64_t id : ids) {
    if (!taken.insert(id).second) {
      return InvalidArgumentError("GenerationBatch::Add: id " + std::to_string(id) +
                                  " is already in the batch");
    }
  }

  return CatchStatus("generate", [&]() -> Status {
    c10::InferenceMode inference;
    const Transformer& m = st.transformer();
    const ModelConfig& config = st.model->config();
    const int64_t n = static_cast<int64_t>(requests.size());
    int64_t p_len = 0;
    for (const GenerationRequest& r : requests) p_len = std::max<int64_t>(p_len, r.prompt.size());

    // Left padding puts every prompt's last token in the last column, so one
    // column per step serves the whole batch; positions count real tokens only.
    std::vector<int64_t> flat_ids(n * p_len, st.options.pad_token_id), flat_valid(n * p_len, 0),
        flat_pos(n * p_len, 0);
    std::vector<State::Row> joining(n);
    for (int64_t i = 0; i < n; ++i) {
      const auto& prompt = requests[i].prompt;
      const int64_t off = p_len - static_cast<int64_t>(prompt.size());
      for (size_t j = 0; j < prompt.size(); ++j) {
        flat_ids[i * p_len + off + j] = prompt[j];
        flat_valid[i * p_len + off + j] = 1;
        flat_pos[i * p_len + off + j] = static_cast<int64_t>(j);
      }
      State::Row& row = joining[i];
      row.id = ids[i];
      row.params = requests[i].params;
      row.next_position = static_cast<int64_t>(prompt.size());
      row.stops.insert(row.params.stop_token_ids.begin(), row.params.stop_token_ids.end());
      if (!row.params.ignore_eos) {
        row.stops.insert(config.eos_token_ids.begin(), config.eos_token_ids.end());
      }
      row.rng.seed(row.params.seed);
    }
    const at::Device device = m.device();
    KvCache prefill = m.NewCache(n, p_len);
    at::Tensor hidden = m.Hidden(Tensor2D(flat_ids, n, p_len).to(device),
                                 Tensor2D(flat_pos, n, p_len).to(device),
                                 BoolTensor2D(flat_valid, n, p_len).to(device), &prefill);
    st.Rebuild(&prefill, std::move(joining), m.Logits(hidden.select(1, p_len - 1)));
    return OkStatus();
  });
}

void GenerationBatch::Remove(uint64_t id) {
  State& st = *state_;
  for (State::Row& row : st.rows) {
    if (row.alive && row.id == id) {
      row.alive = false;
      if (--st.alive == 0) st.Clear();
      return;
    }
  }
}

StatusOr<std::vector<FinishedSequence>> GenerationBatch::Step() {
  State& st = *state_;
  return CatchStatus("generate", [&]() -> StatusOr<std::vector<FinishedSequence>> {
    std::vector<FinishedSequence> finished;
    if (st.alive == 0) return finished;
    c10::InferenceMode inference;
    const Transformer& m = st.transformer();

    // 1. One token per live row from its pending distribution.
    std::vector<const SamplingParams*> params(st.rows.size(), nullptr);
    std::vector<std::mt19937_64*> rngs(st.rows.size(), nullptr);
    for (size_t i = 0; i < st.rows.size(); ++i) {
      if (!st.rows[i].alive) continue;
      params[i] = &st.rows[i].params;
      rngs[i] = &st.rows[i].rng;
    }
    const Drawn drawn = DrawTokens(st.options, st.logits, params, rngs);
    for (size_t i = 0; i < st.rows.size(); ++i) {
      State::Row& row = st.rows[i];
      if (!row.alive) continue;
      const int64_t tok = drawn.tokens[i];
      row.result.token_ids.push_back(tok);
      row.result.logprobs.push_back(drawn.logprobs[i]);
      bool done = false;
      if (row.stops.count(tok)) {
        row.result.finish_reason = FinishReason::kStop;
        done = true;
      } else if (row.Remaining() <= 0) {
        row.result.finish_reason = FinishReason::kLength;
        done = true;
      }
      if (done) {
        row.alive = false;
        --st.alive;
        finished.push_back(FinishedSequence{row.id, std::move(row.result)});
      }
    }
    if (st.alive == 0) {
      st.Clear();
      return finished;
    }

    // 2. Finished rows still cost compute; drop them once they are a quarter.
    const int64_t rows = static_cast<int64_t>(st.rows.size());
    if ((rows - st.alive) * 4 >= rows) st.Rebuild(nullptr, {}, at::Tensor());

    // 3. Feed the drawn tokens: one new cache column for the whole batch.
    const int64_t b = static_cast<int64_t>(st.rows.size());
    std::vector<int64_t> next(b, st.options.pad_token_id), next_valid(b, 0), positions(b, 0);
    for (int64_t i = 0; i < b; ++i) {
      State::Row& row = st.rows[i];
      if (!row.alive) continue;
      next[i] = row.result.token_ids.back();
      next_valid[i] = 1;
      positions[i] = row.next_position++;
    }
    const at::Device device = m.device();
    at::Tensor hidden = m.Hidden(Tensor2D(next, b, 1).to(device), Tensor2D(positions, b, 1).to(device),
                                 BoolTensor2D(next_valid, b, 1).to(device), &st.cache);
    st.logits = m.Logits(hidden.select(1, 0));
    return finished;
  });
}

StatusOr<std::vector<GenerationResult>> Model::Generate(
    const std::vector<GenerationRequest>& requests, const GenerateOptions& options) const {
  if (requests.empty()) return std::vector<GenerationResult>{};
  Status valid = CheckRequests(requests, options);
  if (!valid.ok()) return valid;

  if (options.use_cache) {
    std::unique_ptr<GenerationBatch> batch = NewBatch(options);
    std::vector<uint64_t> ids(requests.size());
    std::iota(ids.begin(), ids.end(), uint64_t{0});
    Status added = batch->Add(ids, requests);
    if (!added.ok()) return added;
    std::vector<GenerationResult> results(requests.size());
    while (batch->size() > 0) {
      StatusOr<std::vector<FinishedSequence>> done = batch->Step();
      if (!done.ok()) return done.status();
      for (FinishedSequence& f : *done) results[f.id] = std::move(f.result);
    }
    return results;
  }

  // Without the cache: every step recomputes the whole sequence (the
  // reference the cached path is tested against).
  return CatchStatus("generate", [&]() -> StatusOr<std::vector<GenerationResult>> {
    c10::InferenceMode inference;
    const Transformer& m = *transformer_;
    const at::Device device = m.device();
    const int64_t b = static_cast<int64_t>(requests.size());
    int64_t p_len = 0, max_new = 0;
    for (const GenerationRequest& r : requests) {
      p_len = std::max<int64_t>(p_len, r.prompt.size());
      max_new = std::max(max_new, r.params.max_new_tokens);
    }
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
    at::Tensor logits = m.Logits(m.Hidden(all_ids, all_pos, all_valid, nullptr).select(1, p_len - 1));

    std::vector<GenerationResult> results(b);
    std::vector<bool> finished(b, false);
    for (int64_t step = 0; step < max_new; ++step) {
      std::vector<const SamplingParams*> params(b, nullptr);
      std::vector<std::mt19937_64*> row_rngs(b, nullptr);
      for (int64_t i = 0; i < b; ++i) {
        if (finished[i]) continue;
        params[i] = &requests[i].params;
        row_rngs[i] = &rngs[i];
      }
      const Drawn drawn = DrawTokens(options, logits, params, row_rngs);
      std::vector<int64_t> next(b, options.pad_token_id), next_valid(b, 0), positions(b, 0);
      bool any_active = false;
      for (int64_t i = 0; i < b; ++i) {
        if (finished[i]) continue;
        const SamplingParams& p = requests[i].params;
        const int64_t tok = drawn.tokens[i];
        GenerationResult& res = results[i];
        res.token_ids.push_back(tok);
        res.logprobs.push_back(drawn.logprobs[i]);
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
      all_ids = at::cat({all_ids, Tensor2D(next, b, 1).to(device)}, 1);
      all_valid = at::cat({all_valid, BoolTensor2D(next_valid, b, 1).to(device)}, 1);
      all_pos = at::cat({all_pos, Tensor2D(positions, b, 1).to(device)}, 1);
      logits = m.Logits(m.Hidden(all_ids, all_pos, all_valid, nullptr).select(1, all_ids.size(1) - 1));
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
