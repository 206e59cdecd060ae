#include "common/server.h"

#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <climits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/metrics.h"

namespace cascade {

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    const ServerOptions& options, const std::vector<grpc::Service*>& services) {
  absl::StatusOr<std::optional<TlsConfig>> tls = ResolveTls(options.tls, options.tls_from_environment);
  if (!tls.ok()) return tls.status();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.address, MakeServerCredentials(*tls), &port);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  // Clients ping every 30 s while calls are open; accept that instead of
  // answering with GOAWAY "too_many_pings".
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  if (options.max_connection_age != absl::InfiniteDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               static_cast<int>(absl::ToInt64Milliseconds(options.max_connection_age)));
    // Calls in flight (a long sandbox batch) finish on the old connection.
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, INT_MAX);
  }
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.address,
                     " (address in use or not permitted?)"));
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  return std::unique_ptr<GrpcServer>(
      new GrpcServer(std::move(server), port, options.drain_timeout));
}

GrpcServer::~GrpcServer() { Shutdown(); }

std::string GrpcServer::LocalAddress() const { return absl::StrCat("localhost:", port_); }

void GrpcServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  server_->GetHealthCheckService()->SetServingStatus(false);
  server_->Shutdown(absl::ToChronoTime(absl::Now() + drain_timeout_));
  server_->Wait();
}

void BlockTerminationSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

int WaitForTerminationSignal() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  int received = 0;
  while (sigwait(&signals, &received) != 0) {
  }
  CASCADE_LOG(INFO) << "received " << (received == SIGTERM ? "SIGTERM" : "SIGINT")
                    << ", draining";
  return received;
}

int ServeUntilTerminated(absl::string_view name, const ServerOptions& options, int metrics_port,
                         const std::vector<grpc::Service*>& services, absl::string_view detail,
                         const std::function<void(int port)>& on_started) {
  if (metrics_port >= 0) {
    auto port = StartMetricsExposer(metrics_port);
    if (!port.ok()) {
      CASCADE_LOG(ERROR) << port.status().message();
      return 1;
    }
    CASCADE_LOG(INFO) << "metrics on :" << *port << "/metrics";
  }
  auto server = GrpcServer::Start(options, services);
  if (!server.ok()) {
    CASCADE_LOG(ERROR) << server.status().message();
    return 1;
  }
  CASCADE_LOG(INFO) << name << " listening on port " << (*server)->port() << detail;
  if (on_started) on_started((*server)->port());
  WaitForTerminationSignal();
  (*server)->Shutdown();
  CASCADE_LOG(INFO) << name << " stopped";
  return 0;
}

}  // namespace cascade
