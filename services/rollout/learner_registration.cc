#include "services/rollout/learner_registration.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cascade/v1/learner.grpc.pb.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/logging.h"

namespace cascade::rollout {

std::string DefaultAdvertisedAddress(const std::string& listen_address, int port) {
  std::string host = listen_address.substr(0, listen_address.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::") {
    char name[256] = {};
    host = gethostname(name, sizeof(name) - 1) == 0 && name[0] != '\0' ? name : "localhost";
  }
  return absl::StrCat(host, ":", port);
}

LearnerRegistration::LearnerRegistration(LearnerRegistrationOptions options)
    : options_(std::move(options)) {}

LearnerRegistration::~LearnerRegistration() {
  stopping_.Notify();
  if (thread_.joinable()) thread_.join();
}

void LearnerRegistration::Start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
}

absl::Status LearnerRegistration::WaitRegistered(absl::Duration timeout) {
  if (registered_.WaitForNotificationWithTimeout(timeout)) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  return absl::DeadlineExceededError(
      absl::StrCat("not registered with the learner at ", options_.learner, " within ",
                   absl::FormatDuration(timeout), "; last attempt: ", last_error_.ToString()));
}

void LearnerRegistration::Run() {
  auto stub = cascade::v1::Learner::NewStub(MakeChannel(options_.learner));
  absl::Duration backoff = options_.first_backoff;
  while (!stopping_.HasBeenNotified()) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.call_timeout));
    // A learner that is not up yet is waited for rather than failed fast.
    context.set_wait_for_ready(true);
    cascade::v1::RegisterRolloutRequest request;
    request.set_address(options_.advertised);
    cascade::v1::RegisterRolloutResponse response;
    // Cancels the call when the replica stops while it is in flight.
    absl::Notification attempt_over;
    std::thread watchdog([this, &context, &attempt_over] {
      while (!attempt_over.WaitForNotificationWithTimeout(absl::Milliseconds(200))) {
        if (stopping_.HasBeenNotified()) {
          context.TryCancel();
          return;
        }
      }
    });
    absl::Status status = FromGrpcStatus(stub->RegisterRollout(&context, request, &response));
    attempt_over.Notify();
    watchdog.join();
    {
      absl::MutexLock lock(&mu_);
      last_error_ = status;
    }
    if (status.ok()) {
      CASCADE_LOG(INFO) << "registered with the learner at " << options_.learner << " as "
                        << options_.advertised << " (" << response.replicas()
                        << " replicas registered)";
      registered_.Notify();
      return;
    }
    CASCADE_LOG(WARNING) << "registering with the learner at " << options_.learner
                         << " failed: " << status << "; retrying in "
                         << absl::FormatDuration(backoff);
    if (stopping_.WaitForNotificationWithTimeout(backoff)) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace cascade::rollout
