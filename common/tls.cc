#include "common/tls.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cascade {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* variable) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(variable, "=", path, ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(variable, "=", path, ": not a PEM file"));
  }
  return text.str();
}

}  // namespace

absl::StatusOr<std::optional<TlsConfig>> ReadTlsEnvironment() {
  const std::vector<const char*> names = {kTlsCertFileEnv, kTlsKeyFileEnv, kTlsCaFileEnv};
  std::vector<std::string> values, missing;
  for (const char* name : names) {
    const char* value = std::getenv(name);
    values.push_back(value == nullptr ? "" : value);
    if (values.back().empty()) missing.push_back(name);
  }
  if (missing.size() == names.size()) return std::optional<TlsConfig>();
  if (!missing.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS is half configured: ", absl::StrJoin(missing, " and "),
                     " not set (set all three of ", absl::StrJoin(names, ", "), ", or none)"));
  }
  absl::StatusOr<TlsConfig> loaded = LoadTlsFiles(values[0], values[1], values[2]);
  if (!loaded.ok()) return loaded.status();
  return std::optional<TlsConfig>(std::move(*loaded));
}

absl::StatusOr<TlsConfig> LoadTlsFiles(const std::string& cert_file, const std::string& key_file,
                                       const std::string& ca_file) {
  TlsConfig tls;
  absl::StatusOr<std::string> cert = ReadPem(cert_file, kTlsCertFileEnv);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem(key_file, kTlsKeyFileEnv);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> ca = ReadPem(ca_file, kTlsCaFileEnv);
  if (!ca.ok()) return ca.status();
  tls.cert_chain = std::move(*cert);
  tls.private_key = std::move(*key);
  tls.root_certs = std::move(*ca);
  return tls;
}

const absl::StatusOr<std::optional<TlsConfig>>& TlsFromEnvironment() {
  // Read once: every channel and server of the process agrees, and a secret
  // rotated on disk takes effect at the next restart, like the pod's.
  static const auto* tls = new absl::StatusOr<std::optional<TlsConfig>>(ReadTlsEnvironment());
  return *tls;
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const std::optional<TlsConfig>& tls) {
  if (!tls.has_value()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls->root_certs;
  options.pem_key_cert_pairs.push_back({tls->private_key, tls->cert_chain});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const std::optional<TlsConfig>& tls) {
  if (!tls.has_value()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls->root_certs;
  options.pem_private_key = tls->private_key;
  options.pem_cert_chain = tls->cert_chain;
  return grpc::SslCredentials(options);
}

}  // namespace cascade
