#include "services/verifier/backends/ifeval/ifeval_instructions.h"

#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "services/verifier/backends/ifeval/ifeval_language.h"
#include "services/verifier/backends/ifeval/ifeval_text.h"

namespace cascade::verifier::ifeval {
namespace {

constexpr absl::string_view kLessThan = "less than";
constexpr absl::string_view kAtLeast = "at least";

// re.MULTILINE and re.IGNORECASE.
constexpr Regex::Flags kMultiline{/*caseless=*/false, /*multiline=*/true, /*literal=*/false};
constexpr Regex::Flags kCaseless{/*caseless=*/true, /*multiline=*/false, /*literal=*/false};

// upstream's two relations: "less than" is <, "at least" is >=.
bool Compare(int64_t actual, int64_t threshold, absl::string_view relation) {
  return relation == kLessThan ? actual < threshold : actual >= threshold;
}

// Escapes every ASCII punctuation character so `text` matches literally.
std::string EscapeRegex(absl::string_view text) {
  std::string out;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x80 && !absl::ascii_isalnum(u) && c != '_' && c != ' ') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// Upstream splices kwarg strings (keywords, markers, section splitters) into
// Python regexes. Do the same; a string that is not a valid pattern (Python
// would raise) is matched literally instead.
absl::StatusOr<Regex> CompileUserPattern(absl::string_view prefix, absl::string_view user,
                                         absl::string_view suffix, Regex::Flags flags) {
  absl::StatusOr<Regex> regex = Regex::Compile(absl::StrCat(prefix, user, suffix), flags);
  if (regex.ok()) return regex;
  return Regex::Compile(absl::StrCat(prefix, EscapeRegex(user), suffix), flags);
}

absl::StatusOr<int64_t> CountMatches(const Regex& regex, absl::string_view text,
                                     const CancelToken& cancel) {
  ASSIGN_OR_RETURN(auto spans, regex.FindAll(text, cancel));
  return static_cast<int64_t>(spans.size());
}

// --- language:response_language -------------------------------------------
absl::StatusOr<bool> CheckResponseLanguage(const InstructionArgs& args, absl::string_view value,
                                           const CancelToken&) {
  std::optional<std::string> detected = DetectLanguage(value);
  // Upstream counts an undetectable text as following the instruction.
  if (!detected) return true;
  return LanguageMatches(args.String("language"), *detected);
}

// --- length_constraints:number_sentences ------------------------------------
absl::StatusOr<bool> CheckNumberSentences(const InstructionArgs& args, absl::string_view value,
                                          const CancelToken& cancel) {
  ASSIGN_OR_RETURN(auto sentences, SplitSentences(value, cancel));
  return Compare(static_cast<int64_t>(sentences.size()), args.Int("num_sentences"),
                 args.String("relation"));
}

// --- detectable_content:number_placeholders ---------------------------------
absl::StatusOr<bool> CheckPlaceholders(const InstructionArgs& args, absl::string_view value,
                                       const CancelToken& cancel) {
  static const Regex& kPlaceholder = *new Regex(Regex::MustCompile(R"(\[.*?\])", {}));
  ASSIGN_OR_RETURN(int64_t count, CountMatches(kPlaceholder, value, cancel));
  return count >= args.Int("num_placeholders");
}

// --- detectable_format:number_bullet_lists ----------------------------------
absl::StatusOr<bool> CheckBulletLists(const InstructionArgs& args, absl::string_view value,
                                      const CancelToken& cancel) {
  static const Regex& kStar =
      *new Regex(Regex::MustCompile(R"(^\s*\*[^\*].*$)", kMultiline));
  static const Regex& kDash = *new Regex(Regex::MustCompile(R"(^\s*-.*$)", kMultiline));
  ASSIGN_OR_RETURN(int64_t stars, CountMatches(kStar, value, cancel));
  ASSIGN_OR_RETURN(int64_t dashes, CountMatches(kDash, value, cancel));
  return stars + dashes == args.Int("num_bullets");
}

// --- detectable_format:constrained_response ---------------------------------
absl::StatusOr<bool> CheckConstrainedResponse(const InstructionArgs&, absl::string_view value,
                                              const CancelToken&) {
  std::string stripped = PyStrip(value);
  for (absl::string_view option : {"My answer is yes.", "My answer is no.", "My answer is maybe."}) {
    if (absl::StrContains(stripped, option)) return true;
  }
  return false;
}

// --- detectable_format:number_highlighted_sections ---------------------------
absl::StatusOr<bool> CheckHighlights(const InstructionArgs& args, absl::string_view value,
                                     const CancelToken& cancel) {
  static const Regex& kSingle = *new Regex(Regex::MustCompile(R"(\*[^\n\*]*\*)", {}));
  static const Regex& kDouble = *new Regex(Regex::MustCompile(R"(\*\*[^\n\*]*\*\*)", {}));
  int64_t count = 0;
  ASSIGN_OR_RETURN(auto singles, kSingle.FindAll(value, cancel));
  for (const auto& [begin, end] : singles) {
    if (!PyStrip(PyStripChars(value.substr(begin, end - begin), "*")).empty()) ++count;
  }
  ASSIGN_OR_RETURN(auto doubles, kDouble.FindAll(value, cancel));
  for (const auto& [begin, end] : doubles) {
    // removeprefix("**").removesuffix("**"): exactly two stars each side.
    if (!PyStrip(value.substr(begin + 2, end - begin - 4)).empty()) ++count;
  }
  return count >= args.Int("num_highlights");
}

// --- detectable_format:multiple_sections ------------------------------------
absl::StatusOr<bool> CheckSections(const InstructionArgs& args, absl::string_view value,
                                   const CancelToken& cancel) {
  std::string spliter = PyStrip(args.String("section_spliter"));
  ASSIGN_OR_RETURN(Regex regex, CompileUserPattern(R"(\s?)", spliter, R"(\s?\d+\s?)", {}));
  ASSIGN_OR_RETURN(auto sections, regex.Split(value, cancel));
  return static_cast<int64_t>(sections.size()) - 1 >= args.Int("num_sections");
}

// --- length_constraints:number_paragraphs -----------------------------------
absl::StatusOr<bool> CheckParagraphs(const InstructionArgs& args, absl::string_view value,
                                     const CancelToken& cancel) {
  static const Regex& kDivider = *new Regex(Regex::MustCompile(R"(\s?\*\*\*\s?)", {}));
  ASSIGN_OR_RETURN(auto paragraphs, kDivider.Split(value, cancel));
  int64_t count = static_cast<int64_t>(paragraphs.size());
  for (size_t i = 0; i < paragraphs.size(); ++i) {
    if (!PyStrip(paragraphs[i]).empty()) continue;
    // An empty piece is allowed only before the first or after the last divider.
    if (i == 0 || i == paragraphs.size() - 1) {
      --count;
    } else {
      return false;
    }
  }
  return count == args.Int("num_paragraphs");
}

// --- detectable_content:postscript ------------------------------------------
absl::StatusOr<bool> CheckPostscript(const InstructionArgs& args, absl::string_view value,
                                     const CancelToken& cancel) {
  std::string lowered = PyLower(value);
  std::string marker = PyStrip(args.String("postscript_marker"));
  absl::StatusOr<Regex> regex;
  if (marker == "P.P.S") {
    regex = Regex::Compile(R"(\s*p\.\s?p\.\s?s.*$)", kMultiline);
  } else if (marker == "P.S.") {
    regex = Regex::Compile(R"(\s*p\.\s?s\..*$)", kMultiline);
  } else {
    regex = CompileUserPattern(R"(\s*)", PyLower(marker), ".*$", kMultiline);
  }
  if (!regex.ok()) return regex.status();
  return regex->Search(lowered, cancel);
}

// --- keywords:existence -----------------------------------------------------
absl::StatusOr<bool> CheckKeywords(const InstructionArgs& args, absl::string_view value,
                                   const CancelToken& cancel) {
  for (const std::string& keyword : args.List("keywords")) {
    ASSIGN_OR_RETURN(Regex regex, CompileUserPattern("", keyword, "", kCaseless));
    ASSIGN_OR_RETURN(bool found, regex.Search(value, cancel));
    if (!found) return false;
  }
  return true;
}

// --- keywords:frequency -----------------------------------------------------
absl::StatusOr<bool> CheckKeywordFrequency(const InstructionArgs& args, absl::string_view value,
                                           const CancelToken& cancel) {
  std::string keyword = PyStrip(args.String("keyword"));
  ASSIGN_OR_RETURN(Regex regex, CompileUserPattern("", keyword, "", kCaseless));
  ASSIGN_OR_RETURN(int64_t count, CountMatches(regex, value, cancel));
  return Compare(count, args.Int("frequency"), args.String("relation"));
}

// --- length_constraints:number_words ----------------------------------------
absl::StatusOr<bool> CheckNumberWords(const InstructionArgs& args, absl::string_view value,
                                      const CancelToken& cancel) {
  ASSIGN_OR_RETURN(int64_t words, CountWords(value, cancel));
  return Compare(words, args.Int("num_words"), args.String("relation"));
}

// --- detectable_format:json_format ------------------------------------------
absl::StatusOr<bool> CheckJsonFormat(const InstructionArgs&, absl::string_view value,
                                     const CancelToken&) {
  std::string text = PyStrip(value);
  absl::string_view view = text;
  // The same chain of removeprefix/removesuffix as upstream, in its order.
  for (absl::string_view prefix : {"```json", "```Json", "```JSON", "```"}) {
    absl::ConsumePrefix(&view, prefix);
  }
  absl::ConsumeSuffix(&view, "```");
  std::string body = PyStrip(view);
  return Json::accept(body);
}

// --- length_constraints:nth_paragraph_first_word ----------------------------
absl::StatusOr<bool> CheckNthParagraphFirstWord(const InstructionArgs& args,
                                                absl::string_view value, const CancelToken&) {
  std::vector<std::string> paragraphs = PySplit(value, "\n\n");
  int64_t count = static_cast<int64_t>(paragraphs.size());
  for (const std::string& paragraph : paragraphs) {
    if (PyStrip(paragraph).empty()) --count;
  }
  const int64_t nth = args.Int("nth_paragraph");
  // As upstream: the count skips empty pieces but the index does not.
  if (nth > count || nth < 1) return false;
  std::string paragraph = PyStrip(paragraphs[static_cast<size_t>(nth - 1)]);
  if (paragraph.empty()) return false;
  std::string word = PySplitWhitespace(paragraph)[0];
  word = PyLStripChars(PyLStripChars(word, "'"), "\"");
  // The word up to the first punctuation mark, lowercased.
  size_t end = word.find_first_of(".,?!'\"");
  std::string first_word = PyLower(word.substr(0, end));
  return count == args.Int("num_paragraphs") &&
         first_word == PyLower(args.String("first_word"));
}

// --- keywords:forbidden_words -----------------------------------------------
absl::StatusOr<bool> CheckForbiddenWords(const InstructionArgs& args, absl::string_view value,
                                         const CancelToken& cancel) {
  for (const std::string& word : args.List("forbidden_words")) {
    ASSIGN_OR_RETURN(Regex regex, CompileUserPattern(R"(\b)", word, R"(\b)", kCaseless));
    ASSIGN_OR_RETURN(bool found, regex.Search(value, cancel));
    if (found) return false;
  }
  return true;
}

// --- combination:two_responses ----------------------------------------------
absl::StatusOr<bool> CheckTwoResponses(const InstructionArgs&, absl::string_view value,
                                       const CancelToken&) {
  std::vector<std::string> responses = PySplit(value, "******");
  std::vector<std::string> valid;
  for (size_t i = 0; i < responses.size(); ++i) {
    if (PyStrip(responses[i]).empty()) {
      if (i != 0 && i != responses.size() - 1) return false;
    } else {
      valid.push_back(responses[i]);
    }
  }
  return valid.size() == 2 && PyStrip(valid[0]) != PyStrip(valid[1]);
}

// --- combination:repeat_prompt ----------------------------------------------
absl::StatusOr<bool> CheckRepeatPrompt(const InstructionArgs& args, absl::string_view value,
                                       const CancelToken&) {
  std::string response = PyLower(PyStrip(value));
  std::string prompt = PyLower(PyStrip(args.String("prompt_to_repeat")));
  return absl::StartsWith(response, prompt);
}

// --- startend:end_checker ---------------------------------------------------
absl::StatusOr<bool> CheckEnd(const InstructionArgs& args, absl::string_view value,
                              const CancelToken&) {
  std::string response = PyLower(PyStripChars(PyStrip(value), "\""));
  std::string phrase = PyLower(PyStrip(args.String("end_phrase")));
  return absl::EndsWith(response, phrase);
}

// --- detectable_format:title ------------------------------------------------
absl::StatusOr<bool> CheckTitle(const InstructionArgs&, absl::string_view value,
                                const CancelToken& cancel) {
  static const Regex& kTitle = *new Regex(Regex::MustCompile(R"(<<[^\n]+>>)", {}));
  ASSIGN_OR_RETURN(auto titles, kTitle.FindAll(value, cancel));
  for (const auto& [begin, end] : titles) {
    std::string title = PyRStripChars(PyLStripChars(value.substr(begin, end - begin), "<"), ">");
    if (!PyStrip(title).empty()) return true;
  }
  return false;
}

// --- keywords:letter_frequency ----------------------------------------------
absl::StatusOr<bool> CheckLetterFrequency(const InstructionArgs& args, absl::string_view value,
                                          const CancelToken&) {
  std::string letter = PyLower(PyStrip(args.String("letter")));
  std::string lowered = PyLower(value);
  // collections.Counter over the lowered text's characters.
  int64_t count = 0;
  if (CodePointCount(letter) == 1) {
    for (size_t pos = lowered.find(letter); pos != std::string::npos;
         pos = lowered.find(letter, pos + letter.size())) {
      ++count;
    }
  }
  return Compare(count, args.Int("let_frequency"), args.String("let_relation"));
}

// --- change_case:english_capital / english_lowercase ------------------------
bool IsEnglishOrUndetectable(absl::string_view value) {
  std::optional<std::string> detected = DetectLanguage(value);
  return !detected || *detected == "en";
}

absl::StatusOr<bool> CheckEnglishCapital(const InstructionArgs&, absl::string_view value,
                                         const CancelToken&) {
  return PyIsUpper(value) && IsEnglishOrUndetectable(value);
}

absl::StatusOr<bool> CheckEnglishLowercase(const InstructionArgs&, absl::string_view value,
                                           const CancelToken&) {
  return PyIsLower(value) && IsEnglishOrUndetectable(value);
}

// --- punctuation:no_comma ---------------------------------------------------
absl::StatusOr<bool> CheckNoComma(const InstructionArgs&, absl::string_view value,
                                  const CancelToken&) {
  return !absl::StrContains(value, ',');
}

// --- change_case:capital_word_frequency -------------------------------------
absl::StatusOr<bool> CheckCapitalWordFrequency(const InstructionArgs& args,
                                               absl::string_view value,
                                               const CancelToken& cancel) {
  ASSIGN_OR_RETURN(auto words, WordTokenize(value, cancel));
  int64_t capital = 0;
  for (const std::string& word : words) {
    if (PyIsUpper(word)) ++capital;
  }
  return Compare(capital, args.Int("capital_frequency"), args.String("capital_relation"));
}

// --- startend:quotation -----------------------------------------------------
absl::StatusOr<bool> CheckQuotation(const InstructionArgs&, absl::string_view value,
                                    const CancelToken&) {
  std::string stripped = PyStrip(value);
  return CodePointCount(stripped) > 1 && stripped.front() == '"' && stripped.back() == '"';
}

// --- unregistered upstream checkers ------------------------------------------
absl::StatusOr<bool> CheckConstrainedStart(const InstructionArgs& args, absl::string_view value,
                                           const CancelToken& cancel) {
  std::string starter = PyStrip(args.String("starter"));
  ASSIGN_OR_RETURN(Regex regex, CompileUserPattern(R"(^\s*)", starter, ".*$", kMultiline));
  return regex.Search(value, cancel);
}

absl::StatusOr<bool> CheckKeySentences(const InstructionArgs& args, absl::string_view value,
                                       const CancelToken& cancel) {
  ASSIGN_OR_RETURN(auto sentences, SplitSentences(value, cancel));
  std::set<std::string> present(sentences.begin(), sentences.end());
  std::set<std::string> wanted(args.List("key_sentences").begin(),
                               args.List("key_sentences").end());
  int64_t count = 0;
  for (const std::string& sentence : wanted) count += present.count(sentence);
  return count == args.Int("num_sentences");
}

absl::StatusOr<bool> CheckRephrase(const InstructionArgs& args, absl::string_view value,
                                   const CancelToken& cancel) {
  static const Regex& kChange = *new Regex(Regex::MustCompile(R"(\*.*\*)", {}));
  ASSIGN_OR_RETURN(bool has_change, kChange.Search(value, cancel));
  // Upstream raises on a response without a *change*; it cannot follow.
  if (!has_change) return false;
  ASSIGN_OR_RETURN(std::string response, kChange.ReplaceAll(value, ""));
  ASSIGN_OR_RETURN(std::string reference, kChange.ReplaceAll(args.String("original_message"), ""));
  return response == reference;
}

absl::StatusOr<bool> CheckRephraseParagraph(const InstructionArgs& args, absl::string_view value,
                                            const CancelToken& cancel) {
  static const Regex& kWord = *new Regex(Regex::MustCompile(R"(\w+)", {}));
  auto count_words = [&](absl::string_view text)
      -> absl::StatusOr<absl::flat_hash_map<std::string, int64_t>> {
    std::string lowered = PyLower(text);
    ASSIGN_OR_RETURN(auto spans, kWord.FindAll(lowered, cancel));
    absl::flat_hash_map<std::string, int64_t> counts;
    for (const auto& [begin, end] : spans) ++counts[lowered.substr(begin, end - begin)];
    return counts;
  };
  ASSIGN_OR_RETURN(auto response, count_words(value));
  ASSIGN_OR_RETURN(auto original, count_words(args.String("original_paragraph")));
  int64_t similar = 0;
  for (const auto& [word, count] : original) {
    auto it = response.find(word);
    if (it != response.end()) similar += std::min(count, it->second);
  }
  return similar >= args.Int("low") && similar <= args.Int("high");
}

using K = KwargType;

}  // namespace

const std::vector<InstructionType>& AllInstructionTypes() {
  static const auto& kTypes = *new std::vector<InstructionType>{
      {"keywords:existence", "KeywordChecker", true,
       {{"keywords", K::kStringList}}, CheckKeywords},
      {"keywords:frequency", "KeywordFrequencyChecker", true,
       {{"keyword", K::kString}, {"frequency", K::kInt}, {"relation", K::kRelation}},
       CheckKeywordFrequency},
      {"keywords:forbidden_words", "ForbiddenWords", true,
       {{"forbidden_words", K::kStringList}}, CheckForbiddenWords},
      {"keywords:letter_frequency", "LetterFrequencyChecker", true,
       {{"letter", K::kString}, {"let_frequency", K::kInt}, {"let_relation", K::kRelation}},
       CheckLetterFrequency},
      {"language:response_language", "ResponseLanguageChecker", true,
       {{"language", K::kString}}, CheckResponseLanguage},
      {"length_constraints:number_sentences", "NumberOfSentences", true,
       {{"num_sentences", K::kInt}, {"relation", K::kRelation}}, CheckNumberSentences},
      {"length_constraints:number_paragraphs", "ParagraphChecker", true,
       {{"num_paragraphs", K::kInt}}, CheckParagraphs},
      {"length_constraints:number_words", "NumberOfWords", true,
       {{"num_words", K::kInt}, {"relation", K::kRelation}}, CheckNumberWords},
      {"length_constraints:nth_paragraph_first_word", "ParagraphFirstWordCheck", true,
       {{"num_paragraphs", K::kInt}, {"nth_paragraph", K::kInt}, {"first_word", K::kString}},
       CheckNthParagraphFirstWord},
      {"detectable_content:number_placeholders", "PlaceholderChecker", true,
       {{"num_placeholders", K::kInt}}, CheckPlaceholders},
      {"detectable_content:postscript", "PostscriptChecker", true,
       {{"postscript_marker", K::kString}}, CheckPostscript},
      {"detectable_format:number_bullet_lists", "BulletListChecker", true,
       {{"num_bullets", K::kInt}}, CheckBulletLists},
      {"detectable_format:constrained_response", "ConstrainedResponseChecker", true, {},
       CheckConstrainedResponse},
      {"detectable_format:number_highlighted_sections", "HighlightSectionChecker", true,
       {{"num_highlights", K::kInt}}, CheckHighlights},
      {"detectable_format:multiple_sections", "SectionChecker", true,
       {{"section_spliter", K::kString}, {"num_sections", K::kInt}}, CheckSections},
      {"detectable_format:json_format", "JsonFormat", true, {}, CheckJsonFormat},
      {"detectable_format:title", "TitleChecker", true, {}, CheckTitle},
      {"combination:two_responses", "TwoResponsesChecker", true, {}, CheckTwoResponses},
      {"combination:repeat_prompt", "RepeatPromptThenAnswer", true,
       {{"prompt_to_repeat", K::kString}}, CheckRepeatPrompt},
      {"startend:end_checker", "EndChecker", true, {{"end_phrase", K::kString}}, CheckEnd},
      {"change_case:capital_word_frequency", "CapitalWordFrequencyChecker", true,
       {{"capital_frequency", K::kInt}, {"capital_relation", K::kRelation}},
       CheckCapitalWordFrequency},
      {"change_case:english_capital", "CapitalLettersEnglishChecker", true, {},
       CheckEnglishCapital},
      {"change_case:english_lowercase", "LowercaseLettersEnglishChecker", true, {},
       CheckEnglishLowercase},
      {"punctuation:no_comma", "CommaChecker", true, {}, CheckNoComma},
      {"startend:quotation", "QuotationChecker", true, {}, CheckQuotation},
      // Defined upstream but absent from its registry.
      {"multi-turn:constrained_start", "ConstrainedStartChecker", false,
       {{"starter", K::kString}}, CheckConstrainedStart},
      {"keywords:key_sentences", "KeySentenceChecker", false,
       {{"key_sentences", K::kStringList}, {"num_sentences", K::kInt}}, CheckKeySentences},
      {"detectable_format:rephrasing", "RephraseChecker", false,
       {{"original_message", K::kString}}, CheckRephrase},
      {"detectable_content:rephrase_paragraph", "RephraseParagraph", false,
       {{"original_paragraph", K::kString}, {"low", K::kInt}, {"high", K::kInt}},
       CheckRephraseParagraph},
  };
  return kTypes;
}

const InstructionType* FindRegisteredInstruction(absl::string_view id) {
  for (const InstructionType& type : AllInstructionTypes()) {
    if (type.registered && type.id == id) return &type;
  }
  return nullptr;
}

const InstructionType* FindInstructionByClass(absl::string_view class_name) {
  for (const InstructionType& type : AllInstructionTypes()) {
    if (type.class_name == class_name) return &type;
  }
  return nullptr;
}

std::string RegisteredInstructionIds() {
  std::vector<absl::string_view> ids;
  for (const InstructionType& type : AllInstructionTypes()) {
    if (type.registered) ids.push_back(type.id);
  }
  return absl::StrJoin(ids, ", ");
}

absl::StatusOr<Instruction> BuildInstruction(const InstructionType& type, const Json& kwargs,
                                             const JsonPath& path,
                                             const std::optional<std::string>& prompt) {
  static const Json& kEmpty = *new Json(Json::object());
  const Json& object = kwargs.is_null() ? kEmpty : kwargs;
  RETURN_IF_ERROR(ExpectObject(object, path));

  // Keys the instruction does not take are most likely typos; say so rather
  // than score against a guess.
  for (const auto& [key, value] : object.items()) {
    if (value.is_null()) continue;
    bool known = false;
    for (const KwargSpec& spec : type.kwargs) known |= spec.name == key;
    if (!known) {
      std::vector<absl::string_view> names;
      for (const KwargSpec& spec : type.kwargs) names.push_back(spec.name);
      return path.Key(key).Error(absl::StrCat(
          "unknown argument for ", type.id, " (expected ",
          names.empty() ? "none" : absl::StrCat("one of: ", absl::StrJoin(names, ", ")), ")"));
    }
  }

  InstructionArgs args;
  for (const KwargSpec& spec : type.kwargs) {
    const JsonPath where = path.Key(spec.name);
    switch (spec.type) {
      case KwargType::kInt: {
        ASSIGN_OR_RETURN(int64_t value, GetInt(object, spec.name, path));
        if (value < 0) return where.Error(absl::StrCat("must be >= 0, got ", value));
        args.ints.emplace(std::string(spec.name), value);
        break;
      }
      case KwargType::kRelation: {
        ASSIGN_OR_RETURN(std::string value, GetString(object, spec.name, path));
        if (value != kLessThan && value != kAtLeast) {
          return where.Error(absl::StrCat("expected \"less than\" or \"at least\", got \"", value,
                                          "\""));
        }
        args.strings.emplace(std::string(spec.name), std::move(value));
        break;
      }
      case KwargType::kString: {
        absl::StatusOr<std::string> value = GetString(object, spec.name, path);
        if (!value.ok() && spec.name == "prompt_to_repeat" && prompt.has_value() &&
            (!object.contains("prompt_to_repeat") || object["prompt_to_repeat"].is_null())) {
          value = *prompt;
        }
        if (!value.ok()) return value.status();
        args.strings.emplace(std::string(spec.name), *std::move(value));
        break;
      }
      case KwargType::kStringList: {
        ASSIGN_OR_RETURN(const Json* list, GetArray(object, spec.name, path));
        if (list->empty()) return where.Error("expected a non-empty array of strings");
        std::vector<std::string> values;
        for (size_t i = 0; i < list->size(); ++i) {
          const Json& element = (*list)[i];
          if (!element.is_string()) {
            return where.Index(i).Error(
                absl::StrCat("expected a string, got ", JsonTypeName(element)));
          }
          values.push_back(element.get<std::string>());
        }
        args.lists.emplace(std::string(spec.name), std::move(values));
        break;
      }
    }
  }

  // Checks upstream makes when it builds the instruction (where it would
  // otherwise draw a random value).
  auto non_empty = [&](absl::string_view name) -> absl::Status {
    auto it = args.strings.find(name);
    if (it != args.strings.end() && PyStrip(it->second).empty()) {
      return path.Key(name).Error("must not be empty");
    }
    return absl::OkStatus();
  };
  for (absl::string_view name : {"keyword", "language", "prompt_to_repeat", "section_spliter",
                                 "postscript_marker", "end_phrase", "starter"}) {
    RETURN_IF_ERROR(non_empty(name));
  }
  if (auto it = args.strings.find("letter"); it != args.strings.end()) {
    if (CodePointCount(PyStrip(it->second)) != 1) {
      return path.Key("letter").Error(
          absl::StrCat("expected a single letter, got \"", it->second, "\""));
    }
  }
  if (type.id == "length_constraints:nth_paragraph_first_word") {
    int64_t nth = args.Int("nth_paragraph");
    int64_t total = args.Int("num_paragraphs");
    if (nth < 1 || nth > total) {
      return path.Key("nth_paragraph")
          .Error(absl::StrCat("must be between 1 and num_paragraphs (", total, "), got ", nth));
    }
  }
  return Instruction(&type, std::move(args));
}

}  // namespace cascade::verifier::ifeval
