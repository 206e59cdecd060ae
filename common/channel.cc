#include "common/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/logging.h"

namespace cascade {
namespace {

std::string DurationJson(absl::Duration duration) {
  return absl::StrFormat("%.3fs", absl::ToDoubleSeconds(duration));
}

}  // namespace

std::string ChannelServiceConfigJson(const ChannelOptions& options) {
  // round_robin keeps a connection to every resolved address and spreads
  // calls over the ready ones; with one address it behaves like pick_first.
  // An empty "name" entry applies the retry policy to every method.
  return absl::StrCat(R"({"loadBalancingConfig":[{"round_robin":{}}],)",
                      R"("methodConfig":[{"name":[{}],"retryPolicy":{"maxAttempts":)",
                      options.max_attempts, R"(,"initialBackoff":")",
                      DurationJson(options.initial_backoff), R"(","maxBackoff":")",
                      DurationJson(options.max_backoff),
                      R"(","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}]})");
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           const ChannelOptions& options) {
  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(ChannelServiceConfigJson(options));
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 1);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_time)));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_timeout)));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  absl::StatusOr<std::optional<TlsConfig>> tls = ResolveTls(options.tls, options.tls_from_environment);
  if (!tls.ok()) {
    CASCADE_LOG(ERROR) << "channel to " << target << " without TLS: " << tls.status();
    tls = std::optional<TlsConfig>();
  }
  return grpc::CreateCustomChannel(target, MakeChannelCredentials(*tls), args);
}

void SetCallTimeout(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace cascade
