// Agreement with Math-Verify's own test expectations
// (tests/testdata/math_cases.jsonl; source and license in its README).
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include <catch2/catch.hpp>

#include "common/json_util.h"
#include "services/verifier/backends/math/equivalence.h"
#include "services/verifier/backends/math/extract.h"

namespace cascade::verifier::math {
namespace {

// The agreement reached on the 204 cases; a change that loses a case fails.
constexpr int kRequiredAgreement = 204;

StringExtractionConfig ParseStringConfig(const std::string& text) {
  StringExtractionConfig config;
  if (text.find("lowercase=False") != std::string::npos) config.lowercase = false;
  size_t strings = text.find("strings=(");
  if (strings != std::string::npos) {
    config.strings.clear();
    size_t end = text.find(')', strings);
    std::string inner = text.substr(strings + 9, end - strings - 9);
    size_t q = 0;
    while ((q = inner.find('\'', q)) != std::string::npos) {
      size_t close = inner.find('\'', q + 1);
      config.strings.push_back(inner.substr(q + 1, close - q - 1));
      q = close + 1;
    }
  }
  return config;
}

TEST_CASE("math backend agrees with Math-Verify on its test cases") {
  std::ifstream in(std::string(CASCADE_TESTDATA_DIR) + "/math_cases.jsonl");
  REQUIRE(in.good());
  std::string line;
  int total = 0, agreed = 0, line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (std::getenv("MATH_CASES_TRACE")) std::cerr << "case line " << line_number << std::endl;
    if (line.empty()) continue;
    auto parsed = ParseJson(line, "math_cases.jsonl");
    REQUIRE(parsed.ok());
    const Json& c = *parsed;
    const Json& config = c["config"];
    ++total;
    bool ok = false;
    std::string got;
    if (c.contains("expected_parse")) {
      StringExtractionConfig sc = ParseStringConfig(config.value("extraction_config", ""));
      std::vector<std::string> choice = ExtractChoice(c["pred"].get<std::string>(), sc);
      std::vector<std::string> expected = c["expected_parse"].get<std::vector<std::string>>();
      ok = choice == expected;
      got = Json(choice).dump();
    } else {
      ExtractionConfig ec;
      ec.latex = ec.expr = false;
      for (const auto& t : config["match_types"]) {
        if (t == "latex") ec.latex = true;
        if (t == "expr") ec.expr = true;
      }
      ec.boxed_priority = 0;
      MathOptions options;
      options.precision = config.value("precision", 6);
      options.strict = config.value("strict", true);
      options.allow_set_relation_comp = config.value("allow_set_relation_comp", false);
      CancelToken cancel(absl::Now() + absl::Seconds(5));
      auto gold = ExtractAnswer(c["gold"].get<std::string>(), ec, cancel);
      auto pred = ExtractAnswer(c["pred"].get<std::string>(), ec, cancel);
      bool result = false;
      std::string gs, ps;
      if (gold.ok() && pred.ok()) {
        for (auto& e : gold->exprs) gs += ToString(*e) + " ";
        for (auto& e : pred->exprs) ps += ToString(*e) + " ";
        for (auto& s : gold->strings) gs += "'" + s + "' ";
        for (auto& s : pred->strings) ps += "'" + s + "' ";
        if (!gold->empty() && !pred->empty()) {
          auto same = AnswersEquivalent(*gold, *pred, options, cancel);
          result = same.ok() && *same;
        }
      }
      ok = result == c["expected"].get<bool>();
      got = "gold=[" + gs.substr(0, 200) + "] pred=[" + ps.substr(0, 200) + "] -> " +
            (result ? "true" : "false");
    }
    if (ok) {
      ++agreed;
    } else {
      std::cout << "DISAGREE line " << line_number << " (" << c.value("source", "") << "): " << got
                << "\n";
    }
  }
  std::cout << "math_cases agreement: " << agreed << "/" << total << "\n";
  CHECK(total == 204);
  CHECK(agreed >= kRequiredAgreement);
}

}  // namespace
}  // namespace cascade::verifier::math
