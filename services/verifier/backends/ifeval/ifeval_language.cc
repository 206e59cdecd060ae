#include "services/verifier/backends/ifeval/ifeval_language.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "cld2/public/compact_lang_det.h"
#include "cld2/public/encodings.h"

namespace cascade::verifier::ifeval {
namespace {

// CLD2 keeps a few retired ISO 639 codes; langdetect reports the current ones.
std::string NormalizeCode(absl::string_view code) {
  if (code == "iw") return "he";
  if (code == "jw") return "jv";
  if (code == "in") return "id";
  return std::string(code);
}

}  // namespace

std::optional<std::string> DetectLanguage(absl::string_view text) {
  CLD2::CLDHints hints = {nullptr, nullptr, CLD2::UNKNOWN_ENCODING, CLD2::UNKNOWN_LANGUAGE};
  CLD2::Language language3[3];
  int percent3[3];
  double normalized_score3[3];
  int text_bytes = 0;
  bool is_reliable = false;
  int valid_prefix_bytes = 0;
  CLD2::Language language = CLD2::ExtDetectLanguageSummaryCheckUTF8(
      text.data(), static_cast<int>(text.size()), /*is_plain_text=*/true, &hints,
      /*flags=*/0, language3, percent3, normalized_score3, /*resultchunkvector=*/nullptr,
      &text_bytes, &is_reliable, &valid_prefix_bytes);
  if (language == CLD2::UNKNOWN_LANGUAGE || text_bytes == 0) return std::nullopt;
  return NormalizeCode(CLD2::LanguageCode(language));
}

bool LanguageMatches(absl::string_view expected, absl::string_view detected) {
  std::string want = NormalizeCode(absl::AsciiStrToLower(expected));
  std::string got = absl::AsciiStrToLower(detected);
  if (want == got) return true;
  return absl::StartsWith(got, want + "-");
}

}  // namespace cascade::verifier::ifeval
