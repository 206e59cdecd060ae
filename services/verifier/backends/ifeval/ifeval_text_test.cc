#include "services/verifier/backends/ifeval/ifeval_text.h"

#include <catch2/catch.hpp>

#include "services/verifier/backends/ifeval/ifeval_backend.h"
#include "services/verifier/backends/ifeval/ifeval_language.h"

namespace cascade::verifier::ifeval {
namespace {

size_t Sentences(absl::string_view text) {
  CancelToken cancel;
  auto sentences = SplitSentences(text, cancel);
  REQUIRE(sentences.ok());
  return sentences->size();
}

std::vector<std::string> Tokens(absl::string_view text) {
  CancelToken cancel;
  auto tokens = WordTokenize(text, cancel);
  REQUIRE(tokens.ok());
  return *tokens;
}

TEST_CASE("words are runs of Unicode word characters, as the \\w+ tokenizer counts them") {
  CancelToken cancel;
  CHECK(*CountWords("d3sCRi7 lArge lAnguagE M0del w1tH 20 w0RdS.", cancel) == 7);
  CHECK(*CountWords("well-known, don't", cancel) == 4);
  CHECK(*CountWords("naïve café — 東京", cancel) == 3);
  // Python's \w excludes combining marks, so the virama and vowel sign of
  // "namaste" split it as upstream does.
  CHECK(*CountWords("नमस्ते", cancel) == 2);
}

TEST_CASE("sentences end at . ? ! but not at line breaks or abbreviations") {
  CHECK(Sentences("") == 0);
  CHECK(Sentences("One. Two! Three?") == 3);
  CHECK(Sentences("A list\n* first item\n* second item") == 1);
  CHECK(Sentences("Mr. Smith went to Washington. He came back.") == 2);
  CHECK(Sentences("Bring fruit, e.g. apples, and bread etc. to the picnic.") == 1);
  CHECK(Sentences("It rose 5.5 percent in 2019. then it fell.") == 1);
  CHECK(Sentences("It was late. we went home.") == 2);  // punkt breaks; plain ICU does not
  CHECK(Sentences("Hello!World") == 1);
  CHECK(Sentences("He said \"Stop.\" Then he left.") == 2);
}

TEST_CASE("word tokenization splits clitics and punctuation like NLTK's word_tokenize") {
  CHECK(Tokens("DON'T STOP, NOW.") ==
        std::vector<std::string>{"DO", "N'T", "STOP", ",", "NOW", "."});
  CHECK(Tokens("I CANNOT (really) go") ==
        std::vector<std::string>{"I", "CAN", "NOT", "(", "really", ")", "go"});
  CHECK(Tokens("\"Quoted\" WELL-KNOWN") ==
        std::vector<std::string>{"``", "Quoted", "''", "WELL-KNOWN"});
}

TEST_CASE("case predicates follow Python's str.isupper and str.islower") {
  CHECK(PyIsUpper("HELLO, WORLD 123"));
  CHECK_FALSE(PyIsUpper("123 !"));
  CHECK_FALSE(PyIsUpper("HELLO World"));
  CHECK(PyIsUpper("ÉCOLE ΑΒΓ"));
  CHECK(PyIsLower("hello, world ß"));
  CHECK_FALSE(PyIsLower("hello ǅ"));  // a titlecase letter
  CHECK(PyLower("İSTANBUL") == "i̇stanbul");
}

TEST_CASE("strip and split use Python's Unicode whitespace") {
  CHECK(PyStrip("\u3000 text\u00a0\n") == "text");
  CHECK(PySplitWhitespace(" a\tb\u2003c ") == std::vector<std::string>{"a", "b", "c"});
  CHECK(PySplit("a******b******", "******") == std::vector<std::string>{"a", "b", ""});
  CHECK(ToValidUtf8("ok\xff") == "ok\xEF\xBF\xBD");
}

TEST_CASE("regex helpers follow Python's re semantics") {
  CancelToken cancel;
  Regex placeholder = Regex::MustCompile(R"(\[.*?\])", {});
  CHECK(placeholder.FindAll("[a] [b\n] [c]", cancel)->size() == 2);
  Regex bullets = Regex::MustCompile(R"(^\s*\*[^\*].*$)", {false, true, false});
  CHECK(bullets.FindAll("* one\n  * two\n**bold**\ntext * no", cancel)->size() == 2);
  Regex divider = Regex::MustCompile(R"(\s?\*\*\*\s?)", {});
  CHECK(divider.Split("a *** b***c", cancel)->size() == 3);
}

TEST_CASE("loose variants drop the first and last lines and asterisks") {
  std::vector<std::string> variants = LooseResponseVariants("Intro\n*body*\nOutro");
  REQUIRE(variants.size() == 8);
  CHECK(variants[0] == "Intro\n*body*\nOutro");
  CHECK(variants[1] == "Intro\nbody\nOutro");
  CHECK(variants[2] == "*body*\nOutro");
  CHECK(variants[3] == "Intro\n*body*");
  CHECK(variants[4] == "*body*");
  CHECK(variants[7] == "body");
}

TEST_CASE("CLD2 identifies paragraphs and reports ISO 639-1 codes") {
  CHECK(DetectLanguage("The quick brown fox jumps over the lazy dog while the farmer watches "
                       "from the porch.") == "en");
  CHECK(DetectLanguage("El rápido zorro marrón salta sobre el perro perezoso mientras el "
                       "granjero mira desde el porche.") == "es");
  CHECK(DetectLanguage("שלום עולם, מה שלומך היום? אני מקווה שהכל בסדר איתך ועם המשפחה שלך.") ==
        "he");
  CHECK_FALSE(DetectLanguage("12345 !!! ...").has_value());
  CHECK(LanguageMatches("zh", "zh-Hant"));
  CHECK_FALSE(LanguageMatches("en", "es"));
}

}  // namespace
}  // namespace cascade::verifier::ifeval
