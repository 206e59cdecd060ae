// UTF-8 helpers shared by the tokenizer pieces: strict decoding (Unicode
// Table 3-7 well-formed sequences only), the JavaScript notion of
// whitespace that the oracle tokenizers use, and repair of invalid input.
#ifndef CASCADE_TOKENIZER_UTF8_H_
#define CASCADE_TOKENIZER_UTF8_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace cascade::tokenizer {

// Decodes the code point at the start of `text`. Returns the number of bytes
// of a well-formed sequence (1..4) and sets *code_point; returns 0 when the
// bytes there are not well-formed (overlong forms, surrogates, truncation,
// values above U+10FFFF) and then sets *invalid_length to the length of the
// maximal subpart (>= 1) that one U+FFFD replaces under the WHATWG rule.
size_t DecodeUtf8(absl::string_view text, char32_t* code_point,
                  size_t* invalid_length);

// Appends the UTF-8 encoding of `code_point` (must be a scalar value).
void AppendUtf8(char32_t code_point, std::string* out);

// True when every byte sequence in `text` is well-formed UTF-8.
bool IsValidUtf8(absl::string_view text);

// `text` with each maximal invalid subpart replaced by U+FFFD, exactly as
// the WHATWG TextDecoder (and so the JavaScript tokenizers) does.
std::string ReplaceInvalidUtf8(absl::string_view text);

// The characters JavaScript's \s matches (ECMAScript WhiteSpace and
// LineTerminator): ASCII \t\n\v\f\r and space, U+00A0, U+1680,
// U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000 and U+FEFF.
// PCRE2's own \s differs (it takes U+0085 and U+180E, not U+FEFF), which
// is why patterns are rewritten to this set.
bool IsJsWhitespace(char32_t code_point);

// Unicode NFC of valid UTF-8 (utf8proc); invalid input comes back as is.
std::string NormalizeNfc(absl::string_view text);

// The same set as the body of a PCRE2 character class (no brackets).
extern const char kJsWhitespaceClassBody[];

}  // namespace cascade::tokenizer

#endif  // CASCADE_TOKENIZER_UTF8_H_
