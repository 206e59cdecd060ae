#include "services/learner/checkpoint_files.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/json_util.h"
#include "common/status_macros.h"

namespace cascade::learner {
namespace {

namespace fs = std::filesystem;

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(path, ": ", what, ": ", std::strerror(errno)));
}

absl::Status SyncPath(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open for fsync", path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoError("fsync", path);
  return absl::OkStatus();
}

// Regular files under `dir`, as sorted relative paths (the manifest itself
// excluded).
absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    std::string rel = fs::relative(it->path(), dir).string();
    if (rel != kManifestFile) files.push_back(rel);
  }
  if (ec) return absl::InternalError(absl::StrCat(dir, ": listing failed: ", ec.message()));
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("SHA-256: cannot initialise the digest");
  }
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

absl::Status WriteManifest(const std::string& dir) {
  ASSIGN_OR_RETURN(std::vector<std::string> files, ListFiles(dir));
  Json manifest = {{"format", "cascade-learner-checkpoint/1"}, {"sha256", Json::object()}};
  for (const std::string& rel : files) {
    ASSIGN_OR_RETURN(std::string sum, Sha256File((fs::path(dir) / rel).string()));
    manifest["sha256"][rel] = sum;
  }
  const std::string path = (fs::path(dir) / kManifestFile).string();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << manifest.dump(2) << "\n";
    if (!out.flush()) return ErrnoError("write", path);
  }
  return SyncPath(path, /*directory=*/false);
}

absl::Status VerifyManifest(const std::string& dir) {
  const std::string path = (fs::path(dir) / kManifestFile).string();
  if (!fs::exists(path)) {
    return absl::NotFoundError(absl::StrCat(
        dir, ": not a complete checkpoint (", kManifestFile, " is missing)"));
  }
  auto manifest = ReadJsonFile(path);
  if (!manifest.ok()) {
    return absl::DataLossError(absl::StrCat(path, ": unreadable: ", manifest.status().message()));
  }
  auto sums = manifest->find("sha256");
  if (sums == manifest->end() || !sums->is_object() || sums->empty()) {
    return absl::DataLossError(absl::StrCat(path, ": \"sha256\" must be a non-empty object"));
  }
  for (const auto& [rel, expected] : sums->items()) {
    const std::string file = (fs::path(dir) / rel).string();
    if (!expected.is_string()) {
      return absl::DataLossError(absl::StrCat(path, ": sha256.", rel, ": expected a string"));
    }
    auto actual = Sha256File(file);
    if (!actual.ok()) {
      return absl::DataLossError(absl::StrCat(file, ": listed in the manifest but unreadable"));
    }
    if (*actual != expected.get<std::string>()) {
      return absl::DataLossError(absl::StrCat(file, ": checksum mismatch (manifest ",
                                              expected.get<std::string>(), ", file ", *actual,
                                              "): the checkpoint is corrupt"));
    }
  }
  return absl::OkStatus();
}

absl::Status SyncTree(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> dirs{dir};
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file()) {
      RETURN_IF_ERROR(SyncPath(it->path().string(), /*directory=*/false));
    } else if (it->is_directory()) {
      dirs.push_back(it->path().string());
    }
  }
  if (ec) return absl::InternalError(absl::StrCat(dir, ": listing failed: ", ec.message()));
  // Directories last and deepest first, so each entry is durable before its parent.
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    RETURN_IF_ERROR(SyncPath(*it, /*directory=*/true));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MakeStagingDir(const std::string& final_dir) {
  fs::path target = fs::absolute(fs::path(final_dir).lexically_normal());
  if (target.filename().empty()) target = target.parent_path();
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) {
    return absl::InternalError(absl::StrCat(target.parent_path().string(), ": ", ec.message()));
  }
  std::string tmpl = target.string() + ".tmp-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return ErrnoError("mkdtemp", tmpl);
  return tmpl;
}

absl::Status PublishDir(const std::string& staging_dir, const std::string& final_dir) {
  fs::path target = fs::absolute(fs::path(final_dir).lexically_normal());
  if (target.filename().empty()) target = target.parent_path();
  std::error_code ec;
  // rename(2) cannot replace a non-empty directory: move the old one aside
  // first. Between the two renames a crash leaves the old checkpoint under
  // the ".old-" name and the new one complete in staging, both recoverable.
  std::string old;
  if (fs::exists(target, ec)) {
    old = target.string() + ".old-" + std::to_string(::getpid());
    fs::remove_all(old, ec);
    if (std::rename(target.c_str(), old.c_str()) != 0) return ErrnoError("rename", target.string());
  }
  if (std::rename(staging_dir.c_str(), target.c_str()) != 0) {
    return ErrnoError("rename " + staging_dir + " to", target.string());
  }
  RETURN_IF_ERROR(SyncPath(target.parent_path().string(), /*directory=*/true));
  if (!old.empty()) fs::remove_all(old, ec);
  return absl::OkStatus();
}

}  // namespace cascade::learner
