// TLS between services. A process is configured by three environment
// variables (the Helm chart sets them from a kubernetes.io/tls secret):
//   CASCADE_TLS_CERT_FILE  PEM certificate chain this process presents
//   CASCADE_TLS_KEY_FILE   its private key
//   CASCADE_TLS_CA_FILE    PEM root certificates peers are verified against
// All three set: every server this process starts speaks TLS and requires a
// client certificate signed by the CA (mutual TLS), and every channel it opens
// verifies the server against the CA and presents the certificate. None set:
// plaintext. Anything in between is an error naming what is missing, so a
// half-mounted secret never silently falls back to plaintext.
#ifndef CASCADE_COMMON_TLS_H_
#define CASCADE_COMMON_TLS_H_

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace cascade {

inline constexpr char kTlsCertFileEnv[] = "CASCADE_TLS_CERT_FILE";
inline constexpr char kTlsKeyFileEnv[] = "CASCADE_TLS_KEY_FILE";
inline constexpr char kTlsCaFileEnv[] = "CASCADE_TLS_CA_FILE";

// PEM contents.
struct TlsConfig {
  std::string cert_chain;
  std::string private_key;
  std::string root_certs;
};

// Reads the three files; errors name the file and the variable it stands for
// (e.g. "CASCADE_TLS_KEY_FILE=/path: cannot open").
absl::StatusOr<TlsConfig> LoadTlsFiles(const std::string& cert_file, const std::string& key_file,
                                       const std::string& ca_file);

// The configuration the CASCADE_TLS_* variables give now (nullopt: none set).
absl::StatusOr<std::optional<TlsConfig>> ReadTlsEnvironment();

// ReadTlsEnvironment() as of its first call: what every server and channel
// of the process uses.
const absl::StatusOr<std::optional<TlsConfig>>& TlsFromEnvironment();

// What a server or channel uses: `explicit_tls` when set, else the process's
// environment when `from_environment`, else plaintext (nullopt).
absl::StatusOr<std::optional<TlsConfig>> ResolveTls(const std::optional<TlsConfig>& explicit_tls,
                                                    bool from_environment);

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const std::optional<TlsConfig>& tls);
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const std::optional<TlsConfig>& tls);

}  // namespace cascade

#endif  // CASCADE_COMMON_TLS_H_
