#include "tokenizer/regex_splitter.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "tokenizer/utf8.h"

namespace cascade::tokenizer {

const char kGpt2SplitPattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

constexpr char kQwenContractions[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
constexpr char kQwenContractionsAscii[] =
    "(?:'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))";

// Match state that cannot be shared between threads. One per thread is
// enough for every splitter: the match data is sized for any pattern here
// (only the whole match is read) and the JIT stack is pattern-independent.
struct ThreadMatchState {
  ThreadMatchState() {
    match_data = pcre2_match_data_create(16, nullptr);
    context = pcre2_match_context_create(nullptr);
    // Long whitespace runs make `\s+(?!\S)` backtrack deeply; the default
    // 32 KiB JIT stack is too small for megabyte-long runs.
    jit_stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    if (jit_stack != nullptr) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~ThreadMatchState() {
    pcre2_match_data_free(match_data);
    pcre2_match_context_free(context);
    if (jit_stack != nullptr) pcre2_jit_stack_free(jit_stack);
  }
  pcre2_match_data* match_data;
  pcre2_match_context* context;
  pcre2_jit_stack* jit_stack;
};

ThreadMatchState& MatchState() {
  thread_local ThreadMatchState state;
  return state;
}

}  // namespace

absl::StatusOr<std::string> RewritePatternForJsSemantics(absl::string_view pattern) {
  std::string source = absl::StrReplaceAll(pattern, {{kQwenContractions, kQwenContractionsAscii}});
  std::string out;
  out.reserve(source.size() * 2);
  bool in_class = false;
  for (size_t i = 0; i < source.size(); ++i) {
    const char c = source[i];
    if (c == '\\' && i + 1 < source.size()) {
      const char next = source[++i];
      if (next == 's') {
        absl::StrAppend(&out, in_class ? "" : "[", kJsWhitespaceClassBody, in_class ? "" : "]");
      } else if (next == 'S') {
        if (in_class) {
          // A negated set inside a set ("[\S...]") has no class-body form.
          return absl::InvalidArgumentError(
              absl::StrCat("pattern offset ", i - 1, ": \\S inside a character class is not supported"));
        }
        absl::StrAppend(&out, "[^", kJsWhitespaceClassBody, "]");
      } else {
        out.push_back('\\');
        out.push_back(next);
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal, not the end of the set.
      if (i + 1 < source.size() && source[i + 1] == '^') out.push_back(source[++i]);
      if (i + 1 < source.size() && source[i + 1] == ']') out.push_back(source[++i]);
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<RegexSplitter>> RegexSplitter::Create(absl::string_view pattern) {
  auto rewritten = RewritePatternForJsSemantics(pattern);
  if (!rewritten.ok()) return rewritten.status();
  std::unique_ptr<RegexSplitter> splitter(new RegexSplitter());
  splitter->compiled_pattern_ = *std::move(rewritten);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(
      reinterpret_cast<PCRE2_SPTR>(splitter->compiled_pattern_.data()),
      splitter->compiled_pattern_.size(), PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset,
      nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrCat("regex does not compile at offset ",
                                                   error_offset, ": ",
                                                   reinterpret_cast<const char*>(message)));
  }
  splitter->code_ = code;
  // JIT is an optimization only: without it the interpreter gives the same matches.
  splitter->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return splitter;
}

RegexSplitter::~RegexSplitter() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void RegexSplitter::Split(absl::string_view text, std::vector<absl::string_view>* out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  ThreadMatchState& state = MatchState();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t gap_start = 0;
  size_t offset = 0;
  while (offset < text.size()) {
    // The caller has validated the UTF-8, so PCRE2 need not check it again
    // on every call (which would make splitting quadratic).
    int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK,
                                    state.match_data, state.context)
                  : pcre2_match(code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK,
                                state.match_data, state.context);
    if (rc < 0) break;  // no further match (or a resource limit): the rest is one gap
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.match_data);
    size_t start = ovector[0], end = ovector[1];
    if (start > gap_start) out->push_back(text.substr(gap_start, start - gap_start));
    if (end > start) {
      out->push_back(text.substr(start, end - start));
      offset = end;
    } else {
      // An empty match: step over one character so the loop advances.
      offset = start + 1;
      while (offset < text.size() && (static_cast<uint8_t>(text[offset]) & 0xC0) == 0x80) ++offset;
      if (start > gap_start) {
        gap_start = start;
      }
      continue;
    }
    gap_start = end;
  }
  if (gap_start < text.size()) out->push_back(text.substr(gap_start));
}

}  // namespace cascade::tokenizer
