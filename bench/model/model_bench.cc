// Model runtime benchmark against the Python reference (tests/model_reference/
// reference.py, plain PyTorch eager), measured in the same run on the same
// weights and thread count:
//   - generation tokens/s at batch 1 and batch 32 (greedy, KV cache);
//   - teacher-forced log-prob tokens/s;
//   - peak memory of log-probs over an 8K-token sequence, chunked vs not.
// The memory figures come from child processes of this binary
// (--memory-child), each reporting its own VmHWM above its post-load RSS, or
// on CUDA the caching allocator's peak above its post-load allocation.
// On CUDA the peer is Hugging Face transformers (bfloat16, its batched
// generate() and a full log_softmax), run by tests/model_reference/
// transformers_reference.py on the same saved directory.
//
// usage: model_bench [--device cpu|cuda] [--threads N] [--seq 8192]
//                    [--benchmark_out=FILE.json] [--quick]
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#ifdef CASCADE_MODEL_BENCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <cstring>
#include <thread>
#include <string>
#include <vector>

#include "bench_config.h"
#include "model/json.h"
#include "model/runtime.h"
#include "model/transformer.h"

namespace cascade::model {
namespace {

namespace fs = std::filesystem;

struct Args {
  std::string device = "cpu";
  int threads = 0;
  int64_t seq = 8192;
  std::string out;
  bool quick = false;
  // Child mode: compute log-probs of one `seq`-token sequence with `chunk`
  // (0 = unchunked) and print peak memory.
  bool memory_child = false;
  std::string model_dir;
  int64_t chunk = 0;
};

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t StatusKb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::atoll(line.c_str() + std::strlen(field));
  }
  return -1;
}

std::vector<std::vector<int64_t>> RandomSeqs(int n, int64_t len, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int64_t>> out(n);
  for (auto& s : out) {
    for (int64_t i = 0; i < len; ++i) s.push_back(static_cast<int64_t>(rng() % (vocab - 1)) + 1);
  }
  return out;
}

Json ToJsonIds(const std::vector<std::vector<int64_t>>& seqs) {
  Json a = Json::MakeArray();
  for (const auto& s : seqs) {
    Json row = Json::MakeArray();
    for (int64_t id : s) row.push_back(Json(id));
    a.push_back(row);
  }
  return a;
}

int MemoryChild(const Args& args) {
  RuntimeOptions ro;
  ro.device = args.device;
  ro.num_threads = args.threads;
  auto model = Model::Load(args.model_dir, ro);
  if (!model.ok()) {
    std::cerr << model.status().message() << "\n";
    return 1;
  }
  const Transformer& t = *(*model)->transformer();
  auto seq = RandomSeqs(1, args.seq, t.config().vocab_size, 5)[0];
  at::Tensor ids = at::tensor(seq, at::kLong).view({1, args.seq}).to(t.device());
  at::Tensor valid = at::ones({1, args.seq}, at::TensorOptions().dtype(at::kBool).device(t.device()));
  const bool cuda = t.device().is_cuda();
  const int64_t base_kb = StatusKb("VmRSS:");
#ifdef CASCADE_MODEL_BENCH_CUDA
  namespace alloc = c10::cuda::CUDACachingAllocator;
  const int device_index = t.device().index() < 0 ? 0 : t.device().index();
  int64_t base_cuda = 0;
  if (cuda) {
    alloc::resetPeakStats(device_index);
    base_cuda = alloc::getDeviceStats(device_index).allocated_bytes[0].current;
  }
#endif
  double t0 = Now();
  at::Tensor lp;
  {
    c10::InferenceMode guard;
    // Unchunked: the whole sequence in one forward and one [len x vocab]
    // projection, as a plain implementation does it.
    lp = args.chunk > 0 ? t.ScoreTokenLogProbs(ids, valid, args.chunk)
                        : t.TokenLogProbs(ids, valid, /*chunk=*/0);
  }
  double sum = lp.sum().item<double>();
  double secs = Now() - t0;
  Json r = Json::MakeObject();
  r["chunk"] = args.chunk;
  r["seconds"] = secs;
  r["logprob_sum"] = sum;
  r["peak_above_load_mb"] = static_cast<double>(StatusKb("VmHWM:") - base_kb) / 1024.0;
#ifdef CASCADE_MODEL_BENCH_CUDA
  if (cuda) {
    const int64_t peak = alloc::getDeviceStats(device_index).allocated_bytes[0].peak;
    r["peak_above_load_mb"] = static_cast<double>(peak - base_cuda) / (1024.0 * 1024.0);
    r["memory"] = "cuda caching allocator";
  }
#else
  if (cuda) r["memory"] = "host RSS only (built without the CUDA allocator header)";
#endif
  std::cout << r.Dump() << std::endl;
  return 0;
}

Json RunChild(const std::string& self, const Args& args, int64_t chunk) {
  std::ostringstream cmd;
  cmd << self << " --memory-child --model " << args.model_dir << " --chunk " << chunk << " --seq "
      << args.seq << " --device " << args.device << " --threads " << args.threads;
  FILE* p = popen(cmd.str().c_str(), "r");
  std::string text;
  char buf[4096];
  while (p != nullptr && fgets(buf, sizeof(buf), p) != nullptr) text += buf;
  if (p == nullptr || pclose(p) != 0) return Json();
  StatusOr<Json> j = Json::Parse(text);
  return j.ok() ? *j : Json();
}

int Main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--device") args.device = next();
    else if (a == "--threads") args.threads = std::atoi(next().c_str());
    else if (a == "--seq") args.seq = std::atoll(next().c_str());
    else if (a == "--model") args.model_dir = next();
    else if (a == "--chunk") args.chunk = std::atoll(next().c_str());
    else if (a == "--memory-child") args.memory_child = true;
    else if (a == "--quick") args.quick = true;
    else if (a.rfind("--benchmark_out=", 0) == 0) args.out = a.substr(16);
    else if (a.rfind("--benchmark_out_format", 0) == 0) continue;
    else {
      std::cerr << "model_bench: unknown argument " << a << "\n";
      return 2;
    }
  }
  if (args.threads <= 0) args.threads = static_cast<int>(std::thread::hardware_concurrency());
  if (args.memory_child) return MemoryChild(args);

  RuntimeOptions ro;
  ro.device = args.device;
  ro.num_threads = args.threads;
  ModelConfig config = BenchModelConfig();
  auto model_or = Model::CreateRandom(config, /*seed=*/1, ro);
  if (!model_or.ok()) {
    std::cerr << model_or.status().message() << "\n";
    return 1;
  }
  Model& model = **model_or;
  const std::string dir = (fs::temp_directory_path() / "cascade_model_bench").string();
  if (Status s = model.Save(dir); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  args.model_dir = dir;
  const int prompt_len = 32, new_tokens = args.quick ? 16 : 64;
  Json results = Json::MakeObject();
  results["parameters"] = config.NumParameters();
  results["device"] = args.device;
  results["threads"] = args.threads;
  std::printf("model: qwen3-shaped, %.1fM parameters, vocab %lld, device %s, %d threads\n",
              config.NumParameters() / 1e6, static_cast<long long>(config.vocab_size),
              args.device.c_str(), args.threads);

  // On an accelerator, first check it against the CPU float32 computation.
  if (args.device != "cpu") {
    RuntimeOptions cpu;
    cpu.num_threads = args.threads;
    auto ref = Model::Load(dir, cpu);
    auto seqs = RandomSeqs(3, 48, config.vocab_size, 3);
    seqs[1].resize(17);
    auto a = model.Logits(seqs, /*use_cache=*/true, /*step=*/8);
    auto b = ref.ok() ? (*ref)->Logits(seqs, false) : StatusOr<std::vector<std::vector<float>>>(ref.status());
    if (!a.ok() || !b.ok()) {
      std::cerr << "device check failed: " << (a.ok() ? b.status() : a.status()).message() << "\n";
      return 1;
    }
    double worst = 0, scale = 0;
    for (size_t i = 0; i < a->size(); ++i) {
      for (size_t j = 0; j < (*a)[i].size(); ++j) {
        worst = std::max(worst, static_cast<double>(std::fabs((*a)[i][j] - (*b)[i][j])));
        scale = std::max(scale, static_cast<double>(std::fabs((*b)[i][j])));
      }
    }
    std::vector<GenerationRequest> reqs;
    for (const auto& s : seqs) {
      GenerationRequest r;
      r.prompt = s;
      r.params.temperature = 0;
      r.params.max_new_tokens = 16;
      r.params.ignore_eos = true;
      reqs.push_back(r);
    }
    GenerateOptions no_cache;
    no_cache.use_cache = false;
    auto g1 = model.Generate(reqs), g2 = model.Generate(reqs, no_cache);
    bool same = g1.ok() && g2.ok();
    for (size_t i = 0; same && i < reqs.size(); ++i) same = (*g1)[i].token_ids == (*g2)[i].token_ids;
    std::printf("device check: max |logit(%s) - logit(cpu f32)| = %.4f (max |logit| %.2f); "
                "greedy with cache == without: %s\n",
                args.device.c_str(), worst, scale, same ? "yes" : "NO");
    results["device_max_abs_logit_diff_vs_cpu_f32"] = worst;
    results["device_greedy_cache_equals_no_cache"] = same;
  }

  // Generation.
  for (int batch : {1, 32}) {
    std::vector<GenerationRequest> reqs;
    for (const auto& p : RandomSeqs(batch, prompt_len, config.vocab_size, 10 + batch)) {
      GenerationRequest r;
      r.prompt = p;
      r.params.temperature = 0;
      r.params.max_new_tokens = new_tokens;
      r.params.ignore_eos = true;
      reqs.push_back(r);
    }
    model.Generate({reqs[0]}).ok();  // warm-up
    double t0 = Now();
    auto res = model.Generate(reqs);
    double secs = Now() - t0;
    if (!res.ok()) {
      std::cerr << res.status().message() << "\n";
      return 1;
    }
    results["generate_batch" + std::to_string(batch) + "_tokens_per_s"] = batch * new_tokens / secs;
  }
  // Sampled generation (temperature 1, as GRPO rollouts draw), batch 32,
  // with the tokens drawn on the host and on the device.
  for (auto sampler : {GenerateOptions::Sampler::kHost, GenerateOptions::Sampler::kDevice}) {
    std::vector<GenerationRequest> reqs;
    uint64_t seed = 0;
    for (const auto& p : RandomSeqs(32, prompt_len, config.vocab_size, 77)) {
      GenerationRequest r;
      r.prompt = p;
      r.params.temperature = 1.0;
      r.params.seed = ++seed;
      r.params.max_new_tokens = new_tokens;
      r.params.ignore_eos = true;
      reqs.push_back(r);
    }
    GenerateOptions options;
    options.sampler = sampler;
    model.Generate(reqs, options).ok();  // warm-up, at the timed shapes
    double t0 = Now();
    auto res = model.Generate(reqs, options);
    double secs = Now() - t0;
    if (!res.ok()) {
      std::cerr << res.status().message() << "\n";
      return 1;
    }
    const char* side = sampler == GenerateOptions::Sampler::kHost ? "host" : "device";
    results[std::string("sampled_batch32_") + side + "_sampler_tokens_per_s"] =
        32 * new_tokens / secs;
  }
  // Teacher-forced log-probs: 8 sequences of 512 tokens.
  auto lp_seqs = RandomSeqs(args.quick ? 2 : 8, 512, config.vocab_size, 99);
  {
    model.TokenLogProbs({lp_seqs[0]}).ok();  // warm-up, as generation and the peers get
    double t0 = Now();
    auto lp = model.TokenLogProbs(lp_seqs);
    double secs = Now() - t0;
    if (!lp.ok()) {
      std::cerr << lp.status().message() << "\n";
      return 1;
    }
    results["logprobs_tokens_per_s"] = lp_seqs.size() * 511 / secs;
  }

  // The peer on the same weights. On the CPU, the plain PyTorch reference: it
  // has no batching, so its batch-32 rate is measured on 4 prompts decoded
  // one after another. On CUDA, transformers with every batch whole.
  const bool on_cpu = args.device == "cpu";
  const std::string peer = on_cpu ? "python reference" : "transformers bf16";
  {
    Json spec = Json::MakeObject();
    spec["max_new_tokens"] = new_tokens;
    spec["generate"]["batch1"] = ToJsonIds(RandomSeqs(1, prompt_len, config.vocab_size, 11));
    spec["generate"]["batch32"] =
        ToJsonIds(RandomSeqs(on_cpu ? 4 : 32, prompt_len, config.vocab_size, 42));
    spec["logprobs"] = ToJsonIds(
        on_cpu ? std::vector<std::vector<int64_t>>(lp_seqs.begin(), lp_seqs.begin() + 2) : lp_seqs);
    WriteStringToFile(dir + "/bench_spec.json", spec.Dump()).ok();
    const std::string script = on_cpu ? "/reference.py" : "/transformers_reference.py";
    const std::string cmd = "REFERENCE_THREADS=" + std::to_string(args.threads) +
                            " REFERENCE_DEVICE=" + args.device + " " + CASCADE_PYTHON + " " +
                            CASCADE_MODEL_REFERENCE_DIR + script + " bench " + dir + " " + dir +
                            "/bench_spec.json";
    FILE* p = popen(cmd.c_str(), "r");
    std::string text;
    char buf[4096];
    while (p != nullptr && fgets(buf, sizeof(buf), p) != nullptr) text += buf;
    if (p != nullptr && pclose(p) == 0) {
      if (StatusOr<Json> ref = Json::Parse(text); ref.ok()) {
        results["reference_generate_batch1_tokens_per_s"] = ref->Find("batch1")->as_double();
        results["reference_generate_batch32_tokens_per_s"] = ref->Find("batch32")->as_double();
        results["reference_logprobs_tokens_per_s"] = ref->Find("logprobs")->as_double();
      }
    } else {
      std::cerr << "model_bench: the " << peer << " did not run (" << cmd
                << "); reporting ours only\n";
    }
  }

  // Peak memory of log-probs over one long sequence.
  Json chunked = RunChild(argv[0], args, 512);
  Json unchunked = RunChild(argv[0], args, 0);
  results["logprob_seq_tokens"] = args.seq;
  results["chunked"] = chunked;
  results["unchunked"] = unchunked;

  auto ratio = [&](const char* ours, const char* theirs) {
    const Json* a = results.Find(ours);
    const Json* b = results.Find(theirs);
    return (a && b && b->as_double() > 0) ? a->as_double() / b->as_double() : 0.0;
  };
  results["peer"] = peer;
  std::printf("| measure (%s) | cascade | %s | ratio |\n|---|---|---|---|\n", args.device.c_str(),
              peer.c_str());
  for (const char* m : {"generate_batch1_tokens_per_s", "generate_batch32_tokens_per_s",
                        "logprobs_tokens_per_s"}) {
    const std::string ref = std::string("reference_") + m;
    const Json* r = results.Find(ref);
    std::printf("| %s | %.1f | %.1f | %.2fx |\n", m, results.Find(m)->as_double(),
                r ? r->as_double() : 0.0, ratio(m, ref.c_str()));
  }
  std::printf(
      "| sampled generation, batch 32 (tokens/s) | device sampler %.1f | host sampler %.1f | %.2fx "
      "|\n",
      results.Find("sampled_batch32_device_sampler_tokens_per_s")->as_double(),
      results.Find("sampled_batch32_host_sampler_tokens_per_s")->as_double(),
      ratio("sampled_batch32_device_sampler_tokens_per_s",
            "sampled_batch32_host_sampler_tokens_per_s"));
  if (chunked.is_object() && unchunked.is_object()) {
    const double c = chunked.Find("peak_above_load_mb")->as_double();
    const double u = unchunked.Find("peak_above_load_mb")->as_double();
    std::printf("| log-prob peak memory, %lld tokens (MB above load) | chunked %.0f | unchunked %.0f | %.1fx less |\n",
                static_cast<long long>(args.seq), c, u, c > 0 ? u / c : 0.0);
    std::printf("| log-prob sums agree (chunked vs unchunked) | %.4f | %.4f | |\n",
                chunked.Find("logprob_sum")->as_double(), unchunked.Find("logprob_sum")->as_double());
  }
  if (!args.out.empty()) WriteStringToFile(args.out, results.Dump(2) + "\n").ok();
  fs::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace cascade::model

int main(int argc, char** argv) { return cascade::model::Main(argc, argv); }
