// SEARCH/REPLACE edit blocks, the edit format of Agentless and SWE-RL:
//
//   ```python
//   ### path/to/file.py
//   <<<<<<< SEARCH
//   old lines
//   =======
//   new lines
//   >>>>>>> REPLACE
//   ```
//
// Fences are optional; a "### path" line names the file of every block after
// it until the next one. Applying follows SWE-RL's reward code: a SEARCH text
// must occur at the start of a line of the file's current content, and every
// occurrence is replaced; SEARCH equal to REPLACE is a format error (an edit
// that changes nothing would otherwise farm reward). An empty SEARCH creates
// a file that is absent or empty; on a non-empty file it is an error, where
// SWE-RL would insert the text after every line break.
//
// Thread-safety: pure functions over values.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_SWE_SEARCH_REPLACE_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_SWE_SEARCH_REPLACE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/deadline.h"
#include "services/verifier/backends/swe/unified_diff.h"

namespace cascade::verifier {

struct SearchReplaceEdit {
  std::string path;
  std::string search;   // lines joined with "\n", no trailing newline
  std::string replace;  // likewise
  size_t line = 0;      // 1-based line of the "<<<<<<< SEARCH" marker
};

// Parses every block of `text`, in order. INVALID_ARGUMENT ("line N: ...")
// for a block without a path, an unterminated block, a stray marker, or when
// there is no block at all.
absl::StatusOr<std::vector<SearchReplaceEdit>> ParseSearchReplace(absl::string_view text);

// Applies the edits to `context` (files it lacks start empty). Returns the
// new content of every edited path; INVALID_ARGUMENT names the path and the
// block whose SEARCH text was not found.
absl::StatusOr<FileChanges> ApplySearchReplace(const std::vector<SearchReplaceEdit>& edits,
                                               const FileContents& context,
                                               const CancelToken& cancel);

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_SWE_SEARCH_REPLACE_H_
