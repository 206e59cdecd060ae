// Test-only access to the real tokenizer files that
// scripts/fetch-tokenizers.sh puts in the cache folder. A missing file fails
// the calling test with what to run.
#ifndef CASCADE_TOKENIZER_TEST_TOKENIZERS_H_
#define CASCADE_TOKENIZER_TEST_TOKENIZERS_H_

#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "tokenizer/tokenizer.h"

namespace cascade::tokenizer::testing {

// $CASCADE_TOKENIZER_CACHE, else the CMake cache variable of that name,
// else $HOME/.cache/cascade/tokenizers (the script's default).
inline std::string CacheDir() {
  if (const char* env = std::getenv("CASCADE_TOKENIZER_CACHE"); env != nullptr && *env != '\0') return env;
  if (std::string(CASCADE_TOKENIZER_CACHE).size() > 0) return CASCADE_TOKENIZER_CACHE;
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : "", "/.cache/cascade/tokenizers");
}

// Loads $CACHE/<name> once per process.
inline const Tokenizer& Load(const std::string& name) {
  static auto* loaded = new std::map<std::string, std::unique_ptr<Tokenizer>>();
  auto it = loaded->find(name);
  if (it != loaded->end()) return *it->second;
  const std::string path = absl::StrCat(CacheDir(), "/", name);
  auto tokenizer = Tokenizer::FromFile(path);
  if (!tokenizer.ok()) {
    FAIL("cannot load " << path << ": " << tokenizer.status().ToString()
                        << "\nRun scripts/fetch-tokenizers.sh (or set CASCADE_TOKENIZER_CACHE).");
  }
  return *loaded->emplace(name, *std::move(tokenizer)).first->second;
}

inline const Tokenizer& Qwen3() { return Load("qwen3"); }
inline const Tokenizer& Gpt2() { return Load("gpt2"); }

}  // namespace cascade::tokenizer::testing

#endif  // CASCADE_TOKENIZER_TEST_TOKENIZERS_H_
