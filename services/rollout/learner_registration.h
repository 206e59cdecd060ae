// A rollout replica that announces itself: RegisterRollout on the learner
// once the replica's server listens, retried with backoff until the learner
// answers. The learner then publishes every version to the replica and
// brings it to the current one at once, so replicas that start later
// (scale-up, restarts) need no change to the learner's --rollouts list.
//
// Thread-safe; the registration runs on its own thread.
#ifndef CASCADE_SERVICES_ROLLOUT_LEARNER_REGISTRATION_H_
#define CASCADE_SERVICES_ROLLOUT_LEARNER_REGISTRATION_H_

#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace cascade::rollout {

struct LearnerRegistrationOptions {
  // The learner's gRPC address (host:port).
  std::string learner;
  // This replica's address as the learner reaches it (host:port).
  std::string advertised;
  // Deadline of one RegisterRollout call: it returns once the learner has
  // sent this replica the current version.
  absl::Duration call_timeout = absl::Minutes(10);
  // Waits between failed attempts: doubling from the first to the cap.
  absl::Duration first_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(30);
};

// The address to advertise when none is given: the listening host unless it
// is a wildcard, else this machine's host name, with `port`.
std::string DefaultAdvertisedAddress(const std::string& listen_address, int port);

class LearnerRegistration {
 public:
  explicit LearnerRegistration(LearnerRegistrationOptions options);
  // Stops retrying and joins the thread (an attempt in flight is cancelled).
  ~LearnerRegistration();
  LearnerRegistration(const LearnerRegistration&) = delete;
  LearnerRegistration& operator=(const LearnerRegistration&) = delete;

  // Starts registering on a new thread (once).
  void Start();
  // OK once registered; the last failure while still trying; DEADLINE_EXCEEDED
  // when `timeout` passed first.
  absl::Status WaitRegistered(absl::Duration timeout);

 private:
  void Run();

  const LearnerRegistrationOptions options_;
  absl::Notification registered_;
  absl::Notification stopping_;
  absl::Mutex mu_;
  absl::Status last_error_ ABSL_GUARDED_BY(mu_) = absl::UnavailableError("not attempted yet");
  std::thread thread_;
};

}  // namespace cascade::rollout

#endif  // CASCADE_SERVICES_ROLLOUT_LEARNER_REGISTRATION_H_
