#include "services/verifier/backends/swe/unified_diff.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace cascade::verifier {
namespace {

constexpr absl::string_view kNoNewline = "\\ No newline at end of file";

absl::Status LineError(size_t line, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", message));
}

// Lines of the patch text, without their "\n" (and without a trailing "\r",
// so CRLF patches parse too; body lines keep theirs, see ParseHunkBody).
std::vector<absl::string_view> SplitPatchLines(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

absl::string_view StripCr(absl::string_view line) {
  absl::ConsumeSuffix(&line, "\r");
  return line;
}

// Undoes git's C-style quoting of unusual paths ("a/caf\303\251.py").
std::string Unquote(absl::string_view quoted) {
  std::string out;
  for (size_t i = 1; i + 1 < quoted.size(); ++i) {
    char c = quoted[i];
    if (c != '\\' || i + 2 >= quoted.size()) {
      out += c;
      continue;
    }
    char e = quoted[++i];
    if (e >= '0' && e <= '7' && i + 2 < quoted.size()) {
      int value = (e - '0') * 64 + (quoted[i + 1] - '0') * 8 + (quoted[i + 2] - '0');
      out += static_cast<char>(value);
      i += 2;
      continue;
    }
    switch (e) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'v':
        out += '\v';
        break;
      default:
        out += e;
        break;
    }
  }
  return out;
}

// The path of a "---"/"+++" line: timestamp (after a tab) dropped, quotes
// undone, the a/ or b/ prefix stripped, "" for /dev/null.
std::string HeaderPath(absl::string_view raw, absl::string_view prefix) {
  raw = StripCr(raw);
  if (size_t tab = raw.find('\t'); tab != absl::string_view::npos) raw = raw.substr(0, tab);
  raw = absl::StripTrailingAsciiWhitespace(raw);
  std::string path = (raw.size() >= 2 && raw.front() == '"' && raw.back() == '"')
                         ? Unquote(raw)
                         : std::string(raw);
  if (path == "/dev/null") return "";
  if (absl::StartsWith(path, prefix)) path.erase(0, prefix.size());
  return path;
}

// Best-effort paths of "diff --git a/X b/Y", used when no ---/+++ pair
// follows (pure renames, mode changes, binary files, empty new files).
std::pair<std::string, std::string> GitHeaderPaths(absl::string_view rest) {
  rest = absl::StripAsciiWhitespace(StripCr(rest));
  // Same name on both sides: "a/X b/X", split in the middle.
  if (rest.size() % 2 == 1) {
    const size_t half = rest.size() / 2;
    absl::string_view left = rest.substr(0, half), right = rest.substr(half + 1);
    if (rest[half] == ' ' && absl::StartsWith(left, "a/") && absl::StartsWith(right, "b/") &&
        left.substr(2) == right.substr(2)) {
      return {std::string(left.substr(2)), std::string(right.substr(2))};
    }
  }
  if (size_t split = rest.find(" b/"); split != absl::string_view::npos) {
    return {HeaderPath(rest.substr(0, split), "a/"), HeaderPath(rest.substr(split + 1), "b/")};
  }
  return {"", ""};
}

// Parses "-a,b +c,d @@ section" (after the leading "@@ "). Counts default to
// 1 when omitted, as in GNU diff's output for one-line ranges.
bool ParseRange(absl::string_view text, size_t* start, size_t* count) {
  std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(text, ',');
  uint64_t s = 0, c = 1;
  if (!absl::SimpleAtoi(parts.first, &s)) return false;
  if (text.find(',') != absl::string_view::npos && !absl::SimpleAtoi(parts.second, &c)) {
    return false;
  }
  *start = s;
  *count = c;
  return true;
}

absl::StatusOr<Hunk> ParseHunkHeader(absl::string_view line, size_t line_number) {
  absl::string_view rest = StripCr(line);
  auto malformed = [&]() {
    return LineError(line_number,
                     absl::StrCat("malformed hunk header \"", line,
                                  "\" (expected \"@@ -start,count +start,count @@\")"));
  };
  if (!absl::ConsumePrefix(&rest, "@@ -")) return malformed();
  size_t space = rest.find(" +");
  if (space == absl::string_view::npos) return malformed();
  absl::string_view old_range = rest.substr(0, space);
  rest.remove_prefix(space + 2);
  size_t close = rest.find(" @@");
  if (close == absl::string_view::npos) return malformed();
  absl::string_view new_range = rest.substr(0, close);
  rest.remove_prefix(close + 3);
  absl::ConsumePrefix(&rest, " ");
  Hunk hunk;
  if (!ParseRange(old_range, &hunk.old_start, &hunk.old_count) ||
      !ParseRange(new_range, &hunk.new_start, &hunk.new_count)) {
    return malformed();
  }
  hunk.section = std::string(rest);
  hunk.patch_line = line_number;
  return hunk;
}

bool IsFileHeaderAt(const std::vector<absl::string_view>& lines, size_t i) {
  return i + 1 < lines.size() && absl::StartsWith(lines[i], "--- ") &&
         absl::StartsWith(lines[i + 1], "+++ ");
}

// Reads the body of `hunk`, starting at lines[*i]; leaves *i on the first
// line after it.
absl::Status ParseHunkBody(const std::vector<absl::string_view>& lines, size_t* i, Hunk& hunk) {
  size_t old_seen = 0, new_seen = 0;
  auto counts = [&]() {
    return absl::StrCat("the header at line ", hunk.patch_line, " declares ", hunk.old_count,
                        " old and ", hunk.new_count, " new lines, the body has ", old_seen, " and ",
                        new_seen);
  };
  auto attach_marker = [&](size_t line_number) -> absl::Status {
    if (hunk.lines.empty()) {
      return LineError(line_number, "\"\\ No newline at end of file\" before any hunk line");
    }
    hunk.lines.back().no_newline = true;
    return absl::OkStatus();
  };
  while (old_seen < hunk.old_count || new_seen < hunk.new_count) {
    const size_t line_number = *i + 1;
    if (*i >= lines.size()) {
      return LineError(line_number, absl::StrCat("patch ends inside a hunk: ", counts()));
    }
    absl::string_view line = lines[*i];
    char kind = line.empty() || line == "\r" ? ' ' : line[0];
    if (kind == '\\') {
      RETURN_IF_ERROR(attach_marker(line_number));
      ++*i;
      continue;
    }
    if (kind != ' ' && kind != '-' && kind != '+') {
      return LineError(line_number, absl::StrCat("hunk line count mismatch, \"", line,
                                                 "\" is not a hunk line: ", counts()));
    }
    if (kind != '+') ++old_seen;
    if (kind != '-') ++new_seen;
    if (old_seen > hunk.old_count || new_seen > hunk.new_count) {
      return LineError(line_number, absl::StrCat("hunk line count mismatch: ", counts()));
    }
    HunkLine hunk_line;
    hunk_line.kind = kind;
    hunk_line.text = line.empty() || line == "\r" ? "" : std::string(line.substr(1));
    // A CRLF patch of LF files leaves "\r" on every line; the marker-free
    // content is what the files hold in the common case.
    if (absl::EndsWith(hunk_line.text, "\r")) hunk_line.text.pop_back();
    hunk.lines.push_back(std::move(hunk_line));
    ++*i;
  }
  if (*i < lines.size() && absl::StartsWith(lines[*i], "\\")) {
    RETURN_IF_ERROR(attach_marker(*i + 1));
    ++*i;
  }
  // A body longer than declared: the next line still looks like hunk content.
  // ("-- " alone is the signature separator of `git format-patch`.)
  if (*i < lines.size() && !IsFileHeaderAt(lines, *i) && StripCr(lines[*i]) != "-- ") {
    absl::string_view next = lines[*i];
    if (!next.empty() && (next[0] == '+' || next[0] == '-' ||
                          (next[0] == ' ' && !absl::StripAsciiWhitespace(next).empty()))) {
      return LineError(*i + 1, absl::StrCat("hunk line count mismatch, the hunk goes on past "
                                            "its declared length: ",
                                            counts()));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateFile(const FilePatch& file) {
  for (const Hunk& hunk : file.hunks) {
    if (file.is_new_file && hunk.old_count != 0) {
      return LineError(hunk.patch_line, absl::StrCat("the hunk of new file ", file.new_path,
                                                     " has old lines (expected \"@@ -0,0 ...\")"));
    }
    if (file.is_deleted_file && hunk.new_count != 0) {
      return LineError(hunk.patch_line, absl::StrCat("the hunk of deleted file ", file.old_path,
                                                     " has new lines (expected \"... +0,0 @@\")"));
    }
  }
  if (file.path().empty()) {
    return LineError(file.patch_line, "file header names no path");
  }
  return absl::OkStatus();
}

// A file's text as lines plus whether the last one ends in "\n".
struct Lines {
  std::vector<std::string> lines;
  bool final_newline = true;
};

Lines ToLines(absl::string_view content) {
  Lines out;
  if (content.empty()) return out;
  out.lines = absl::StrSplit(content, '\n');
  if (out.lines.back().empty()) {
    out.lines.pop_back();
  } else {
    out.final_newline = false;
  }
  return out;
}

std::string FromLines(const Lines& in) {
  std::string out = absl::StrJoin(in.lines, "\n");
  if (!in.lines.empty() && in.final_newline) out += '\n';
  return out;
}

std::string Quote(absl::string_view line) {
  constexpr size_t kMax = 120;
  if (line.size() <= kMax) return absl::StrCat("\"", line, "\"");
  // Cut at a character boundary: the message ends up in JSON, which must
  // stay valid UTF-8.
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat("\"", line.substr(0, cut), "...\"");
}

// Places one hunk on `file`, whose lines before `cursor` are already final.
// Returns the index where the hunk's old side starts.
absl::StatusOr<size_t> LocateHunk(const Lines& file, const Hunk& hunk,
                                  const std::vector<const HunkLine*>& old_side, size_t cursor,
                                  long offset, absl::string_view path, size_t hunk_number) {
  const size_t n = file.lines.size();
  const size_t len = old_side.size();
  const bool needs_eof = !old_side.empty() && old_side.back()->no_newline;
  auto matches = [&](size_t pos) {
    if (pos < cursor || pos + len > n) return false;
    for (size_t k = 0; k < len; ++k) {
      if (file.lines[pos + k] != old_side[k]->text) return false;
    }
    return !needs_eof || (pos + len == n && !file.final_newline);
  };
  long expected = static_cast<long>(hunk.old_count == 0 ? hunk.old_start : hunk.old_start - 1);
  if (hunk.old_start == 0) expected = 0;
  expected += offset;
  expected = std::clamp<long>(expected, static_cast<long>(cursor), static_cast<long>(n));
  if (len == 0) return static_cast<size_t>(expected);
  for (long d = 0; d <= static_cast<long>(n); ++d) {
    if (expected + d <= static_cast<long>(n) && matches(expected + d)) return expected + d;
    if (d > 0 && expected - d >= static_cast<long>(cursor) && matches(expected - d)) {
      return expected - d;
    }
  }
  // Explain the failure at the place the header names.
  std::string why;
  const size_t pos = static_cast<size_t>(expected);
  for (size_t k = 0; k < len && why.empty(); ++k) {
    if (pos + k >= n) {
      why = absl::StrCat("the file has only ", n, " lines but the hunk expects ",
                         Quote(old_side[k]->text), " at line ", pos + k + 1);
    } else if (file.lines[pos + k] != old_side[k]->text) {
      why = absl::StrCat("line ", pos + k + 1, " of the file is ", Quote(file.lines[pos + k]),
                         ", the hunk expects ", Quote(old_side[k]->text));
    }
  }
  if (why.empty()) why = "the hunk expects the file to end without a newline";
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": hunk #", hunk_number, " (patch line ", hunk.patch_line,
                   ") does not apply anywhere in the file; at its stated position ", why));
}

absl::StatusOr<std::string> ApplyHunks(const FilePatch& file, absl::string_view content,
                                       absl::string_view path, const CancelToken& cancel) {
  Lines in = ToLines(content);
  Lines out;
  out.final_newline = in.final_newline;
  size_t cursor = 0;
  long offset = 0;
  for (size_t h = 0; h < file.hunks.size(); ++h) {
    RETURN_IF_ERROR(cancel.Check());
    const Hunk& hunk = file.hunks[h];
    std::vector<const HunkLine*> old_side, new_side;
    for (const HunkLine& line : hunk.lines) {
      if (line.kind != '+') old_side.push_back(&line);
      if (line.kind != '-') new_side.push_back(&line);
    }
    ASSIGN_OR_RETURN(size_t pos, LocateHunk(in, hunk, old_side, cursor, offset, path, h + 1));
    const long stated =
        static_cast<long>(hunk.old_count == 0 ? hunk.old_start : hunk.old_start - 1);
    offset = static_cast<long>(pos) - std::max<long>(stated, 0);
    out.lines.insert(out.lines.end(), in.lines.begin() + cursor, in.lines.begin() + pos);
    for (const HunkLine* line : new_side) out.lines.push_back(line->text);
    cursor = pos + old_side.size();
    if (cursor == in.lines.size()) {
      // The hunk reaches the end of the file, so it decides the final newline.
      out.final_newline = new_side.empty() || !new_side.back()->no_newline;
    }
  }
  out.lines.insert(out.lines.end(), in.lines.begin() + cursor, in.lines.end());
  if (cursor < in.lines.size()) out.final_newline = in.final_newline;
  return FromLines(out);
}

void AppendHunkText(const Hunk& hunk, std::string* out) {
  absl::StrAppend(out, "@@ -", hunk.old_start, ",", hunk.old_count, " +", hunk.new_start, ",",
                  hunk.new_count, " @@", hunk.section.empty() ? "" : " ", hunk.section, "\n");
  for (const HunkLine& line : hunk.lines) {
    absl::StrAppend(out, std::string(1, line.kind), line.text, "\n");
    if (line.no_newline) absl::StrAppend(out, kNoNewline, "\n");
  }
}

// Python's str.strip() for the ASCII whitespace that can occur here.
absl::string_view PyStrip(absl::string_view text) {
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
           (c >= 0x1c && c <= 0x1f);
  };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace

bool FilePatch::HasEffect() const {
  if (is_new_file || is_deleted_file || is_binary) return true;
  if (is_rename && old_path != new_path) return true;
  for (const Hunk& hunk : hunks) {
    std::vector<std::pair<std::string, bool>> old_side, new_side;
    for (const HunkLine& line : hunk.lines) {
      if (line.kind != '+') old_side.emplace_back(line.text, line.no_newline);
      if (line.kind != '-') new_side.emplace_back(line.text, line.no_newline);
    }
    if (old_side != new_side) return true;
  }
  return false;
}

absl::StatusOr<Patch> ParseUnifiedDiff(absl::string_view text) {
  const std::vector<absl::string_view> lines = SplitPatchLines(text);
  Patch patch;
  // The section that extended git header lines and a first ---/+++ pair
  // still belong to: a "diff --git" section with no ---/+++ and no hunk yet.
  bool open_git_header = false;
  size_t i = 0;
  while (i < lines.size()) {
    const absl::string_view line = StripCr(lines[i]);
    const size_t line_number = i + 1;
    if (absl::StartsWith(line, "diff --git ")) {
      FilePatch file;
      file.patch_line = line_number;
      std::tie(file.old_path, file.new_path) = GitHeaderPaths(line.substr(11));
      patch.files.push_back(std::move(file));
      open_git_header = true;
      ++i;
      continue;
    }
    if (IsFileHeaderAt(lines, i)) {
      if (!open_git_header) {
        FilePatch file;
        file.patch_line = line_number;
        patch.files.push_back(std::move(file));
      }
      FilePatch& file = patch.files.back();
      std::string old_path = HeaderPath(line.substr(4), "a/");
      std::string new_path = HeaderPath(lines[i + 1].substr(4), "b/");
      if (old_path.empty()) file.is_new_file = true;
      if (new_path.empty()) file.is_deleted_file = true;
      if (file.is_new_file && file.is_deleted_file) {
        return LineError(line_number, "both sides of the file header are /dev/null");
      }
      // A rename's own lines name the paths; ---/+++ then agree with them.
      if (!file.is_rename || file.old_path.empty()) file.old_path = old_path;
      if (!file.is_rename || file.new_path.empty()) file.new_path = new_path;
      open_git_header = false;
      i += 2;
      continue;
    }
    if (absl::StartsWith(line, "@@ ")) {
      if (patch.files.empty()) {
        return LineError(line_number, "hunk before any file header (--- / +++ lines)");
      }
      ASSIGN_OR_RETURN(Hunk hunk, ParseHunkHeader(line, line_number));
      ++i;
      RETURN_IF_ERROR(ParseHunkBody(lines, &i, hunk));
      patch.files.back().hunks.push_back(std::move(hunk));
      open_git_header = false;
      continue;
    }
    if (open_git_header) {
      FilePatch& file = patch.files.back();
      absl::string_view value = line;
      if (absl::StartsWith(value, "new file mode")) {
        file.is_new_file = true;
        file.old_path.clear();
      } else if (absl::StartsWith(value, "deleted file mode")) {
        file.is_deleted_file = true;
        file.new_path.clear();
      } else if (absl::ConsumePrefix(&value, "rename from ")) {
        file.is_rename = true;
        file.old_path = HeaderPath(value, "");
      } else if (absl::ConsumePrefix(&value, "rename to ")) {
        file.is_rename = true;
        file.new_path = HeaderPath(value, "");
      } else if (absl::ConsumePrefix(&value, "similarity index ")) {
        int percent = 0;
        if (absl::SimpleAtoi(absl::StripSuffix(value, "%"), &percent)) {
          file.similarity_index = percent;
        }
      } else if (absl::StartsWith(value, "Binary files ") ||
                 absl::StartsWith(value, "GIT binary patch")) {
        file.is_binary = true;
      }
      // index, old mode, new mode, dissimilarity index, copy from/to: no
      // effect on the text.
    }
    // Anything else between sections is prose or git noise: skipped.
    ++i;
  }
  if (patch.files.empty()) {
    return absl::InvalidArgumentError(
        "no file header found (expected \"diff --git\" or \"---\"/\"+++\" lines)");
  }
  for (const FilePatch& file : patch.files) RETURN_IF_ERROR(ValidateFile(file));
  return patch;
}

absl::StatusOr<FileChanges> ApplyPatch(const Patch& patch, const FileContents& context,
                                       const CancelToken& cancel) {
  FileChanges changes;
  // The current content of `path`: changed earlier in this patch, or original.
  auto current = [&](const std::string& path) -> std::optional<std::string> {
    if (auto it = changes.find(path); it != changes.end()) return it->second;
    if (auto it = context.find(path); it != context.end()) return it->second;
    return std::nullopt;
  };
  for (const FilePatch& file : patch.files) {
    RETURN_IF_ERROR(cancel.Check());
    if (file.is_binary) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.path(), ": binary patches cannot be applied to a text context"));
    }
    std::string source_path;
    std::string content;
    if (file.is_new_file) {
      source_path = file.new_path;
      std::optional<std::string> existing = current(source_path);
      if (existing.has_value() && !existing->empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            source_path, ": the patch creates this file but the code context already has it"));
      }
    } else {
      // Bare diffs often name a backup on one side ("--- x.py.orig"): use
      // whichever side the context knows.
      for (const std::string* candidate : {&file.old_path, &file.new_path}) {
        if (candidate->empty()) continue;
        if (std::optional<std::string> found = current(*candidate); found.has_value()) {
          source_path = *candidate;
          content = *found;
          break;
        }
      }
      if (source_path.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(file.path(), ": no such file in the code context"));
      }
    }
    ASSIGN_OR_RETURN(std::string result, ApplyHunks(file, content, source_path, cancel));
    if (file.is_deleted_file) {
      if (!result.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            source_path, ": the patch deletes this file but its hunks leave lines in it"));
      }
      changes[source_path] = std::nullopt;
      continue;
    }
    if (file.is_rename && !file.new_path.empty() && file.new_path != source_path) {
      changes[source_path] = std::nullopt;
      changes[file.new_path] = std::move(result);
      continue;
    }
    changes[source_path] = std::move(result);
  }
  return changes;
}

std::map<std::string, std::string> FileLevelDiffs(const Patch& patch) {
  std::map<std::string, std::string> result;
  for (const FilePatch& file : patch.files) {
    if (file.is_binary) continue;
    std::string header;
    if (file.is_rename) header = absl::StrCat("rename from ", file.old_path, " to ", file.new_path);
    std::vector<std::string> bodies;
    for (const Hunk& hunk : file.hunks) {
      std::string text;
      AppendHunkText(hunk, &text);
      bodies.emplace_back(PyStrip(text));
    }
    result[file.path()] =
        std::string(PyStrip(absl::StrCat(header, "\n", absl::StrJoin(bodies, "\n"))));
  }
  return result;
}

}  // namespace cascade::verifier
