#include "tokenizer/bpe_model.h"

#include <thread>

#include <catch2/catch.hpp>

namespace cascade::tokenizer {
namespace {

// A vocabulary of the 256 byte tokens (ids 0..255 in alphabet order) plus
// the results of `merges`, numbered from 256.
absl::flat_hash_map<std::string, int32_t> VocabWith(const std::vector<MergeRule>& merges) {
  absl::flat_hash_map<std::string, int32_t> vocab;
  for (int b = 0; b < 256; ++b) vocab.emplace(ByteLevelAlphabet()[b], b);
  int32_t next = 256;
  for (const MergeRule& rule : merges) vocab.emplace(rule.left + rule.right, next++);
  return vocab;
}

std::vector<int32_t> Encode(const BpeModel& model, absl::string_view word) {
  std::vector<int32_t> ids;
  model.EncodeWord(word, &ids);
  return ids;
}

TEST_CASE("the byte alphabet maps printable bytes to themselves and the rest above U+0100") {
  const auto& alphabet = ByteLevelAlphabet();
  CHECK(alphabet['A'] == "A");
  CHECK(alphabet[' '] == "\xC4\xA0");   // U+0120 'Ġ'
  CHECK(alphabet['\n'] == "\xC4\x8A");  // U+010A 'Ċ'
  std::string bytes;
  CHECK(ByteLevelToBytes("\xC4\xA0hi\xC4\x8A", &bytes));
  CHECK(bytes == " hi\n");
}

TEST_CASE("merges apply in rank order, not in reading order") {
  // "abc": (b, c) has the better rank, so "a" + "bc" although "ab" is first.
  std::vector<MergeRule> merges = {{"b", "c"}, {"a", "b"}};
  auto model = BpeModel::Create(VocabWith(merges), merges, BpeModelOptions());
  REQUIRE(model.ok());
  CHECK(Encode(**model, "abc") == std::vector<int32_t>{'a', 256});
  CHECK(Encode(**model, "ab") == std::vector<int32_t>{257});
  CHECK(Encode(**model, "x") == std::vector<int32_t>{'x'});
}

TEST_CASE("ties between equal pairs go to the leftmost one") {
  // "aaa" with only (a, a): GPT-2 and the JS port give "aa" + "a".
  std::vector<MergeRule> merges = {{"a", "a"}, {"aa", "a"}};
  auto model = BpeModel::Create(VocabWith(merges), merges, BpeModelOptions());
  REQUIRE(model.ok());
  CHECK(Encode(**model, "aa") == std::vector<int32_t>{256});
  CHECK(Encode(**model, "aaa") == std::vector<int32_t>{257});
  CHECK(Encode(**model, "aaaa") == std::vector<int32_t>{256, 256});
}

TEST_CASE("a merge whose result is missing from the vocabulary is an error naming it") {
  std::vector<MergeRule> merges = {{"a", "b"}};
  absl::flat_hash_map<std::string, int32_t> vocab = VocabWith({});
  auto model = BpeModel::Create(vocab, merges, BpeModelOptions());
  REQUIRE_FALSE(model.ok());
  CHECK(std::string(model.status().message()).find("merges[0]") != std::string::npos);
}

TEST_CASE("the word cache gives the same ids under concurrent use and when shards refill") {
  std::vector<MergeRule> merges = {{"a", "b"}, {"ab", "c"}, {"c", "d"}};
  BpeModelOptions options;
  options.cache_capacity = 64;  // one word per shard: constant eviction
  auto model = BpeModel::Create(VocabWith(merges), merges, options);
  REQUIRE(model.ok());
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        std::string word = "abcd" + std::to_string((i + t) % 300);
        std::vector<int32_t> ids = Encode(**model, word);
        if (ids.size() < 2 || ids[0] != 257 || ids[1] != 'd') ++mismatches;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(mismatches == 0);
}

}  // namespace
}  // namespace cascade::tokenizer
