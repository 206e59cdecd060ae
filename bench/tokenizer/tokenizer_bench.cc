// Encode throughput (MB/s on one core) of the C++ tokenizer against the
// JavaScript tokenizers of the same npm packages, measured in the same run
// on the same chunks: English prose (the license texts every Debian system
// has in /usr/share/common-licenses) and code (this repository's C++
// sources). Both sides run one untimed pass first, so their word caches are
// warm, then encode the chunks repeatedly for --seconds.
//
// Usage: tokenizer_bench [--seconds S] [--cache DIR]
//   DIR: as filled by scripts/fetch-tokenizers.sh (default: $CASCADE_TOKENIZER_CACHE
//   or $HOME/.cache/cascade/tokenizers).
#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/json_util.h"
#include "tokenizer/tokenizer.h"

namespace {

using cascade::tokenizer::Tokenizer;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string> ListFiles(const std::string& dir, const std::vector<std::string>& suffixes) {
  std::vector<std::string> files;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* entry = readdir(d)) {
      std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      for (const std::string& suffix : suffixes) {
        if (suffix.empty() || absl::EndsWith(name, suffix)) {
          files.push_back(dir + "/" + name);
          break;
        }
      }
    }
    closedir(d);
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Chunks of about 1 KB cut at line ends: the size of a prompt or a message,
// and small enough that gpt-3-encoder's quadratic array concatenation does
// not dominate its time.
std::vector<std::string> Chunks(const std::vector<std::string>& files) {
  std::vector<std::string> chunks;
  std::string current;
  for (const std::string& file : files) {
    std::istringstream in(ReadFile(file));
    std::string line;
    while (std::getline(in, line)) {
      current += line;
      current += '\n';
      if (current.size() >= 1024) {
        chunks.push_back(std::move(current));
        current.clear();
      }
    }
  }
  if (!current.empty()) chunks.push_back(current);
  return chunks;
}

double CppMegabytesPerSecond(const Tokenizer& tokenizer, const std::vector<std::string>& chunks,
                             double seconds) {
  size_t sink = 0, bytes_per_pass = 0;
  for (const std::string& chunk : chunks) {
    sink += tokenizer.Encode(chunk).size();
    bytes_per_pass += chunk.size();
  }
  size_t bytes = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    for (const std::string& chunk : chunks) sink += tokenizer.Encode(chunk).size();
    bytes += bytes_per_pass;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds);
  if (sink == 0) std::cerr << "no tokens\n";
  return bytes / 1e6 / elapsed;
}

double JsMegabytesPerSecond(const std::string& cache, const std::string& which,
                            const std::string& input, double seconds) {
  const std::string command =
      absl::StrCat("node '", CASCADE_SOURCE_DIR, "/bench/tokenizer/js_bench.js' --cache '", cache,
                   "' --tokenizer ", which, " --input '", input, "' --seconds ", seconds);
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  std::string out;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) out.append(buffer, n);
  if (pclose(pipe) != 0) return -1;
  auto result = cascade::ParseJson(out, "js_bench.js output");
  if (!result.ok() || !result->contains("mb_per_s")) return -1;
  return (*result)["mb_per_s"].get<double>();
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2;
  std::string cache;
  if (const char* env = std::getenv("CASCADE_TOKENIZER_CACHE")) cache = env;
  if (cache.empty()) cache = absl::StrCat(std::getenv("HOME") ? std::getenv("HOME") : "", "/.cache/cascade/tokenizers");
  constexpr char kUsage[] = "usage: tokenizer_bench [--seconds S] [--cache DIR]\n";
  for (int i = 1; i < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (i + 1 >= argc) {
      std::cerr << flag << " needs a value\n" << kUsage;
      return 2;
    }
    if (flag == "--seconds") {
      seconds = std::atof(argv[i + 1]);
    } else if (flag == "--cache") {
      cache = argv[i + 1];
    } else {
      std::cerr << "unknown flag " << flag << "\n" << kUsage;
      return 2;
    }
  }

  struct Corpus {
    std::string name;
    std::vector<std::string> chunks;
    std::string jsonl;
  };
  std::vector<Corpus> corpora = {
      {"English prose", Chunks(ListFiles("/usr/share/common-licenses", {""})), ""},
      {"C++ code", Chunks([] {
         std::vector<std::string> files;
         for (const char* dir : {"/common", "/tokenizer", "/services/verifier"}) {
           for (auto& f : ListFiles(std::string(CASCADE_SOURCE_DIR) + dir, {".cc", ".h"})) files.push_back(f);
         }
         return files;
       }()), ""},
  };
  char dir_template[] = "/tmp/tokenizer_bench.XXXXXX";
  const std::string temp_dir = mkdtemp(dir_template);
  for (size_t c = 0; c < corpora.size(); ++c) {
    corpora[c].jsonl = absl::StrCat(temp_dir, "/corpus", c, ".jsonl");
    std::ofstream out(corpora[c].jsonl);
    for (const std::string& chunk : corpora[c].chunks) out << cascade::Json{{"text", chunk}}.dump() << "\n";
  }

  std::printf("| tokenizer | corpus | size | C++ MB/s | JavaScript MB/s | ratio |\n");
  std::printf("|---|---|---|---|---|---|\n");
  int status = 0;
  for (const char* which : {"qwen3", "gpt2"}) {
    auto tokenizer = Tokenizer::FromFile(absl::StrCat(cache, "/", which));
    if (!tokenizer.ok()) {
      std::cerr << tokenizer.status().ToString() << "\nRun scripts/fetch-tokenizers.sh first.\n";
      return 1;
    }
    for (const Corpus& corpus : corpora) {
      size_t bytes = 0;
      for (const auto& chunk : corpus.chunks) bytes += chunk.size();
      const double cpp = CppMegabytesPerSecond(**tokenizer, corpus.chunks, seconds);
      const double js = JsMegabytesPerSecond(cache, which, corpus.jsonl, seconds);
      if (js <= 0) status = 1;
      std::printf("| %s | %s | %.0f KB | %.2f | %.2f | %.1fx |\n", which, corpus.name.c_str(), bytes / 1e3,
                  cpp, js, js > 0 ? cpp / js : 0.0);
      std::fflush(stdout);
    }
  }
  for (const Corpus& corpus : corpora) std::remove(corpus.jsonl.c_str());
  rmdir(temp_dir.c_str());
  return status;
}
