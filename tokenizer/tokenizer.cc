#include "tokenizer/tokenizer.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include <utf8proc.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "tokenizer/utf8.h"

namespace cascade::tokenizer {
namespace {

constexpr uint8_t kKnown = 1;
constexpr uint8_t kSpecial = 2;

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool IsFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A letter, digit or underscore: what single_word tokens must not touch.
bool IsWordChar(char32_t c) {
  if (c < 0x80) return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// Whitespace as the JavaScript trimStart/trimEnd the oracle uses see it.
size_t LeadingWhitespace(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    char32_t c;
    size_t bad;
    size_t len = DecodeUtf8(text.substr(i), &c, &bad);
    if (len == 0 || !IsJsWhitespace(c)) break;
    i += len;
  }
  return i;
}

size_t TrailingWhitespace(absl::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80 && end - start < 4) --start;
    char32_t c;
    size_t bad;
    size_t len = DecodeUtf8(text.substr(start, end - start), &c, &bad);
    if (len != end - start || !IsJsWhitespace(c)) break;
    end = start;
  }
  return text.size() - end;
}

absl::Status ParseNormalizer(const Json& normalizer, const JsonPath& path, bool* nfc) {
  if (normalizer.is_null()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::string type, GetString(normalizer, "type", path));
  if (type == "NFC") {
    *nfc = true;
    return absl::OkStatus();
  }
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const Json* list, GetArray(normalizer, "normalizers", path));
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(ParseNormalizer((*list)[i], path.Key("normalizers").Index(i), nfc));
    }
    return absl::OkStatus();
  }
  return path.Key("type").Error(
      absl::StrCat("unsupported normalizer \"", type, "\" (supported: NFC, Sequence)"));
}

// Quotes a literal for PCRE2.
std::string QuoteRegex(absl::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

static absl::Status ParsePreTokenizer(const Json& pre, const JsonPath& path, bool* add_prefix_space,
                                      std::vector<std::unique_ptr<RegexSplitter>>* splitters) {
  if (pre.is_null()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::string type, GetString(pre, "type", path));
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const Json* list, GetArray(pre, "pretokenizers", path));
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(ParsePreTokenizer((*list)[i], path.Key("pretokenizers").Index(i),
                                        add_prefix_space, splitters));
    }
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {
    // The byte mapping itself happens inside BpeModel; what is left here is
    // the optional GPT-2 split and the leading space.
    ASSIGN_OR_RETURN(*add_prefix_space, GetBoolOr(pre, "add_prefix_space", path, false));
    ASSIGN_OR_RETURN(bool use_regex, GetBoolOr(pre, "use_regex", path, true));
    if (use_regex) {
      auto splitter = RegexSplitter::Create(kGpt2SplitPattern);
      if (!splitter.ok()) return path.Error(splitter.status().message());
      splitters->push_back(*std::move(splitter));
    }
    return absl::OkStatus();
  }
  if (type == "Split") {
    ASSIGN_OR_RETURN(std::string behavior, GetString(pre, "behavior", path));
    if (behavior != "Isolated") {
      return path.Key("behavior").Error(
          absl::StrCat("unsupported split behavior \"", behavior, "\" (supported: Isolated)"));
    }
    ASSIGN_OR_RETURN(bool invert, GetBoolOr(pre, "invert", path, false));
    if (invert) return path.Key("invert").Error("inverted splits are not supported");
    ASSIGN_OR_RETURN(const Json* pattern, GetObject(pre, "pattern", path));
    const JsonPath pattern_path = path.Key("pattern");
    std::string regex;
    if (pattern->contains("Regex")) {
      ASSIGN_OR_RETURN(regex, GetString(*pattern, "Regex", pattern_path));
    } else {
      ASSIGN_OR_RETURN(std::string literal, GetString(*pattern, "String", pattern_path));
      regex = QuoteRegex(literal);
    }
    auto splitter = RegexSplitter::Create(regex);
    if (!splitter.ok()) return pattern_path.Error(splitter.status().message());
    splitters->push_back(*std::move(splitter));
    return absl::OkStatus();
  }
  return path.Key("type").Error(absl::StrCat(
      "unsupported pre_tokenizer \"", type, "\" (supported: ByteLevel, Split, Sequence)"));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromHuggingFaceJson(const Json& root,
                                                                          const std::string& source) {
  const JsonPath path(source);
  RETURN_IF_ERROR(ExpectObject(root, path));
  std::unique_ptr<Tokenizer> tok(new Tokenizer());

  // 1. The model: a byte-level BPE.
  ASSIGN_OR_RETURN(const Json* model, GetObject(root, "model", path));
  const JsonPath model_path = path.Key("model");
  ASSIGN_OR_RETURN(std::string model_type, GetStringOr(*model, "type", model_path, "BPE"));
  if (model_type != "BPE") {
    return model_path.Key("type").Error(
        absl::StrCat("unsupported model \"", model_type, "\" (supported: BPE)"));
  }
  ASSIGN_OR_RETURN(bool byte_fallback, GetBoolOr(*model, "byte_fallback", model_path, false));
  if (byte_fallback) return model_path.Key("byte_fallback").Error("byte_fallback is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    ASSIGN_OR_RETURN(std::string affix, GetStringOr(*model, key, model_path, ""));
    if (!affix.empty()) return model_path.Key(key).Error("word affixes are not supported");
  }
  if (model->contains("dropout") && !(*model)["dropout"].is_null()) {
    return model_path.Key("dropout").Error("BPE dropout is not supported (encoding must be deterministic)");
  }
  BpeModelOptions options;
  ASSIGN_OR_RETURN(options.ignore_merges, GetBoolOr(*model, "ignore_merges", model_path, false));

  ASSIGN_OR_RETURN(const Json* vocab, GetObject(*model, "vocab", model_path));
  const JsonPath vocab_path = model_path.Key("vocab");
  tok->vocab_.reserve(vocab->size());
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      return vocab_path.Key(token).Error(
          absl::StrCat("expected a non-negative integer id, got ", JsonTypeName(id)));
    }
    tok->vocab_.emplace(token, static_cast<int32_t>(id.get<int64_t>()));
  }

  // Merges: "a b" strings (tokenizers < 0.20) or ["a", "b"] pairs (later,
  // e.g. Qwen3: the pair form can hold tokens with spaces).
  ASSIGN_OR_RETURN(const Json* merges_json, GetArray(*model, "merges", model_path));
  const JsonPath merges_path = model_path.Key("merges");
  std::vector<MergeRule> merges;
  merges.reserve(merges_json->size());
  for (size_t i = 0; i < merges_json->size(); ++i) {
    const Json& merge = (*merges_json)[i];
    if (merge.is_string()) {
      const std::string& text = merge.get_ref<const std::string&>();
      std::vector<std::string> parts = absl::StrSplit(text, ' ');
      if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
        return merges_path.Index(i).Error(
            absl::StrCat("expected \"left right\" with one space, got \"", text, "\""));
      }
      merges.push_back(MergeRule{parts[0], parts[1]});
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      merges.push_back(MergeRule{merge[0].get<std::string>(), merge[1].get<std::string>()});
    } else {
      return merges_path.Index(i).Error(
          absl::StrCat("expected a \"left right\" string or a [left, right] pair, got ",
                       JsonTypeName(merge)));
    }
  }
  auto bpe = BpeModel::Create(tok->vocab_, merges, options);
  if (!bpe.ok()) return model_path.Error(bpe.status().message());
  tok->model_ = *std::move(bpe);

  // 2. The pipeline around it.
  RETURN_IF_ERROR(ParseNormalizer(root.value("normalizer", Json()), path.Key("normalizer"), &tok->nfc_));
  RETURN_IF_ERROR(ParsePreTokenizer(root.value("pre_tokenizer", Json()), path.Key("pre_tokenizer"),
                                    &tok->add_prefix_space_, &tok->splitters_));
  for (const char* key : {"decoder", "post_processor"}) {
    const Json part = root.value(key, Json());
    if (part.is_null()) continue;
    ASSIGN_OR_RETURN(std::string type, GetString(part, "type", path.Key(key)));
    // Both are no-ops on ids for a byte-level model; anything else (template
    // post-processing that inserts BOS/EOS, other decoders) would change
    // results silently, so it is refused.
    if (type != "ByteLevel") {
      return path.Key(key).Key("type").Error(
          absl::StrCat("unsupported ", key, " \"", type, "\" (supported: ByteLevel)"));
    }
  }

  // 3. Added tokens.
  const Json added = root.value("added_tokens", Json::array());
  if (!added.is_array()) {
    return path.Key("added_tokens").Error(absl::StrCat("expected an array, got ", JsonTypeName(added)));
  }
  for (size_t i = 0; i < added.size(); ++i) {
    const JsonPath token_path = path.Key("added_tokens").Index(i);
    RETURN_IF_ERROR(ExpectObject(added[i], token_path));
    AddedToken token;
    ASSIGN_OR_RETURN(token.content, GetString(added[i], "content", token_path));
    ASSIGN_OR_RETURN(int64_t id, GetInt(added[i], "id", token_path));
    if (id < 0 || id > INT32_MAX) return token_path.Key("id").Error("id out of range");
    if (token.content.empty()) return token_path.Key("content").Error("empty added token");
    token.id = static_cast<int32_t>(id);
    ASSIGN_OR_RETURN(token.special, GetBoolOr(added[i], "special", token_path, false));
    ASSIGN_OR_RETURN(token.lstrip, GetBoolOr(added[i], "lstrip", token_path, false));
    ASSIGN_OR_RETURN(token.rstrip, GetBoolOr(added[i], "rstrip", token_path, false));
    ASSIGN_OR_RETURN(token.single_word, GetBoolOr(added[i], "single_word", token_path, false));
    ASSIGN_OR_RETURN(token.normalized, GetBoolOr(added[i], "normalized", token_path, false));
    tok->added_tokens_.push_back(std::move(token));
  }
  RETURN_IF_ERROR(tok->Finish());
  return tok;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGpt2Files(const std::string& encoder_json_path,
                                                                   const std::string& vocab_bpe_path) {
  ASSIGN_OR_RETURN(Json encoder, ReadJsonFile(encoder_json_path));
  const JsonPath path(encoder_json_path);
  RETURN_IF_ERROR(ExpectObject(encoder, path));
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  for (const auto& [token, id] : encoder.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      return path.Key(token).Error(absl::StrCat("expected a non-negative integer id, got ", JsonTypeName(id)));
    }
    tok->vocab_.emplace(token, static_cast<int32_t>(id.get<int64_t>()));
  }
  ASSIGN_OR_RETURN(std::string bpe_text, ReadTextFile(vocab_bpe_path));
  std::vector<MergeRule> merges;
  std::vector<absl::string_view> lines = absl::StrSplit(bpe_text, '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    absl::string_view line = absl::StripTrailingAsciiWhitespace(lines[i]);
    if (line.empty() || (i == 0 && absl::StartsWith(line, "#version"))) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (parts.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(vocab_bpe_path, ":", i + 1,
                                                     ": expected \"left right\", got \"", line, "\""));
    }
    merges.push_back(MergeRule{std::string(parts[0]), std::string(parts[1])});
  }
  auto bpe = BpeModel::Create(tok->vocab_, merges, BpeModelOptions());
  if (!bpe.ok()) return absl::InvalidArgumentError(absl::StrCat(vocab_bpe_path, ": ", bpe.status().message()));
  tok->model_ = *std::move(bpe);
  auto splitter = RegexSplitter::Create(kGpt2SplitPattern);
  if (!splitter.ok()) return splitter.status();
  tok->splitters_.push_back(*std::move(splitter));
  if (auto it = tok->vocab_.find("<|endoftext|>"); it != tok->vocab_.end()) {
    AddedToken eot;
    eot.content = "<|endoftext|>";
    eot.id = it->second;
    eot.special = true;
    tok->added_tokens_.push_back(eot);
  }
  RETURN_IF_ERROR(tok->Finish());
  return tok;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  if (IsDirectory(path)) {
    const std::string json_path = path + "/tokenizer.json";
    if (IsFile(json_path)) return FromFile(json_path);
    const std::string encoder = path + "/encoder.json", merges = path + "/vocab.bpe";
    if (IsFile(encoder) && IsFile(merges)) return FromGpt2Files(encoder, merges);
    return absl::NotFoundError(absl::StrCat(
        path, ": holds neither tokenizer.json nor encoder.json + vocab.bpe"));
  }
  ASSIGN_OR_RETURN(Json root, ReadJsonFile(path));
  return FromHuggingFaceJson(root, path);
}

absl::Status Tokenizer::Finish() {
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab_) max_id = std::max(max_id, id);
  for (const AddedToken& token : added_tokens_) max_id = std::max(max_id, token.id);
  id_to_token_.assign(max_id + 1, std::string());
  id_to_bytes_.assign(max_id + 1, std::string());
  id_flags_.assign(max_id + 1, 0);
  for (const auto& [token, id] : vocab_) {
    id_to_token_[id] = token;
    // A token outside the byte alphabet decodes to its own spelling, which
    // is what the reference decoders do with such (hand-edited) entries.
    ByteLevelToBytes(token, &id_to_bytes_[id]);
    id_flags_[id] = kKnown;
  }
  added_by_first_byte_.assign(256, {});
  for (size_t i = 0; i < added_tokens_.size(); ++i) {
    const AddedToken& token = added_tokens_[i];
    id_to_token_[token.id] = token.content;
    id_to_bytes_[token.id] = token.content;
    id_flags_[token.id] = kKnown | (token.special ? kSpecial : 0);
    added_by_first_byte_[static_cast<uint8_t>(token.content[0])].push_back(static_cast<int>(i));
  }
  for (auto& candidates : added_by_first_byte_) {
    std::stable_sort(candidates.begin(), candidates.end(), [&](int a, int b) {
      return added_tokens_[a].content.size() > added_tokens_[b].content.size();
    });
  }
  return absl::OkStatus();
}

bool Tokenizer::MatchesAt(const AddedToken& token, absl::string_view text, size_t pos) const {
  if (text.size() - pos < token.content.size() ||
      text.compare(pos, token.content.size(), token.content) != 0) {
    return false;
  }
  if (!token.single_word) return true;
  const size_t end = pos + token.content.size();
  if (end < text.size()) {
    char32_t c;
    size_t bad;
    if (DecodeUtf8(text.substr(end), &c, &bad) > 0 && IsWordChar(c)) return false;
  }
  if (pos > 0) {
    size_t start = pos - 1;
    while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80 && pos - start < 4) --start;
    char32_t c;
    size_t bad;
    if (DecodeUtf8(text.substr(start, pos - start), &c, &bad) > 0 && IsWordChar(c)) return false;
  }
  return true;
}

void Tokenizer::SplitAddedTokens(absl::string_view text, bool allow_special,
                                 std::vector<Section>* out) const {
  size_t section_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& candidates = added_by_first_byte_[static_cast<uint8_t>(text[pos])];
    int found = -1;
    for (int index : candidates) {  // longest first
      const AddedToken& token = added_tokens_[index];
      if (token.special && !allow_special) continue;
      if (MatchesAt(token, text, pos)) {
        found = index;
        break;
      }
    }
    if (found < 0) {
      ++pos;
      continue;
    }
    if (pos > section_start) out->push_back(Section{text.substr(section_start, pos - section_start)});
    out->push_back(Section{text.substr(pos, added_tokens_[found].content.size()), found});
    pos += added_tokens_[found].content.size();
    section_start = pos;
  }
  if (section_start < text.size()) out->push_back(Section{text.substr(section_start)});
  // lstrip/rstrip: the whitespace beside such a token belongs to it and is dropped.
  for (size_t i = 0; i < out->size(); ++i) {
    if ((*out)[i].added < 0) continue;
    const AddedToken& token = added_tokens_[(*out)[i].added];
    if (token.lstrip && i > 0 && (*out)[i - 1].added < 0) {
      absl::string_view& prev = (*out)[i - 1].text;
      prev.remove_suffix(TrailingWhitespace(prev));
    }
    if (token.rstrip && i + 1 < out->size() && (*out)[i + 1].added < 0) {
      absl::string_view& next = (*out)[i + 1].text;
      next.remove_prefix(LeadingWhitespace(next));
    }
  }
}

std::vector<int32_t> Tokenizer::Encode(absl::string_view text, bool allow_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<Section> sections;
  SplitAddedTokens(text, allow_special, &sections);
  for (const Section& section : sections) {
    if (section.added >= 0) {
      ids.push_back(added_tokens_[section.added].id);
    } else {
      EncodeSection(section.text, &ids);
    }
  }
  return ids;
}

void Tokenizer::EncodeSection(absl::string_view text, std::vector<int32_t>* out) const {
  size_t run_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<uint8_t>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    char32_t c;
    size_t bad;
    size_t len = DecodeUtf8(text.substr(i), &c, &bad);
    if (len > 0) {
      i += len;
      continue;
    }
    if (i > run_start) EncodeValidRun(text.substr(run_start, i - run_start), run_start == 0, out);
    for (size_t b = i; b < i + bad; ++b) out->push_back(model_->ByteId(static_cast<uint8_t>(text[b])));
    i += bad;
    run_start = i;
  }
  if (run_start < text.size()) EncodeValidRun(text.substr(run_start), run_start == 0, out);
}

void Tokenizer::EncodeValidRun(absl::string_view text, bool section_start,
                               std::vector<int32_t>* out) const {
  std::string buffer;
  if (nfc_) {
    // Every code point below U+0300 is NFC-stable and composes with nothing
    // before it, so text without a lead byte >= 0xCC is already in NFC.
    bool maybe_changes = false;
    for (char ch : text) {
      if (static_cast<uint8_t>(ch) >= 0xCC) {
        maybe_changes = true;
        break;
      }
    }
    if (maybe_changes) {
      buffer = NormalizeNfc(text);
      text = buffer;
    }
  }
  if (add_prefix_space_ && section_start && !absl::StartsWith(text, " ")) {
    buffer = absl::StrCat(" ", text);
    text = buffer;
  }
  if (splitters_.empty()) {
    model_->EncodeWord(text, out);
    return;
  }
  std::vector<absl::string_view> pieces;
  splitters_[0]->Split(text, &pieces);
  for (size_t s = 1; s < splitters_.size(); ++s) {
    std::vector<absl::string_view> finer;
    for (absl::string_view piece : pieces) splitters_[s]->Split(piece, &finer);
    pieces.swap(finer);
  }
  for (absl::string_view piece : pieces) model_->EncodeWord(piece, out);
}

std::vector<std::vector<int32_t>> Tokenizer::EncodeBatch(absl::Span<const std::string> texts,
                                                         bool allow_special, int threads) const {
  std::vector<std::vector<int32_t>> result(texts.size());
  threads = std::max(1, std::min<int>(threads, static_cast<int>(texts.size())));
  if (threads == 1) {
    for (size_t i = 0; i < texts.size(); ++i) result[i] = Encode(texts[i], allow_special);
    return result;
  }
  // Short-lived threads over strided items, joined before returning: a batch
  // call owns its parallelism and leaves nothing behind (no pool to size).
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (size_t i = t; i < texts.size(); i += threads) result[i] = Encode(texts[i], allow_special);
    });
  }
  for (auto& worker : workers) worker.join();
  return result;
}

std::string Tokenizer::DecodeBytes(absl::Span<const int32_t> ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size() || !(id_flags_[id] & kKnown)) continue;
    if (skip_special && (id_flags_[id] & kSpecial)) continue;
    out += id_to_bytes_[id];
  }
  return out;
}

std::string Tokenizer::Decode(absl::Span<const int32_t> ids, bool skip_special) const {
  std::string bytes = DecodeBytes(ids, skip_special);
  if (IsValidUtf8(bytes)) return bytes;
  return ReplaceInvalidUtf8(bytes);
}

std::vector<std::string> Tokenizer::DecodeBatch(absl::Span<const std::vector<int32_t>> batch,
                                                bool skip_special) const {
  std::vector<std::string> out;
  out.reserve(batch.size());
  for (const auto& ids : batch) out.push_back(Decode(ids, skip_special));
  return out;
}

std::optional<int32_t> Tokenizer::TokenId(absl::string_view token) const {
  for (const AddedToken& added : added_tokens_) {
    if (added.content == token) return added.id;
  }
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

std::optional<absl::string_view> Tokenizer::TokenString(int32_t id) const {
  if (id < 0 || id >= vocab_size() || !(id_flags_[id] & kKnown)) return std::nullopt;
  return absl::string_view(id_to_token_[id]);
}

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < vocab_size() && (id_flags_[id] & kSpecial);
}

}  // namespace cascade::tokenizer
