// Language identification for the IFEval checkers that ask for a language
// (language:response_language, change_case:english_capital/_lowercase).
//
// Upstream uses the Python `langdetect` package; this uses Google's CLD2
// (Debian libcld2), a deterministic n-gram detector. They agree on ordinary
// paragraphs; on very short or mixed texts they may differ (langdetect is
// also randomized unless seeded). Codes are ISO 639-1 as langdetect reports
// them ("he", not CLD2's legacy "iw").
//
// Thread-safe: CLD2 keeps no mutable state.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_IFEVAL_IFEVAL_LANGUAGE_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_IFEVAL_IFEVAL_LANGUAGE_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace cascade::verifier::ifeval {

// The most likely language of `text` (valid UTF-8), or nullopt when the text
// holds nothing to detect from (upstream's LangDetectException, which the
// checkers count as the instruction being followed).
std::optional<std::string> DetectLanguage(absl::string_view text);

// Whether a detected code satisfies an expected one: equal, or the expected
// code is the detected one's primary subtag ("zh" accepts "zh-Hant").
bool LanguageMatches(absl::string_view expected, absl::string_view detected);

}  // namespace cascade::verifier::ifeval

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_IFEVAL_IFEVAL_LANGUAGE_H_
