// File-level pieces of learner checkpoints, without torch: SHA-256 of files,
// the checksum manifest, and the atomic publication of a directory.
//
// A checkpoint directory is complete exactly when its manifest.json exists:
// the manifest is written last, inside a temporary sibling directory that is
// renamed into place only after every file and the directory itself were
// fsync'ed. A crash at any point leaves either the old checkpoint or the new
// one, never a mixture.
//
// Thread-safety: free functions without shared state.
#ifndef CASCADE_SERVICES_LEARNER_CHECKPOINT_FILES_H_
#define CASCADE_SERVICES_LEARNER_CHECKPOINT_FILES_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cascade::learner {

inline constexpr char kManifestFile[] = "manifest.json";

// Lower-case hex SHA-256 of a file's bytes.
[[nodiscard]] absl::StatusOr<std::string> Sha256File(const std::string& path);

// Writes `dir`/manifest.json listing every regular file of `dir` (relative
// names, recursively) with its SHA-256, and fsyncs it.
[[nodiscard]] absl::Status WriteManifest(const std::string& dir);

// Checks that every file the manifest names exists with the recorded
// checksum. DATA_LOSS names the first file that differs; NOT_FOUND when the
// manifest is missing (an incomplete or foreign directory).
[[nodiscard]] absl::Status VerifyManifest(const std::string& dir);

// fsyncs every regular file under `dir`, then `dir` itself and its
// sub-directories.
[[nodiscard]] absl::Status SyncTree(const std::string& dir);

// A fresh, empty temporary directory next to `final_dir` (same file system,
// so the final rename is atomic).
[[nodiscard]] absl::StatusOr<std::string> MakeStagingDir(const std::string& final_dir);

// Moves a fully written and synced `staging_dir` to `final_dir`, replacing an
// existing checkpoint there, and fsyncs the parent directory.
[[nodiscard]] absl::Status PublishDir(const std::string& staging_dir,
                                      const std::string& final_dir);

}  // namespace cascade::learner

#endif  // CASCADE_SERVICES_LEARNER_CHECKPOINT_FILES_H_
