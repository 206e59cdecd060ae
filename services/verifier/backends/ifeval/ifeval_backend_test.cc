#include "services/verifier/backends/ifeval/ifeval_backend.h"

#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <string>

#include "services/verifier/backends/ifeval/ifeval_instructions.h"

namespace cascade::verifier {
namespace {

using ifeval::BuildInstruction;
using ifeval::FindInstructionByClass;
using ifeval::FindRegisteredInstruction;

// The judge: IFEval's own unit-test calls (tests/testdata/ifeval_cases.jsonl).
// Checkers that detect a language are tallied apart: upstream uses langdetect,
// this backend CLD2.
constexpr int kMinLanguageAgreement = 7;  // of 7 measured here

bool UsesLanguageDetection(const std::string& class_name) {
  return class_name == "ResponseLanguageChecker" ||
         class_name == "CapitalLettersEnglishChecker" ||
         class_name == "LowercaseLettersEnglishChecker";
}

std::vector<Json> ReadJsonLines(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::vector<Json> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(Json::parse(line));
  }
  return rows;
}

Json ReadJson(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return Json::parse(in);
}

CheckResult MustCheck(const Backend& backend, const Json& item) {
  CancelToken cancel;
  absl::StatusOr<CheckResult> result = backend.Check(item, JsonPath(), cancel);
  INFO(result.status().ToString());
  REQUIRE(result.ok());
  return *result;
}

std::string CheckError(const Json& item) {
  CancelToken cancel;
  absl::StatusOr<CheckResult> result = NewIfEvalBackend()->Check(item, JsonPath(), cancel);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(result.status().message());
}

TEST_CASE("every registry instruction id is served with upstream's class and kwargs") {
  Json registry = ReadJson(std::string(CASCADE_TESTDATA_DIR) + "/ifeval_registry.json");
  REQUIRE(registry.size() == 25);
  for (const Json& entry : registry) {
    const std::string id = entry["instruction_id"].get<std::string>();
    INFO(id);
    const ifeval::InstructionType* type = FindRegisteredInstruction(id);
    REQUIRE(type != nullptr);
    CHECK(type->class_name == entry["class"].get<std::string>());
    REQUIRE(type->kwargs.size() == entry["kwargs"].size());
    for (size_t i = 0; i < type->kwargs.size(); ++i) {
      CHECK(type->kwargs[i].name == entry["kwargs"][i].get<std::string>());
    }
  }
}

TEST_CASE("backend agrees with IFEval's own unit tests") {
  Json registry = ReadJson(std::string(CASCADE_TESTDATA_DIR) + "/ifeval_registry.json");
  std::map<std::string, std::string> id_by_class;
  for (const Json& entry : registry) {
    id_by_class[entry["class"].get<std::string>()] = entry["instruction_id"].get<std::string>();
  }
  auto backend = NewIfEvalBackend();
  int total = 0, agree = 0, language_total = 0, language_agree = 0;
  std::vector<std::string> disagreements;
  for (const Json& row : ReadJsonLines(std::string(CASCADE_TESTDATA_DIR) + "/ifeval_cases.jsonl")) {
    const std::string class_name = row["class"].get<std::string>();
    const bool expected = row["expected"].get<bool>();
    bool strict = false;
    if (auto it = id_by_class.find(class_name); it != id_by_class.end()) {
      // Registered checkers go through the backend, as a user's item would.
      Json item = {{"response", row["response"]},
                   {"instruction_id_list", {it->second}},
                   {"kwargs", Json::array({row["kwargs"]})}};
      strict = MustCheck(*backend, item).details["instructions"][0]["strict"].get<bool>();
    } else {
      const ifeval::InstructionType* type = FindInstructionByClass(class_name);
      INFO(class_name);
      REQUIRE(type != nullptr);
      auto instruction = BuildInstruction(*type, row["kwargs"], JsonPath(), std::nullopt);
      INFO(instruction.status().ToString());
      REQUIRE(instruction.ok());
      CancelToken cancel;
      auto verdict = ifeval::ScoreInstruction(*instruction, row["response"].get<std::string>(),
                                              cancel);
      REQUIRE(verdict.ok());
      strict = verdict->strict;
    }
    const bool agrees = strict == expected;
    if (UsesLanguageDetection(class_name)) {
      ++language_total;
      language_agree += agrees;
    } else {
      ++total;
      agree += agrees;
    }
    if (!agrees) disagreements.push_back(class_name + ": " + row["response"].dump());
  }
  printf("ifeval judge: %d/%d agree outside language detection, %d/%d with it\n", agree, total,
         language_agree, language_total);
  for (const std::string& line : disagreements) printf("  disagrees: %s\n", line.c_str());
  CHECK(total + language_total == 94);
  CHECK(agree == total);
  CHECK(language_agree >= kMinLanguageAgreement);
}

TEST_CASE("loose scoring forgives a preamble line that strict scoring does not") {
  auto backend = NewIfEvalBackend();
  Json item = {{"response", "Sure, here it is:\n\"The whole answer, quoted.\""},
               {"instruction_id_list", {"startend:quotation"}},
               {"kwargs", {Json::object()}}};
  CheckResult strict = MustCheck(*backend, item);
  CHECK(strict.reward == 0.0);
  CHECK(strict.verdict == "incorrect");
  CHECK(strict.details["strict_all"] == false);
  CHECK(strict.details["loose_all"] == true);
  CHECK(strict.details["scoring"] == "strict");

  item["options"] = {{"scoring", "loose"}};
  CheckResult loose = MustCheck(*backend, item);
  CHECK(loose.reward == 1.0);
  CHECK(loose.verdict == "correct");
}

TEST_CASE("loose scoring removes markdown asterisks and trailing lines") {
  auto backend = NewIfEvalBackend();
  Json item = {{"response", "**{\"answer\": 42}**"},
               {"instruction_id_list", {"detectable_format:json_format", "startend:end_checker"}},
               {"kwargs", {nullptr, {{"end_phrase", "Any other questions?"}}}}};
  item["response"] = "```json\n{\"answer\": 42}\n```";
  CheckResult fenced = MustCheck(*backend, item);
  CHECK(fenced.details["instructions"][0]["strict"] == true);
  CHECK(fenced.details["instructions"][1]["strict"] == false);

  item["response"] = "**{\"answer\": 42}** Any other questions?\nHope this helps.";
  CheckResult result = MustCheck(*backend, item);
  CHECK(result.details["instructions"][0]["strict"] == false);
  CHECK(result.details["instructions"][1]["strict"] == false);
  CHECK(result.details["instructions"][1]["loose"] == true);
  CHECK(result.details["loose_all"] == false);  // the JSON still has trailing words
  CHECK(result.reward == 0.0);
}

TEST_CASE("every instruction must pass for the reward") {
  auto backend = NewIfEvalBackend();
  Json item = {{"response", "no commas here at all"},
               {"instruction_id_list", {"punctuation:no_comma", "change_case:english_capital"}},
               {"kwargs", {Json::object(), Json::object()}}};
  CheckResult result = MustCheck(*backend, item);
  CHECK(result.details["instructions"][0]["strict"] == true);
  CHECK(result.details["instructions"][1]["strict"] == false);
  CHECK(result.reward == 0.0);
  item["instruction_id_list"][1] = "change_case:english_lowercase";
  CHECK(MustCheck(*backend, item).reward == 1.0);
}

TEST_CASE("a blank response follows no instruction, as upstream scores it") {
  Json item = {{"response", "  \n "},
               {"instruction_id_list", {"punctuation:no_comma"}},
               {"kwargs", {Json::object()}}};
  CheckResult result = MustCheck(*NewIfEvalBackend(), item);
  CHECK(result.details["instructions"][0]["strict"] == false);
  CHECK(result.details["instructions"][0]["loose"] == false);
}

TEST_CASE("repeat_prompt takes the item's prompt when kwargs lack prompt_to_repeat") {
  Json item = {{"response", "Write a poem about cats. Here it is: cats nap."},
               {"prompt", "Write a poem about cats."},
               {"instruction_id_list", {"combination:repeat_prompt"}},
               {"kwargs", {Json::object()}}};
  CHECK(MustCheck(*NewIfEvalBackend(), item).reward == 1.0);
  item["prompt"] = "Write an essay.";
  CHECK(MustCheck(*NewIfEvalBackend(), item).reward == 0.0);
  item.erase("prompt");
  CHECK(CheckError(item) == "kwargs[0].prompt_to_repeat: required field is missing");
}

TEST_CASE("a kwarg of the wrong type is an error naming its JSON path") {
  Json item = {{"response", "one two three"},
               {"instruction_id_list", {"punctuation:no_comma", "length_constraints:number_words"}},
               {"kwargs", {nullptr, {{"num_words", "10"}, {"relation", "at least"}}}}};
  CHECK(CheckError(item) == "kwargs[1].num_words: expected an integer, got string");

  item["kwargs"][1] = {{"num_words", 10}, {"relation", "more than"}};
  CHECK(CheckError(item) ==
        "kwargs[1].relation: expected \"less than\" or \"at least\", got \"more than\"");

  item["kwargs"][1] = {{"num_words", 10}};
  CHECK(CheckError(item) == "kwargs[1].relation: required field is missing");

  item["kwargs"][1] = {{"num_words", 10}, {"relation", "at least"}, {"num_word", 3}};
  CHECK(CheckError(item) ==
        "kwargs[1].num_word: unknown argument for length_constraints:number_words "
        "(expected one of: num_words, relation)");

  item["kwargs"][1] = {{"num_words", -1}, {"relation", "at least"}};
  CHECK(CheckError(item) == "kwargs[1].num_words: must be >= 0, got -1");

  // Null-valued keys are absent, as upstream drops falsy kwargs.
  item["kwargs"][1] = {{"num_words", 3}, {"relation", "at least"}, {"keywords", nullptr}};
  CHECK(MustCheck(*NewIfEvalBackend(), item).reward == 1.0);

  item["kwargs"] = {nullptr};
  CHECK(CheckError(item) == "kwargs: expected 2 entries (one per instruction_id_list entry), got 1");
}

TEST_CASE("list and letter kwargs are checked element by element") {
  Json item = {{"response", "text"},
               {"instruction_id_list", {"keywords:existence"}},
               {"kwargs", {{{"keywords", {"cat", 7}}}}}};
  CHECK(CheckError(item) == "kwargs[0].keywords[1]: expected a string, got number");
  item["kwargs"][0] = {{"keywords", "cat"}};
  CHECK(CheckError(item) == "kwargs[0].keywords: expected an array, got string");
  item["instruction_id_list"][0] = "keywords:letter_frequency";
  item["kwargs"][0] = {{"letter", "ab"}, {"let_frequency", 2}, {"let_relation", "at least"}};
  CHECK(CheckError(item) == "kwargs[0].letter: expected a single letter, got \"ab\"");
}

TEST_CASE("an unknown instruction id is an error listing the known ones") {
  Json item = {{"response", "text"},
               {"instruction_id_list", {"keywords:include_keywords"}},
               {"kwargs", {Json::object()}}};
  std::string message = CheckError(item);
  CHECK(message.rfind("instruction_id_list[0]: unknown instruction \"keywords:include_keywords\" "
                      "(expected one of: keywords:existence, ",
                      0) == 0);
}

TEST_CASE("a malformed item is an error naming the field") {
  CHECK(CheckError({{"instruction_id_list", {"punctuation:no_comma"}}}) ==
        "response: required field is missing");
  CHECK(CheckError({{"response", "x"}, {"instruction_id_list", Json::array()}}) ==
        "instruction_id_list: must list at least one instruction");
  CHECK(CheckError({{"response", "x"},
                    {"instruction_id_list", {"punctuation:no_comma"}},
                    {"options", {{"scoring", "lenient"}}}}) ==
        "options.scoring: expected \"strict\" or \"loose\", got \"lenient\"");
}

TEST_CASE("an expired cancel token stops the check with DEADLINE_EXCEEDED") {
  Json item = {{"response", "A sentence. Another one."},
               {"instruction_id_list", {"length_constraints:number_sentences"}},
               {"kwargs", {{{"num_sentences", 2}, {"relation", "at least"}}}}};
  CancelToken cancel;
  cancel.Cancel();
  auto result = NewIfEvalBackend()->Check(item, JsonPath(), cancel);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace cascade::verifier
