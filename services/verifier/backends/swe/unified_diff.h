// Unified diffs as `git diff` and `diff -u` write them, and as models emit
// them: parsing, applying to a code context, and the per-file text SWE-RL
// compares.
//
// Accepted: several files per patch; `diff --git a/x b/y` headers with their
// extended lines (new/deleted file mode, rename from/to, similarity index,
// index, mode changes, binary markers) or bare `---`/`+++` pairs; `a/` and
// `b/` prefixes (stripped); `/dev/null` for created and deleted files;
// timestamps after a tab on `---`/`+++` lines; `\ No newline at end of file`.
// Text before the first file header (a commit message, prose) is ignored.
// Every hunk's body must hold exactly the line counts its `@@` header
// declares; a mismatch is an error naming the line of the patch. A blank line
// inside a hunk body counts as an empty context line, since editors and
// chat front-ends often strip the lone space.
//
// Thread-safety: pure functions over values.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_SWE_UNIFIED_DIFF_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_SWE_UNIFIED_DIFF_H_

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/deadline.h"

namespace cascade::verifier {

// Path → file content. A code context holds the original files a patch is
// applied to.
using FileContents = std::map<std::string, std::string>;
// Path → new content after a patch; std::nullopt for a deleted file.
using FileChanges = std::map<std::string, std::optional<std::string>>;

struct HunkLine {
  char kind = ' ';   // ' ' context, '-' removed, '+' added
  std::string text;  // without the line terminator
  // Followed by "\ No newline at end of file": this line ends its side.
  bool no_newline = false;
};

struct Hunk {
  size_t old_start = 0, old_count = 0;
  size_t new_start = 0, new_count = 0;
  std::string section;  // text after the closing "@@", without the space
  std::vector<HunkLine> lines;
  size_t patch_line = 0;  // 1-based line of the "@@" header in the patch
};

struct FilePatch {
  // Paths without their a/ b/ prefix; empty for /dev/null.
  std::string old_path;
  std::string new_path;
  bool is_new_file = false;
  bool is_deleted_file = false;
  bool is_rename = false;
  bool is_binary = false;
  std::optional<int> similarity_index;  // percent, from "similarity index N%"
  std::vector<Hunk> hunks;
  size_t patch_line = 0;  // 1-based line where this file's section starts

  // The path the file is known by: the old one, or the new one for a created
  // file.
  const std::string& path() const { return old_path.empty() ? new_path : old_path; }
  // True when applying this section would change something: a hunk whose
  // sides differ, a creation, a deletion or a rename.
  bool HasEffect() const;
};

struct Patch {
  std::vector<FilePatch> files;
};

// Parses a unified diff. INVALID_ARGUMENT with "line N: ..." on malformed
// input, and when the text holds no file header at all.
absl::StatusOr<Patch> ParseUnifiedDiff(absl::string_view text);

// Applies `patch` to `context`. Each hunk is placed at the line its header
// names or, failing that, at the nearest line where all its old-side lines
// match (models often get the numbers wrong); there is no fuzz: every context
// and removed line must match exactly. Returns the new content of every path
// the patch touches (a rename deletes the old path). INVALID_ARGUMENT says
// which file and hunk failed and why.
absl::StatusOr<FileChanges> ApplyPatch(const Patch& patch, const FileContents& context,
                                       const CancelToken& cancel);

// SWE-RL's file-level view of a patch (its `get_filelevel_diff`): path →
// the file's hunks rendered as text ("@@ -a,b +c,d @@ section" and body
// lines), prefixed with "rename from X to Y" for renames, whitespace-trimmed.
// Binary files are left out.
std::map<std::string, std::string> FileLevelDiffs(const Patch& patch);

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_SWE_UNIFIED_DIFF_H_
