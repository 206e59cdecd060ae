#include "services/verifier/backends/math/regex_util.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdio>
#include <cstdlib>

namespace cascade::verifier::math {
namespace {

// Bounds per match attempt; a pathological input gets "no match" instead of
// running for minutes.
constexpr uint32_t kMatchLimit = 2'000'000;
constexpr uint32_t kDepthLimit = 10'000;

}  // namespace

bool RegexMatch::Has(int group) const {
  return group >= 0 && static_cast<size_t>(group) < groups.size() &&
         groups[group].first != std::string::npos;
}

std::string RegexMatch::Group(int group) const {
  if (!Has(group)) return "";
  return std::string(subject.substr(groups[group].first,
                                    groups[group].second - groups[group].first));
}

Regex::Regex(const std::string& pattern, bool caseless, bool dotall) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
  if (caseless) options |= PCRE2_CASELESS;
  if (dotall) options |= PCRE2_DOTALL;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                        &error, &offset, nullptr);
  if (code_ == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    std::fprintf(stderr, "math backend: bad regex at %zu: %s\n%s\n", static_cast<size_t>(offset),
                 reinterpret_cast<const char*>(message), pattern.c_str());
    std::abort();
  }
  // JIT is optional; the interpreter is the fallback.
  pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() { pcre2_code_free(code_); }

int Regex::GroupNumber(const char* name) const {
  return pcre2_substring_number_from_name(code_, reinterpret_cast<PCRE2_SPTR>(name));
}

bool Regex::Find(absl::string_view subject, size_t from, RegexMatch* match) const {
  if (from > subject.size()) return false;
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(code_, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(context, kMatchLimit);
  pcre2_set_depth_limit(context, kDepthLimit);
  int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), from,
                       0, data, context);
  bool found = rc > 0;
  if (found) {
    PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    uint32_t count = pcre2_get_ovector_count(data);
    match->subject = subject;
    match->start = ovector[0];
    match->end = ovector[1];
    match->groups.assign(count, {std::string::npos, std::string::npos});
    for (uint32_t i = 0; i < count && static_cast<int>(i) < rc; ++i) {
      if (ovector[2 * i] != PCRE2_UNSET) match->groups[i] = {ovector[2 * i], ovector[2 * i + 1]};
    }
  }
  pcre2_match_context_free(context);
  pcre2_match_data_free(data);
  return found;
}

std::vector<RegexMatch> Regex::FindAll(absl::string_view subject) const {
  std::vector<RegexMatch> out;
  size_t from = 0;
  RegexMatch match;
  while (from <= subject.size() && Find(subject, from, &match)) {
    out.push_back(match);
    if (match.end == match.start) {
      // Step over one whole UTF-8 character on an empty match.
      size_t next = match.end + 1;
      while (next < subject.size() && (static_cast<unsigned char>(subject[next]) & 0xC0) == 0x80) {
        ++next;
      }
      from = next;
    } else {
      from = match.end;
    }
  }
  return out;
}

std::string Regex::ReplaceAll(
    absl::string_view subject,
    const std::function<std::string(const RegexMatch&)>& replacement) const {
  std::string out;
  size_t last = 0;
  for (const RegexMatch& match : FindAll(subject)) {
    out.append(subject.data() + last, match.start - last);
    out.append(replacement(match));
    last = match.end;
  }
  out.append(subject.data() + last, subject.size() - last);
  return out;
}

std::string Regex::Replace(absl::string_view subject, absl::string_view replacement) const {
  return ReplaceAll(subject, [&](const RegexMatch& match) {
    std::string out;
    for (size_t i = 0; i < replacement.size(); ++i) {
      if (replacement[i] == '$' && i + 1 < replacement.size() && replacement[i + 1] >= '0' &&
          replacement[i + 1] <= '9') {
        out += match.Group(replacement[i + 1] - '0');
        ++i;
      } else {
        out += replacement[i];
      }
    }
    return out;
  });
}

}  // namespace cascade::verifier::math
