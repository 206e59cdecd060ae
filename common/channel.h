// Client channels with the project's defaults: retries for UNAVAILABLE
// declared in the service config (not hand-written loops), round-robin over
// every address the target resolves to, keepalive, large messages, and a
// deadline helper every call site uses.
//
// Targets: "host:port" (DNS), "dns:///name:port" (every address of a headless
// Kubernetes Service: calls spread over all the pods behind it) or
// "ipv4:a:p1,b:p2" (a fixed list). Servers that scale out set a maximum
// connection age (ServerOptions) so clients re-resolve and find new pods.
#ifndef CASCADE_COMMON_CHANNEL_H_
#define CASCADE_COMMON_CHANNEL_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "common/tls.h"

namespace cascade {

// Every call gets one unless the caller says otherwise.
inline constexpr absl::Duration kDefaultCallTimeout = absl::Seconds(30);

struct ChannelOptions {
  // Attempts per call for UNAVAILABLE (gRPC caps this at 5), including the first.
  int max_attempts = 4;
  // Exponential backoff between attempts.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  // Keepalive pings on idle connections, so dead peers are noticed.
  absl::Duration keepalive_time = absl::Seconds(30);
  absl::Duration keepalive_timeout = absl::Seconds(10);
  // Largest message received; bulk tensors stream in chunks well below it.
  int max_receive_message_bytes = 256 << 20;
  // TLS (common/tls.h): this configuration when set; otherwise the process's
  // CASCADE_TLS_* environment unless `tls_from_environment` is false. A broken
  // environment is logged and the channel stays plaintext, which TLS servers
  // refuse (servers of the same process refuse to start).
  std::optional<TlsConfig> tls;
  bool tls_from_environment = true;
};

// The service-config JSON: the retry policy and the round_robin load-balancing
// policy (exposed for tests).
std::string ChannelServiceConfigJson(const ChannelOptions& options);

// A channel to `target` ("host:port") with the options above.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           const ChannelOptions& options = {});

// Sets the call's deadline to now + timeout.
void SetCallTimeout(grpc::ClientContext& context, absl::Duration timeout = kDefaultCallTimeout);

}  // namespace cascade

#endif  // CASCADE_COMMON_CHANNEL_H_
