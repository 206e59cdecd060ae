// A scripted RewardModelClientInterface for tests of components that call
// the reward model (the verifier's semantic judge, orchestrator rewards),
// so they can be tested without a model. Records every call.
//
// Thread-safe.
#ifndef CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_CLIENT_FAKE_H_
#define CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_CLIENT_FAKE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "services/reward_model/reward_model_client.h"

namespace cascade::reward_model {

class FakeRewardModelClient : public RewardModelClientInterface {
 public:
  // Answers for one item or question; unset answers UNIMPLEMENTED.
  std::function<absl::StatusOr<float>(const ClientScoreItem&)> score;
  std::function<absl::StatusOr<double>(const std::string&)> judge;

  absl::StatusOr<std::vector<float>> Score(const std::vector<ClientScoreItem>& items,
                                           absl::Duration timeout) override {
    Record(timeout);
    if (!score) return absl::UnimplementedError("fake reward model: no score function set");
    std::vector<float> scores;
    for (const ClientScoreItem& item : items) {
      absl::StatusOr<float> value = score(item);
      if (!value.ok()) return value.status();
      scores.push_back(*value);
    }
    return scores;
  }

  absl::StatusOr<std::vector<double>> Judge(const std::vector<std::string>& questions,
                                            absl::Duration timeout) override {
    Record(timeout);
    {
      absl::MutexLock lock(&mu_);
      for (const std::string& question : questions) questions_.push_back(question);
    }
    if (!judge) return absl::UnimplementedError("fake reward model: no judge function set");
    std::vector<double> answers;
    for (const std::string& question : questions) {
      absl::StatusOr<double> value = judge(question);
      if (!value.ok()) return value.status();
      answers.push_back(*value);
    }
    return answers;
  }

  std::vector<std::string> questions() const {
    absl::MutexLock lock(&mu_);
    return questions_;
  }
  std::vector<absl::Duration> timeouts() const {
    absl::MutexLock lock(&mu_);
    return timeouts_;
  }

 private:
  void Record(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    timeouts_.push_back(timeout);
  }

  mutable absl::Mutex mu_;
  std::vector<std::string> questions_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Duration> timeouts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cascade::reward_model

#endif  // CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_CLIENT_FAKE_H_
