#include "services/verifier/backends/swe/search_replace.h"

#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace cascade::verifier {
namespace {

constexpr absl::string_view kSearch = "<<<<<<< SEARCH";
constexpr absl::string_view kDivider = "=======";
constexpr absl::string_view kReplace = ">>>>>>> REPLACE";

absl::Status LineError(size_t line, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", message));
}

// Markers may carry trailing spaces or a "\r"; nothing else.
bool IsMarker(absl::string_view line, absl::string_view marker) {
  return absl::StripTrailingAsciiWhitespace(line) == marker;
}

std::string FirstLine(absl::string_view text) {
  absl::string_view first = text.substr(0, text.find('\n'));
  constexpr size_t kMax = 120;
  if (first.size() > kMax) {
    // Cut at a character boundary: the message ends up in JSON.
    size_t cut = kMax;
    while (cut > 0 && (static_cast<unsigned char>(first[cut]) & 0xC0) == 0x80) --cut;
    return absl::StrCat(first.substr(0, cut), "...");
  }
  return std::string(first);
}

}  // namespace

absl::StatusOr<std::vector<SearchReplaceEdit>> ParseSearchReplace(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  std::vector<SearchReplaceEdit> edits;
  std::optional<std::string> path;
  size_t i = 0;
  while (i < lines.size()) {
    absl::string_view line = lines[i];
    const size_t line_number = i + 1;
    absl::string_view rest = line;
    if (absl::ConsumePrefix(&rest, "### ")) {
      std::string named(absl::StripAsciiWhitespace(rest));
      if (!named.empty()) path = std::move(named);
      ++i;
      continue;
    }
    if (IsMarker(line, kDivider) || !IsMarker(line, kSearch)) {
      // Prose, fences, and a lone "=======" (a Markdown heading underline)
      // are not edits; a REPLACE marker with no SEARCH is a broken block.
      if (IsMarker(line, kReplace)) {
        return LineError(line_number, "\">>>>>>> REPLACE\" without a \"<<<<<<< SEARCH\" before it");
      }
      ++i;
      continue;
    }
    if (!path.has_value()) {
      return LineError(line_number, "SEARCH block without a \"### path/to/file\" line before it");
    }
    SearchReplaceEdit edit;
    edit.path = *path;
    edit.line = line_number;
    std::vector<absl::string_view> search_lines, replace_lines;
    std::vector<absl::string_view>* into = &search_lines;
    bool closed = false;
    for (++i; i < lines.size(); ++i) {
      absl::string_view body = lines[i];
      if (IsMarker(body, kSearch)) {
        return LineError(i + 1, absl::StrCat("\"<<<<<<< SEARCH\" inside the block opened at line ",
                                             line_number));
      }
      if (IsMarker(body, kDivider) && into == &search_lines) {
        into = &replace_lines;
        continue;
      }
      if (IsMarker(body, kReplace)) {
        if (into == &search_lines) {
          return LineError(i + 1, absl::StrCat("\">>>>>>> REPLACE\" before \"=======\" in the "
                                               "block opened at line ",
                                               line_number));
        }
        closed = true;
        ++i;
        break;
      }
      into->push_back(absl::StripSuffix(body, "\r"));
    }
    if (!closed) {
      return LineError(line_number,
                       absl::StrCat("SEARCH block is never closed with \"",
                                    into == &search_lines ? kDivider : kReplace, "\""));
    }
    edit.search = absl::StrJoin(search_lines, "\n");
    edit.replace = absl::StrJoin(replace_lines, "\n");
    edits.push_back(std::move(edit));
  }
  if (edits.empty()) {
    return absl::InvalidArgumentError("no SEARCH/REPLACE blocks found");
  }
  return edits;
}

absl::StatusOr<FileChanges> ApplySearchReplace(const std::vector<SearchReplaceEdit>& edits,
                                               const FileContents& context,
                                               const CancelToken& cancel) {
  FileChanges changes;
  for (const SearchReplaceEdit& edit : edits) {
    RETURN_IF_ERROR(cancel.Check());
    std::string content;
    if (auto it = changes.find(edit.path); it != changes.end()) {
      content = it->second.value_or("");
    } else if (auto it = context.find(edit.path); it != context.end()) {
      content = it->second;
    }
    const std::string where = absl::StrCat(edit.path, ": SEARCH/REPLACE block at line ", edit.line);
    if (edit.search == edit.replace) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": SEARCH and REPLACE are identical"));
    }
    if (edit.search.empty()) {
      if (!content.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": empty SEARCH on a file that is not empty"));
      }
      changes[edit.path] = edit.replace;
      continue;
    }
    // The leading "\n" anchors the SEARCH text at a line start, so its
    // indentation must match too.
    const std::string search = absl::StrCat("\n", edit.search);
    const std::string haystack = absl::StrCat("\n", content);
    if (!absl::StrContains(haystack, search)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": SEARCH text not found in the file (it begins \"",
                       FirstLine(edit.search), "\")"));
    }
    std::string replaced =
        absl::StrReplaceAll(haystack, {{search, absl::StrCat("\n", edit.replace)}});
    changes[edit.path] = replaced.substr(1);
  }
  return changes;
}

}  // namespace cascade::verifier
