// Byte-level BPE: turns one pre-token (raw bytes) into vocabulary ids by
// applying merges in rank order, leftmost first on ties.
//
// Symbols are ids, not strings: a merge (a, b) -> ab is stored as a map from
// the id pair to (rank, id of ab), so merging never builds strings. Merge
// order: a min-heap of (rank, position of the left symbol) over a linked list
// of symbols; stale heap entries are recognised because a pair's rank is
// unique to it. This gives the same result as the classic GPT-2 loop and as
// the priority-queue loop of the JavaScript tokenizers.
//
// Thread-safe: the model is immutable after Create(); the word cache is
// sharded, each shard under its own mutex.
#ifndef CASCADE_TOKENIZER_BPE_MODEL_H_
#define CASCADE_TOKENIZER_BPE_MODEL_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace cascade::tokenizer {

struct BpeModelOptions {
  // Words in the vocabulary are taken whole, without merging (Llama 3 style).
  bool ignore_merges = false;
  // Words up to this many bytes are cached; longer ones rarely repeat.
  size_t max_cached_word_bytes = 256;
  // Total cached words over all shards; a full shard is emptied and refilled.
  size_t cache_capacity = 1 << 16;
};

// One merge rule in byte-level alphabet, as written in the file.
struct MergeRule {
  std::string left;
  std::string right;
};

class BpeModel {
 public:
  // `vocab` maps byte-level strings (GPT-2's bytes-to-unicode alphabet) to
  // ids. Errors name the merge index at fault: a merge whose parts or result
  // are not in the vocabulary, or a byte whose one-character token is missing.
  static absl::StatusOr<std::unique_ptr<BpeModel>> Create(
      const absl::flat_hash_map<std::string, int32_t>& vocab,
      const std::vector<MergeRule>& merges, BpeModelOptions options);

  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of `word` (raw bytes, any content) to *out.
  void EncodeWord(absl::string_view word, std::vector<int32_t>* out) const;

  // Id of the token for a single raw byte.
  int32_t ByteId(uint8_t byte) const { return byte_ids_[byte]; }

  size_t merge_count() const { return merges_.size(); }

 private:
  struct MergeInfo {
    int32_t rank;
    int32_t result;
  };
  static constexpr int kShards = 64;
  struct CacheShard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<std::string, std::vector<int32_t>> words ABSL_GUARDED_BY(mu);
  };

  explicit BpeModel(BpeModelOptions options) : options_(options) {}
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  const MergeInfo* FindMerge(int32_t left, int32_t right) const {
    auto it = merges_.find(PairKey(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  }
  void MergeWord(absl::string_view word, std::vector<int32_t>* out) const;

  BpeModelOptions options_;
  std::array<int32_t, 256> byte_ids_{};
  absl::flat_hash_map<uint64_t, MergeInfo> merges_;
  // Whole-word lookups for ignore_merges, keyed by raw bytes.
  absl::flat_hash_map<std::string, int32_t> raw_vocab_;
  std::unique_ptr<CacheShard[]> cache_;
};

// GPT-2's reversible map from bytes to printable characters: bytes that are
// printable Latin-1 map to themselves, the other 68 to U+0100 upwards.
// Index: byte; value: that character in UTF-8.
const std::array<std::string, 256>& ByteLevelAlphabet();

// Raw bytes of a byte-level token string; false when some character is not
// in the alphabet (then *bytes holds that character's UTF-8 as is).
bool ByteLevelToBytes(absl::string_view token, std::string* bytes);

}  // namespace cascade::tokenizer

#endif  // CASCADE_TOKENIZER_BPE_MODEL_H_
