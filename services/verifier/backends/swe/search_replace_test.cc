#include "services/verifier/backends/swe/search_replace.h"

#include <string>

#include "absl/strings/match.h"
#include "catch2/catch.hpp"

namespace cascade::verifier {
namespace {

const char kFileA[] = "def add(a, b):\n    return a + b\n\ndef subtract(a, b):\n    return a - b";
const char kFileB[] = "def sort_list(lst):\n    return sorted(lst)";

FileContents Context() { return {{"a.py", kFileA}, {"b.py", kFileB}}; }

TEST_CASE("fenced blocks for several files parse in order") {
  const char text[] = R"(Here is the fix.

```python
### a.py
<<<<<<< SEARCH
def add(a, b):
=======
def add(a: int, b: int) -> int:
>>>>>>> REPLACE
```

```python
### b.py
<<<<<<< SEARCH
def sort_list(lst):
    return sorted(lst)
=======
def sort_list(lst: list[int]) -> list[int]:
    return sorted(lst)
>>>>>>> REPLACE
```
)";
  absl::StatusOr<std::vector<SearchReplaceEdit>> edits = ParseSearchReplace(text);
  REQUIRE(edits.ok());
  REQUIRE(edits->size() == 2);
  CHECK((*edits)[0].path == "a.py");
  CHECK((*edits)[0].search == "def add(a, b):");
  CHECK((*edits)[0].replace == "def add(a: int, b: int) -> int:");
  CHECK((*edits)[0].line == 5);
  CHECK((*edits)[1].path == "b.py");
  CHECK((*edits)[1].search == "def sort_list(lst):\n    return sorted(lst)");

  CancelToken cancel;
  absl::StatusOr<FileChanges> changes = ApplySearchReplace(*edits, Context(), cancel);
  REQUIRE(changes.ok());
  CHECK(changes->at("a.py") ==
        "def add(a: int, b: int) -> int:\n    return a + b\n\ndef subtract(a, b):\n"
        "    return a - b");
  CHECK(changes->at("b.py") ==
        "def sort_list(lst: list[int]) -> list[int]:\n    return sorted(lst)");
}

TEST_CASE("blocks without fences and several blocks under one path apply in sequence") {
  const char text[] =
      "### a.py\n"
      "<<<<<<< SEARCH\n    return a + b\n=======\n    return b + a\n>>>>>>> REPLACE\n"
      "<<<<<<< SEARCH\n    return b + a\n=======\n    return sum((a, b))\n>>>>>>> REPLACE\n";
  absl::StatusOr<std::vector<SearchReplaceEdit>> edits = ParseSearchReplace(text);
  REQUIRE(edits.ok());
  REQUIRE(edits->size() == 2);
  CHECK((*edits)[1].path == "a.py");
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes = ApplySearchReplace(*edits, Context(), cancel);
  REQUIRE(changes.ok());
  CHECK(absl::StrContains(changes->at("a.py").value(), "    return sum((a, b))\n"));
}

TEST_CASE("a SEARCH text must match at a line start, indentation included") {
  const char text[] =
      "### a.py\n<<<<<<< SEARCH\nreturn a + b\n=======\nreturn a - b\n>>>>>>> REPLACE\n";
  absl::StatusOr<std::vector<SearchReplaceEdit>> edits = ParseSearchReplace(text);
  REQUIRE(edits.ok());
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes = ApplySearchReplace(*edits, Context(), cancel);
  REQUIRE_FALSE(changes.ok());
  CHECK(absl::StrContains(changes.status().message(),
                          "a.py: SEARCH/REPLACE block at line 2: SEARCH text not found"));
}

TEST_CASE("an empty SEARCH creates a new file") {
  const char text[] = "### c.py\n<<<<<<< SEARCH\n=======\nprint(\"hello\")\n>>>>>>> REPLACE\n";
  absl::StatusOr<std::vector<SearchReplaceEdit>> edits = ParseSearchReplace(text);
  REQUIRE(edits.ok());
  CHECK((*edits)[0].search.empty());
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes = ApplySearchReplace(*edits, Context(), cancel);
  REQUIRE(changes.ok());
  CHECK(changes->at("c.py") == "print(\"hello\")");
  // On a file with content, an empty SEARCH has no place to go.
  const char existing[] = "### a.py\n<<<<<<< SEARCH\n=======\nx = 1\n>>>>>>> REPLACE\n";
  CHECK_FALSE(ApplySearchReplace(*ParseSearchReplace(existing), Context(), cancel).ok());
}

TEST_CASE("identical SEARCH and REPLACE is a format error") {
  const char text[] =
      "### b.py\n<<<<<<< SEARCH\ndef sort_list(lst):\n=======\ndef sort_list(lst):\n"
      ">>>>>>> REPLACE\n";
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes =
      ApplySearchReplace(*ParseSearchReplace(text), Context(), cancel);
  REQUIRE_FALSE(changes.ok());
  CHECK(absl::StrContains(changes.status().message(), "identical"));
}

TEST_CASE("broken blocks are parse errors naming the line") {
  // No divider before the end marker.
  absl::StatusOr<std::vector<SearchReplaceEdit>> no_divider =
      ParseSearchReplace("### a.py\n<<<<<<< SEARCH\nx\n>>>>>>> REPLACE\n");
  REQUIRE_FALSE(no_divider.ok());
  CHECK(absl::StrContains(no_divider.status().message(), "line 4:"));
  // Never closed (SWE-RL's failed-parse example).
  absl::StatusOr<std::vector<SearchReplaceEdit>> unclosed = ParseSearchReplace(
      "```\n### a.py\n<<<<<<< SEARCH\nreturn a + b\n=======\nreturn a - b\n```\n");
  REQUIRE_FALSE(unclosed.ok());
  CHECK(absl::StrContains(unclosed.status().message(), "never closed"));
  // No path line.
  absl::StatusOr<std::vector<SearchReplaceEdit>> no_path =
      ParseSearchReplace("<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n");
  REQUIRE_FALSE(no_path.ok());
  CHECK(absl::StrContains(no_path.status().message(), "### path"));
  // A stray end marker.
  CHECK_FALSE(ParseSearchReplace("### a.py\n>>>>>>> REPLACE\n").ok());
  // Nothing at all.
  absl::StatusOr<std::vector<SearchReplaceEdit>> none = ParseSearchReplace("I would change add().");
  REQUIRE_FALSE(none.ok());
  CHECK(absl::StrContains(none.status().message(), "no SEARCH/REPLACE blocks"));
}

TEST_CASE("every occurrence of a SEARCH text is replaced, as in SWE-RL") {
  FileContents context = {{"m.py", "x = 1\ny = 2\nx = 1\n"}};
  const char text[] = "### m.py\n<<<<<<< SEARCH\nx = 1\n=======\nx = 3\n>>>>>>> REPLACE\n";
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes =
      ApplySearchReplace(*ParseSearchReplace(text), context, cancel);
  REQUIRE(changes.ok());
  CHECK(changes->at("m.py") == "x = 3\ny = 2\nx = 3\n");
}

TEST_CASE("a long SEARCH line is quoted in the error without splitting a character") {
  std::string search(119, 'x');
  search += "\u00e9\u00e9\u00e9";  // the 120th byte falls inside a two-byte character
  const std::string text =
      "### a.py\n<<<<<<< SEARCH\n" + search + "\n=======\ny\n>>>>>>> REPLACE\n";
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes =
      ApplySearchReplace(*ParseSearchReplace(text), Context(), cancel);
  REQUIRE_FALSE(changes.ok());
  const std::string message(changes.status().message());
  CHECK(absl::StrContains(message, std::string(119, 'x') + "...\")"));
}

TEST_CASE("CRLF markers are accepted") {
  absl::StatusOr<std::vector<SearchReplaceEdit>> edits = ParseSearchReplace(
      "### b.py\r\n<<<<<<< SEARCH\r\n    return sorted(lst)\r\n=======\r\n"
      "    return sorted(lst, reverse=True)\r\n>>>>>>> REPLACE\r\n");
  REQUIRE(edits.ok());
  CHECK((*edits)[0].path == "b.py");
  CHECK((*edits)[0].search == "    return sorted(lst)");
}

}  // namespace
}  // namespace cascade::verifier
