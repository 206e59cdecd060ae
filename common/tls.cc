#include "common/tls.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

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
  ASSIGN_OR_RETURN(TlsConfig loaded, LoadTlsFiles(values[0], values[1], values[2]));
  return std::optional<TlsConfig>(std::move(loaded));
}

absl::StatusOr<TlsConfig> LoadTlsFiles(const std::string& cert_file, const std::string& key_file,
                                       const std::string& ca_file) {
  TlsConfig tls;
  ASSIGN_OR_RETURN(tls.cert_chain, ReadPem(cert_file, kTlsCertFileEnv));
  ASSIGN_OR_RETURN(tls.private_key, ReadPem(key_file, kTlsKeyFileEnv));
  ASSIGN_OR_RETURN(tls.root_certs, ReadPem(ca_file, kTlsCaFileEnv));
  return tls;
}

absl::StatusOr<std::optional<TlsConfig>> ResolveTls(const std::optional<TlsConfig>& explicit_tls,
                                                    bool from_environment) {
  if (explicit_tls.has_value() || !from_environment) return explicit_tls;
  return TlsFromEnvironment();
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
