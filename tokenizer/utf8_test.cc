#include "tokenizer/utf8.h"

#include <catch2/catch.hpp>

namespace cascade::tokenizer {
namespace {

TEST_CASE("well-formed sequences of every length decode to their code point") {
  char32_t c = 0;
  size_t bad = 0;
  CHECK(DecodeUtf8("A", &c, &bad) == 1);
  CHECK(c == U'A');
  CHECK(DecodeUtf8("\xC3\xA9", &c, &bad) == 2);
  CHECK(c == U'\u00E9');
  CHECK(DecodeUtf8("\xE6\x97\xA5", &c, &bad) == 3);
  CHECK(c == U'\u65E5');
  CHECK(DecodeUtf8("\xF0\x9F\x98\x80", &c, &bad) == 4);
  CHECK(c == U'\U0001F600');
}

TEST_CASE("overlong forms, surrogates and truncated sequences are rejected") {
  char32_t c = 0;
  size_t bad = 0;
  CHECK(DecodeUtf8("\xC0\xAF", &c, &bad) == 0);          // overlong '/'
  CHECK(DecodeUtf8("\xED\xA0\x80", &c, &bad) == 0);      // U+D800
  CHECK(bad == 1);
  CHECK(DecodeUtf8("\xF4\x90\x80\x80", &c, &bad) == 0);  // above U+10FFFF
  CHECK(DecodeUtf8("\xE2\x82", &c, &bad) == 0);          // truncated euro sign
  CHECK(bad == 2);
}

TEST_CASE("invalid bytes are replaced by one U+FFFD per maximal subpart") {
  // The WHATWG examples: a truncated 3-byte sequence is one subpart, a lone
  // continuation byte is one, a surrogate's bytes are three.
  CHECK(ReplaceInvalidUtf8("a\xE2\x82z") == "a\xEF\xBF\xBDz");
  CHECK(ReplaceInvalidUtf8("\x80\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(ReplaceInvalidUtf8("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(ReplaceInvalidUtf8("ok \xC3\xA9") == "ok \xC3\xA9");
  CHECK_FALSE(IsValidUtf8("a\xFF"));
  CHECK(IsValidUtf8("\xF0\x9F\x98\x80 ok"));
}

TEST_CASE("JavaScript whitespace includes the BOM but not NEL or the Mongolian vowel separator") {
  CHECK(IsJsWhitespace(U' '));
  CHECK(IsJsWhitespace(U'\t'));
  CHECK(IsJsWhitespace(U'\u3000'));
  CHECK(IsJsWhitespace(U'\uFEFF'));
  CHECK_FALSE(IsJsWhitespace(U'\u0085'));
  CHECK_FALSE(IsJsWhitespace(U'\u180E'));
  CHECK_FALSE(IsJsWhitespace(U'\u200B'));
}

TEST_CASE("NFC composes a decomposed accent and leaves composed text alone") {
  CHECK(NormalizeNfc("e\xCC\x81") == "\xC3\xA9");
  CHECK(NormalizeNfc("\xC3\xA9") == "\xC3\xA9");
  CHECK(NormalizeNfc("\xE2\x84\xAB") == "\xC3\x85");  // ANGSTROM SIGN -> A WITH RING
}

}  // namespace
}  // namespace cascade::tokenizer
