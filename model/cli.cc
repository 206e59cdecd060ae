#include "model/cli.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "model/config.h"
#include "model/json.h"
#include "model/runtime.h"

namespace cascade::model {
namespace {

namespace fs = std::filesystem;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr char kInitUsage[] =
    "usage: learner init --arch {qwen3,qwen2,llama} --hidden H --layers L --heads N\n"
    "                    [--kv-heads K] [--intermediate F] [--head-dim D]\n"
    "                    (--vocab-from TOKENIZER | --vocab V) [--seed S]\n"
    "                    [--dtype float32|bfloat16|float16] [--tie-embeddings]\n"
    "                    [--rope-theta X] [--max-position P] --out DIR\n"
    "Writes a randomly initialised Hugging Face model directory (config.json,\n"
    "generation_config.json, model.safetensors, tokenizer files).\n";

constexpr char kScoreUsage[] =
    "usage: rollout score --model DIR --input IN.jsonl [--output OUT.jsonl]\n"
    "                     [--device cpu|cuda[:N]] [--chunk N] [--threads N]\n"
    "Teacher-forced per-token log-probs. Input lines: {\"ids\": [int, ...],\n"
    "\"prompt_len\": k (optional, default 1)}; output lines: {\"logprobs\": [...],\n"
    "\"sum\": float, \"num_tokens\": n} for the tokens ids[k:].\n";

// Parses "--flag value" pairs and bare "--switch"es.
struct Flags {
  std::map<std::string, std::string> values;
  bool help = false;
};

StatusOr<Flags> ParseFlags(const std::vector<std::string>& args,
                           const std::vector<std::string>& with_value,
                           const std::vector<std::string>& switches) {
  Flags flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      flags.help = true;
      continue;
    }
    std::string name = a, value;
    bool inline_value = false;
    if (size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      inline_value = true;
    }
    if (std::find(switches.begin(), switches.end(), name) != switches.end()) {
      flags.values[name] = "1";
      continue;
    }
    if (std::find(with_value.begin(), with_value.end(), name) == with_value.end()) {
      return InvalidArgumentError("unknown argument \"" + a + "\"");
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) return InvalidArgumentError(name + ": missing value");
      value = args[++i];
    }
    flags.values[name] = value;
  }
  return flags;
}

StatusOr<int64_t> IntFlag(const Flags& f, const std::string& name, int64_t fallback, bool required) {
  auto it = f.values.find(name);
  if (it == f.values.end()) {
    if (required) return InvalidArgumentError(name + ": required");
    return fallback;
  }
  try {
    size_t used = 0;
    long long v = std::stoll(it->second, &used);
    if (used != it->second.size()) throw std::invalid_argument("trailing");
    return static_cast<int64_t>(v);
  } catch (const std::exception&) {
    return InvalidArgumentError(name + ": expected an integer, got \"" + it->second + "\"");
  }
}

StatusOr<double> DoubleFlag(const Flags& f, const std::string& name, double fallback) {
  auto it = f.values.find(name);
  if (it == f.values.end()) return fallback;
  try {
    size_t used = 0;
    double v = std::stod(it->second, &used);
    if (used != it->second.size()) throw std::invalid_argument("trailing");
    return v;
  } catch (const std::exception&) {
    return InvalidArgumentError(name + ": expected a number, got \"" + it->second + "\"");
  }
}

std::string StrFlag(const Flags& f, const std::string& name, const std::string& fallback = "") {
  auto it = f.values.find(name);
  return it == f.values.end() ? fallback : it->second;
}

std::string TokenizerJsonPath(const std::string& path) {
  if (fs::is_directory(path)) return (fs::path(path) / "tokenizer.json").string();
  return path;
}

}  // namespace

StatusOr<TokenizerVocab> ReadTokenizerVocab(const std::string& path_in) {
  const std::string path = TokenizerJsonPath(path_in);
  StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  StatusOr<Json> json = Json::Parse(*text);
  if (!json.ok()) return InvalidArgumentError(path + ": " + json.status().message());
  const Json* model = json->Find("model");
  if (model == nullptr || !model->is_object()) {
    return InvalidArgumentError(path + ": model: missing or not an object");
  }
  const Json* vocab = model->Find("vocab");
  if (vocab == nullptr) return InvalidArgumentError(path + ": model.vocab: missing");
  int64_t max_id = -1;
  std::map<std::string, int64_t> ids;
  if (vocab->is_object()) {  // BPE / WordPiece: token -> id
    for (const auto& [token, id] : vocab->as_object()) {
      if (!id.is_int()) return InvalidArgumentError(path + ": model.vocab." + token + ": expected an integer id");
      max_id = std::max(max_id, id.as_int());
      ids[token] = id.as_int();
    }
  } else if (vocab->is_array()) {  // Unigram: [[token, score], ...], id = index
    const auto& entries = vocab->as_array();
    max_id = static_cast<int64_t>(entries.size()) - 1;
    for (size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].is_array() && !entries[i].as_array().empty()) {
        ids[entries[i].as_array()[0].as_string()] = static_cast<int64_t>(i);
      }
    }
  } else {
    return InvalidArgumentError(path + ": model.vocab: expected an object or an array");
  }
  if (const Json* added = json->Find("added_tokens"); added != nullptr && added->is_array()) {
    for (size_t i = 0; i < added->as_array().size(); ++i) {
      const Json& t = added->as_array()[i];
      const Json* id = t.Find("id");
      const Json* content = t.Find("content");
      if (id == nullptr || !id->is_int()) {
        return InvalidArgumentError(path + ": added_tokens[" + std::to_string(i) + "].id: expected an integer");
      }
      max_id = std::max(max_id, id->as_int());
      if (content != nullptr && content->is_string()) ids[content->as_string()] = id->as_int();
    }
  }
  if (max_id < 0) return InvalidArgumentError(path + ": model.vocab: empty");
  TokenizerVocab out;
  out.vocab_size = max_id + 1;
  for (const char* bos : {"<|begin_of_text|>", "<s>"}) {
    if (ids.count(bos)) {
      out.bos_token_id = ids[bos];
      break;
    }
  }
  for (const char* eos : {"<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>", "</s>"}) {
    if (ids.count(eos)) out.eos_token_ids.push_back(ids[eos]);
  }
  return out;
}

int RunInitCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  StatusOr<Flags> flags = ParseFlags(
      args,
      {"--arch", "--hidden", "--layers", "--heads", "--kv-heads", "--intermediate", "--head-dim",
       "--vocab-from", "--vocab", "--seed", "--dtype", "--rope-theta", "--max-position", "--out"},
      {"--tie-embeddings"});
  if (!flags.ok()) {
    err << "learner init: " << flags.status().message() << "\n" << kInitUsage;
    return kExitUsage;
  }
  if (flags->help) {
    out << kInitUsage;
    return kExitOk;
  }
  auto usage = [&](const Status& s) {
    err << "learner init: " << s.message() << "\n" << kInitUsage;
    return kExitUsage;
  };
  ModelConfig c;
  StatusOr<Arch> arch = ParseArch(StrFlag(*flags, "--arch"));
  if (!arch.ok()) return usage(InvalidArgumentError("--arch: " + arch.status().message()));
  c.arch = *arch;
  c.qk_norm = c.arch == Arch::kQwen3;
  c.qkv_bias = c.arch == Arch::kQwen2;
  const std::string out_dir = StrFlag(*flags, "--out");
  if (out_dir.empty()) return usage(InvalidArgumentError("--out: required"));
  const std::string vocab_from = StrFlag(*flags, "--vocab-from");
  if (vocab_from.empty() == (flags->values.count("--vocab") == 0)) {
    return usage(InvalidArgumentError("exactly one of --vocab-from and --vocab is required"));
  }

  struct IntField {
    const char* flag;
    int64_t* field;
    bool required;
  };
  for (const IntField& f : {IntField{"--hidden", &c.hidden_size, true},
                            IntField{"--layers", &c.num_hidden_layers, true},
                            IntField{"--heads", &c.num_attention_heads, true}}) {
    StatusOr<int64_t> v = IntFlag(*flags, f.flag, 0, f.required);
    if (!v.ok()) return usage(v.status());
    *f.field = *v;
  }
  if (c.num_attention_heads <= 0 || c.hidden_size <= 0) {
    return usage(InvalidArgumentError("--hidden and --heads must be positive"));
  }
  StatusOr<int64_t> kv = IntFlag(*flags, "--kv-heads", c.num_attention_heads, false);
  StatusOr<int64_t> inter = IntFlag(*flags, "--intermediate", 3 * c.hidden_size, false);
  StatusOr<int64_t> head_dim = IntFlag(*flags, "--head-dim", c.hidden_size / c.num_attention_heads, false);
  StatusOr<int64_t> seed = IntFlag(*flags, "--seed", 0, false);
  StatusOr<int64_t> max_pos = IntFlag(*flags, "--max-position", 32768, false);
  StatusOr<double> theta = DoubleFlag(*flags, "--rope-theta", c.arch == Arch::kLlama ? 500000.0 : 1000000.0);
  for (const Status& s : {kv.status(), inter.status(), head_dim.status(), seed.status(),
                          max_pos.status(), theta.status()}) {
    if (!s.ok()) return usage(s);
  }
  c.num_key_value_heads = *kv;
  c.intermediate_size = *inter;
  c.head_dim = *head_dim;
  c.max_position_embeddings = *max_pos;
  c.rope_theta = *theta;
  c.tie_word_embeddings = flags->values.count("--tie-embeddings") > 0;
  c.torch_dtype = StrFlag(*flags, "--dtype", "float32");

  std::vector<std::string> extra_files;
  if (!vocab_from.empty()) {
    StatusOr<TokenizerVocab> vocab = ReadTokenizerVocab(vocab_from);
    if (!vocab.ok()) {
      err << "learner init: --vocab-from: " << vocab.status().message() << "\n";
      return kExitFailure;
    }
    c.vocab_size = vocab->vocab_size;
    c.bos_token_id = vocab->bos_token_id;
    c.eos_token_ids = vocab->eos_token_ids;
    const fs::path tok = TokenizerJsonPath(vocab_from);
    extra_files.push_back(tok.string());
    // The companions transformers reads next to tokenizer.json, when present.
    for (const char* name : {"tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                             "merges.txt", "added_tokens.json"}) {
      fs::path p = tok.parent_path() / name;
      if (fs::exists(p)) extra_files.push_back(p.string());
    }
  } else {
    StatusOr<int64_t> v = IntFlag(*flags, "--vocab", 0, true);
    if (!v.ok()) return usage(v.status());
    c.vocab_size = *v;
  }
  if (Status s = c.Validate(); !s.ok()) return usage(s);

  // Initialise on the CPU in float32 (weights are then stored in --dtype).
  StatusOr<std::unique_ptr<Model>> model = Model::CreateRandom(c, static_cast<uint64_t>(*seed));
  if (!model.ok()) {
    err << "learner init: " << model.status().message() << "\n";
    return kExitFailure;
  }
  if (Status s = (*model)->Save(out_dir, extra_files, c.torch_dtype); !s.ok()) {
    err << "learner init: " << s.message() << "\n";
    return kExitFailure;
  }
  out << "wrote " << out_dir << " (" << ArchName(c.arch) << ", " << c.NumParameters()
      << " parameters, vocab " << c.vocab_size << ")\n";
  return kExitOk;
}

int RunScoreCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  StatusOr<Flags> flags =
      ParseFlags(args, {"--model", "--input", "--output", "--device", "--chunk", "--threads"}, {});
  if (!flags.ok()) {
    err << "rollout score: " << flags.status().message() << "\n" << kScoreUsage;
    return kExitUsage;
  }
  if (flags->help) {
    out << kScoreUsage;
    return kExitOk;
  }
  const std::string model_dir = StrFlag(*flags, "--model");
  const std::string input = StrFlag(*flags, "--input");
  StatusOr<int64_t> chunk = IntFlag(*flags, "--chunk", 512, false);
  StatusOr<int64_t> threads = IntFlag(*flags, "--threads", 0, false);
  if (model_dir.empty() || input.empty() || !chunk.ok() || !threads.ok()) {
    std::string why = model_dir.empty() ? "--model: required"
                      : input.empty()   ? "--input: required"
                      : !chunk.ok()     ? chunk.status().message()
                                        : threads.status().message();
    err << "rollout score: " << why << "\n" << kScoreUsage;
    return kExitUsage;
  }
  // "-" reads standard input, so `rollout tokenize | rollout score` works.
  std::ifstream file;
  if (input != "-") {
    file.open(input);
    if (!file) {
      err << "rollout score: " << input << ": cannot open\n";
      return kExitFailure;
    }
  }
  std::istream& in = input == "-" ? std::cin : file;
  // Parse every line first so a bad line fails before any compute.
  std::vector<std::vector<int64_t>> seqs;
  std::vector<int64_t> prompt_lens;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = input + ":" + std::to_string(line_no);
    StatusOr<Json> row = Json::Parse(line);
    if (!row.ok()) {
      err << "rollout score: " << where << ": " << row.status().message() << "\n";
      return kExitFailure;
    }
    const Json* ids = row->Find("ids");
    if (ids == nullptr || !ids->is_array()) {
      err << "rollout score: " << where << ": ids: missing or not a list\n";
      return kExitFailure;
    }
    std::vector<int64_t> seq;
    for (const Json& id : ids->as_array()) {
      if (!id.is_int()) {
        err << "rollout score: " << where << ": ids: expected integers\n";
        return kExitFailure;
      }
      seq.push_back(id.as_int());
    }
    if (seq.size() < 2) {
      err << "rollout score: " << where << ": ids: needs at least 2 tokens\n";
      return kExitFailure;
    }
    int64_t prompt_len = 1;
    if (const Json* p = row->Find("prompt_len"); p != nullptr) {
      if (!p->is_int() || p->as_int() < 1 || p->as_int() > static_cast<int64_t>(seq.size())) {
        err << "rollout score: " << where << ": prompt_len: expected an integer in [1, len(ids)]\n";
        return kExitFailure;
      }
      prompt_len = p->as_int();
    }
    seqs.push_back(std::move(seq));
    prompt_lens.push_back(prompt_len);
  }

  RuntimeOptions ro;
  ro.device = StrFlag(*flags, "--device", "cpu");
  ro.num_threads = static_cast<int>(*threads);
  StatusOr<std::unique_ptr<Model>> model = Model::Load(model_dir, ro);
  if (!model.ok()) {
    err << "rollout score: " << model.status().message() << "\n";
    return kExitFailure;
  }
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (Status s = [&] {
          for (int64_t id : seqs[i]) {
            if (id < 0 || id >= (*model)->config().vocab_size) {
              return InvalidArgumentError("token id " + std::to_string(id) +
                                          " outside the model's vocabulary of " +
                                          std::to_string((*model)->config().vocab_size));
            }
          }
          return OkStatus();
        }();
        !s.ok()) {
      err << "rollout score: " << input << ": row " << i + 1 << ": ids: " << s.message() << "\n";
      return kExitFailure;
    }
  }
  LogProbOptions lo;
  lo.chunk_size = *chunk;
  StatusOr<std::vector<std::vector<float>>> lps = (*model)->TokenLogProbs(seqs, lo);
  if (!lps.ok()) {
    err << "rollout score: " << lps.status().message() << "\n";
    return kExitFailure;
  }
  std::string text;
  for (size_t i = 0; i < seqs.size(); ++i) {
    Json row = Json::MakeObject();
    Json values = Json::MakeArray();
    double sum = 0;
    for (size_t t = static_cast<size_t>(prompt_lens[i]) - 1; t < (*lps)[i].size(); ++t) {
      values.push_back(Json(static_cast<double>((*lps)[i][t])));
      sum += (*lps)[i][t];
    }
    row["num_tokens"] = Json(static_cast<int64_t>(values.as_array().size()));
    row["logprobs"] = values;
    row["sum"] = sum;
    text += row.Dump() + "\n";
  }
  const std::string output = StrFlag(*flags, "--output");
  if (output.empty()) {
    out << text;
  } else if (Status s = WriteStringToFile(output, text); !s.ok()) {
    err << "rollout score: " << s.message() << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace cascade::model
