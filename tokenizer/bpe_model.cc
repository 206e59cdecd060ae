#include "tokenizer/bpe_model.h"

#include <queue>

#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "tokenizer/utf8.h"

namespace cascade::tokenizer {

const std::array<std::string, 256>& ByteLevelAlphabet() {
  static const std::array<std::string, 256>* alphabet = [] {
    auto* table = new std::array<std::string, 256>();
    int shifted = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      AppendUtf8(printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + shifted++),
                 &(*table)[b]);
    }
    return table;
  }();
  return *alphabet;
}

namespace {

// Code point -> byte for the alphabet above; -1 for characters outside it.
int AlphabetByte(char32_t c) {
  static const std::array<int16_t, 324>* inverse = [] {
    auto* table = new std::array<int16_t, 324>();
    table->fill(-1);
    const auto& alphabet = ByteLevelAlphabet();
    for (int b = 0; b < 256; ++b) {
      char32_t c;
      size_t bad;
      DecodeUtf8(alphabet[b], &c, &bad);
      (*table)[c] = static_cast<int16_t>(b);
    }
    return table;
  }();
  return c < inverse->size() ? (*inverse)[c] : -1;
}

}  // namespace

bool ByteLevelToBytes(absl::string_view token, std::string* bytes) {
  bool all_mapped = true;
  size_t i = 0;
  while (i < token.size()) {
    char32_t c;
    size_t bad;
    size_t len = DecodeUtf8(token.substr(i), &c, &bad);
    if (len == 0) {
      bytes->append(token.data() + i, bad);
      all_mapped = false;
      i += bad;
      continue;
    }
    int b = AlphabetByte(c);
    if (b < 0) {
      bytes->append(token.data() + i, len);
      all_mapped = false;
    } else {
      bytes->push_back(static_cast<char>(b));
    }
    i += len;
  }
  return all_mapped;
}

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Create(
    const absl::flat_hash_map<std::string, int32_t>& vocab, const std::vector<MergeRule>& merges,
    BpeModelOptions options) {
  std::unique_ptr<BpeModel> model(new BpeModel(options));
  const auto& alphabet = ByteLevelAlphabet();
  for (int b = 0; b < 256; ++b) {
    auto it = vocab.find(alphabet[b]);
    if (it == vocab.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "vocab: no token for byte ", b, " (\"", alphabet[b],
          "\"); only byte-level BPE vocabularies are supported"));
    }
    model->byte_ids_[b] = it->second;
  }
  model->merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const MergeRule& rule = merges[rank];
    auto left = vocab.find(rule.left);
    auto right = vocab.find(rule.right);
    auto result = vocab.find(absl::StrCat(rule.left, rule.right));
    const char* missing = left == vocab.end()    ? "its left part"
                          : right == vocab.end() ? "its right part"
                          : result == vocab.end() ? "its result"
                                                  : nullptr;
    if (missing != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("merges[", rank, "] (\"", rule.left, "\", \"",
                                                     rule.right, "\"): ", missing,
                                                     " is not in the vocabulary"));
    }
    // A later duplicate of a pair never fires (the earlier rank wins), as in
    // the reference implementations.
    model->merges_.try_emplace(PairKey(left->second, right->second),
                               MergeInfo{static_cast<int32_t>(rank), result->second});
  }
  if (options.ignore_merges) {
    for (const auto& [token, id] : vocab) {
      std::string raw;
      if (ByteLevelToBytes(token, &raw)) model->raw_vocab_.emplace(std::move(raw), id);
    }
  }
  model->cache_ = std::make_unique<CacheShard[]>(kShards);
  return model;
}

void BpeModel::EncodeWord(absl::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (word.size() == 1) {
    out->push_back(byte_ids_[static_cast<uint8_t>(word[0])]);
    return;
  }
  if (options_.ignore_merges) {
    auto it = raw_vocab_.find(word);
    if (it != raw_vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= options_.max_cached_word_bytes && options_.cache_capacity > 0;
  if (!cacheable) {
    MergeWord(word, out);
    return;
  }
  const size_t hash = absl::Hash<absl::string_view>()(word);
  CacheShard& shard = cache_[hash % kShards];
  {
    absl::ReaderMutexLock lock(&shard.mu);
    auto it = shard.words.find(word);
    if (it != shard.words.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out->size();
  MergeWord(word, out);
  std::vector<int32_t> ids(out->begin() + start, out->end());
  absl::MutexLock lock(&shard.mu);
  // Emptying a full shard keeps memory bounded with no bookkeeping per hit;
  // frequent words come back after one miss each.
  if (shard.words.size() >= options_.cache_capacity / kShards + 1) shard.words.clear();
  shard.words.emplace(std::string(word), std::move(ids));
}

void BpeModel::MergeWord(absl::string_view word, std::vector<int32_t>* out) const {
  const int n = static_cast<int>(word.size());
  struct Symbol {
    int32_t id;
    int32_t prev;  // -1 at the start
    int32_t next;  // n at the end
  };
  absl::InlinedVector<Symbol, 64> symbols(n);
  for (int i = 0; i < n; ++i) {
    symbols[i] = Symbol{byte_ids_[static_cast<uint8_t>(word[i])], i - 1, i + 1};
  }
  // (rank, left position): the smallest rank first, then the leftmost.
  using Entry = std::pair<int32_t, int32_t>;
  std::priority_queue<Entry, absl::InlinedVector<Entry, 64>, std::greater<Entry>> queue;
  for (int i = 0; i + 1 < n; ++i) {
    if (const MergeInfo* m = FindMerge(symbols[i].id, symbols[i + 1].id)) queue.emplace(m->rank, i);
  }
  while (!queue.empty()) {
    auto [rank, pos] = queue.top();
    queue.pop();
    Symbol& left = symbols[pos];
    if (left.id < 0 || left.next >= n) continue;  // merged away, or now last
    Symbol& right = symbols[left.next];
    const MergeInfo* m = FindMerge(left.id, right.id);
    // Ranks are unique per pair, so a different rank means a stale entry.
    if (m == nullptr || m->rank != rank) continue;
    left.id = m->result;
    right.id = -1;
    left.next = right.next;
    if (left.next < n) symbols[left.next].prev = pos;
    if (left.prev >= 0) {
      if (const MergeInfo* p = FindMerge(symbols[left.prev].id, left.id)) {
        queue.emplace(p->rank, left.prev);
      }
    }
    if (left.next < n) {
      if (const MergeInfo* q = FindMerge(left.id, symbols[left.next].id)) queue.emplace(q->rank, pos);
    }
  }
  for (int i = 0; i < n; i = symbols[i].next) out->push_back(symbols[i].id);
}

}  // namespace cascade::tokenizer
