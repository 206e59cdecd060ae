// gRPC server bootstrap shared by every service: listen address with port 0
// support, grpc.health.v1, and a graceful drain on SIGTERM.
//
// main() shape:
//   BlockTerminationSignals();              // before any thread starts
//   ASSIGN_OR_RETURN(auto server, GrpcServer::Start(options, {&service}));
//   WaitForTerminationSignal();
//   server->Shutdown();                     // NOT_SERVING, drain, stop
#ifndef CASCADE_COMMON_SERVER_H_
#define CASCADE_COMMON_SERVER_H_

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/tls.h"

namespace cascade {

struct ServerOptions {
  // host:port to listen on; port 0 picks a free port (reported by port()).
  std::string address = "0.0.0.0:0";
  // How long Shutdown() lets in-flight calls finish before cancelling them.
  absl::Duration drain_timeout = absl::Seconds(10);
  // Largest request accepted.
  int max_receive_message_bytes = 256 << 20;
  // After this long a connection is closed gracefully (GOAWAY; calls in
  // flight finish), so clients of a scaled-out service re-resolve its name
  // and spread over pods that started since. Infinite: never.
  absl::Duration max_connection_age = absl::InfiniteDuration();
  // TLS (common/tls.h): this configuration when set; otherwise the process's
  // CASCADE_TLS_* environment unless `tls_from_environment` is false.
  std::optional<TlsConfig> tls;
  bool tls_from_environment = true;
};

// Help text and value of the `--max_connection_age_s` flag of services that
// scale out behind one DNS name (0 or less: never).
inline constexpr char kMaxConnectionAgeHelp[] =
    "close client connections after this many seconds, so clients find newly scaled replicas "
    "(0 = never)";
inline absl::Duration MaxConnectionAgeFromSeconds(double seconds) {
  return seconds > 0 ? absl::Seconds(seconds) : absl::InfiniteDuration();
}

// Owns a started grpc::Server. Thread-safe.
class GrpcServer {
 public:
  // Builds and starts a server exposing `services` plus grpc.health.v1
  // (SERVING once started). The services must outlive the server.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const ServerOptions& options, const std::vector<grpc::Service*>& services);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  int port() const { return port_; }
  // "localhost:<port>", convenient for loopback clients.
  std::string LocalAddress() const;

  // 1. Health turns NOT_SERVING (load balancers stop sending).
  // 2. No new calls are accepted; in-flight calls get drain_timeout to end.
  // 3. Calls still running are cancelled. Idempotent.
  void Shutdown();

 private:
  GrpcServer(std::unique_ptr<grpc::Server> server, int port, absl::Duration drain_timeout)
      : server_(std::move(server)), port_(port), drain_timeout_(drain_timeout) {}

  std::unique_ptr<grpc::Server> server_;
  const int port_;
  const absl::Duration drain_timeout_;
  bool shut_down_ = false;
};

// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts
// later, so WaitForTerminationSignal() can take them synchronously (no async
// signal handlers in a threaded server). Call first thing in main().
void BlockTerminationSignals();

// Waits for SIGTERM or SIGINT and returns its number.
int WaitForTerminationSignal();

// The tail of every `<name> serve` command:
//   1. starts the /metrics exposer on `metrics_port` (negative: none);
//   2. starts the gRPC server with `services` and logs
//      "<name> listening on port N<detail>" (tests and scripts read it);
//   3. waits for SIGTERM/SIGINT, then drains (GrpcServer::Shutdown).
// Returns the process exit code (0, or 1 when a start failed). The caller
// blocked the termination signals first (BlockTerminationSignals).
// `on_started`, when given, runs on the calling thread once the server
// listens, with its port (e.g. to register with a peer).
int ServeUntilTerminated(absl::string_view name, const ServerOptions& options, int metrics_port,
                         const std::vector<grpc::Service*>& services,
                         absl::string_view detail = "",
                         const std::function<void(int port)>& on_started = nullptr);

}  // namespace cascade

#endif  // CASCADE_COMMON_SERVER_H_
