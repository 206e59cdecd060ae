#include "services/orchestrator/embedded_services.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/server.h"
#include "common/status_macros.h"
#include "model/runtime.h"
#include "services/learner/learner_core.h"
#include "services/learner/learner_service.h"
#include "services/learner/rollout_publisher.h"
#include "services/reward_model/reward_model_core.h"
#include "services/reward_model/reward_model_service.h"
#include "services/rollout/rollout_core.h"
#include "services/rollout/rollout_service.h"
#include "services/verifier/backend_registry.h"
#include "services/verifier/verifier_core.h"
#include "services/verifier/verifier_service.h"
#include "tokenizer/tokenizer.h"

namespace cascade::orchestrator {

// Members are destroyed in reverse order: servers before the cores they serve.
struct EmbeddedServices::State {
  std::unique_ptr<reward_model::RewardModelCore> reward_model;
  std::unique_ptr<reward_model::RewardModelServiceImpl> reward_model_service;
  std::unique_ptr<GrpcServer> reward_model_server;

  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  std::unique_ptr<rollout::RolloutCore> rollout;
  std::unique_ptr<rollout::RolloutServiceImpl> rollout_service;
  std::unique_ptr<GrpcServer> rollout_server;

  std::unique_ptr<learner::LearnerCore> learner;
  std::unique_ptr<learner::RolloutPublisher> publisher;
  std::unique_ptr<learner::LearnerServiceImpl> learner_service;
  std::unique_ptr<GrpcServer> learner_server;

  std::unique_ptr<verifier::VerifierCore> verifier;
  std::unique_ptr<verifier::VerifierServiceImpl> verifier_service;
  std::unique_ptr<GrpcServer> verifier_server;

  ~State() {
    // Stop accepting calls first, then tear the cores down.
    for (GrpcServer* server : {verifier_server.get(), learner_server.get(), rollout_server.get(),
                               reward_model_server.get()}) {
      if (server != nullptr) server->Shutdown();
    }
    if (learner_service != nullptr) (void)learner_service->Shutdown();
  }
};

EmbeddedServices::EmbeddedServices() : state_(std::make_unique<State>()) {}
EmbeddedServices::~EmbeddedServices() = default;

namespace {

absl::Status FromModel(const model::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", status.message()));
}

constexpr char kLoopback[] = "127.0.0.1:0";

std::string LoopbackAddress(const GrpcServer& server) { return absl::StrCat("127.0.0.1:", server.port()); }

}  // namespace

absl::StatusOr<std::unique_ptr<EmbeddedServices>> EmbeddedServices::Start(const CascadeConfig& config,
                                                                         ServicesConfig* resolved) {
  *resolved = config.services;
  auto services = std::unique_ptr<EmbeddedServices>(new EmbeddedServices());
  State& s = *services->state_;
  if (!config.services.embedded) return services;
  const int threads = static_cast<int>(config.services.threads);

  bool needs_rm = false, needs_judge = false, needs_verifier = false;
  for (const StageConfig& stage : config.stages) {
    if (stage.kind != StageKind::kGrpo) continue;
    needs_rm = needs_rm || stage.reward.type == RewardType::kRewardModel ||
               stage.reward.type == RewardType::kIfPlusRm;
    needs_verifier = needs_verifier || stage.reward.type != RewardType::kRewardModel;
    needs_judge = needs_judge || (stage.reward.type == RewardType::kSwe &&
                                  stage.reward.backend_options.value("similarity", "") == "semantic");
  }

  if (resolved->reward_model.empty() && ((needs_rm && !config.services.reward_model_dir.empty()) ||
                                         (needs_judge && !config.services.judge_dir.empty()))) {
    reward_model::RewardModelOptions options;
    options.net.num_threads = threads;
    ASSIGN_OR_RETURN(s.reward_model,
                     reward_model::RewardModelCore::Load(config.services.reward_model_dir,
                                                         config.services.judge_dir, options));
    s.reward_model_service = std::make_unique<reward_model::RewardModelServiceImpl>(
        s.reward_model.get(), reward_model::RewardModelServiceOptions{});
    ASSIGN_OR_RETURN(s.reward_model_server,
                     GrpcServer::Start({.address = kLoopback}, {s.reward_model_service.get()}));
    resolved->reward_model = {LoopbackAddress(*s.reward_model_server)};
    CASCADE_LOG(INFO) << "embedded reward_model on " << LoopbackAddress(*s.reward_model_server);
  }

  if (resolved->rollout.empty()) {
    auto loaded = model::Model::Load(config.model, {.num_threads = threads});
    RETURN_IF_ERROR(FromModel(loaded.status(), config.model));
    auto tok = tokenizer::Tokenizer::FromFile(config.model);
    if (!tok.ok()) return tok.status();
    s.tokenizer = std::move(*tok);
    s.rollout = std::make_unique<rollout::RolloutCore>(std::move(*loaded), /*policy_version=*/0);
    rollout::RolloutServiceOptions options;
    options.decode = [t = s.tokenizer.get()](const std::vector<int64_t>& ids) {
      std::vector<int32_t> narrow(ids.begin(), ids.end());
      return t->Decode(narrow);
    };
    s.rollout_service = std::make_unique<rollout::RolloutServiceImpl>(s.rollout.get(), options);
    ASSIGN_OR_RETURN(s.rollout_server, GrpcServer::Start({.address = kLoopback}, {s.rollout_service.get()}));
    resolved->rollout = {LoopbackAddress(*s.rollout_server)};
    CASCADE_LOG(INFO) << "embedded rollout on " << LoopbackAddress(*s.rollout_server);
  }

  if (resolved->learner.empty()) {
    learner::LearnerOptions options;
    options.num_threads = threads;
    options.activation_checkpointing = config.services.activation_checkpointing;
    // The orchestrator sends every step's learning rate (the stage's
    // schedule); AdamW otherwise keeps PyTorch's defaults, no weight decay.
    options.optimizer.weight_decay = 0.0;
    ASSIGN_OR_RETURN(s.learner, learner::LearnerCore::Open(config.model, options));
    s.publisher = std::make_unique<learner::RolloutPublisher>();
    for (const std::string& address : resolved->rollout) s.publisher->RegisterReplica(address);
    learner::LearnerServiceOptions service_options;
    service_options.publisher = s.publisher.get();
    s.learner_service = std::make_unique<learner::LearnerServiceImpl>(s.learner.get(), service_options);
    ASSIGN_OR_RETURN(s.learner_server, GrpcServer::Start({.address = kLoopback}, {s.learner_service.get()}));
    resolved->learner = LoopbackAddress(*s.learner_server);
    CASCADE_LOG(INFO) << "embedded learner on " << LoopbackAddress(*s.learner_server);
  }

  if (resolved->verifier.empty() && needs_verifier) {
    verifier::BackendConfig backend_config;
    if (!resolved->reward_model.empty()) backend_config.judge_address = resolved->reward_model.front();
    ASSIGN_OR_RETURN(auto backends,
                     verifier::BuildBackends({"math", "if", "code", "swe"}, backend_config));
    s.verifier = std::make_unique<verifier::VerifierCore>(std::move(backends), verifier::VerifierOptions{});
    s.verifier_service = std::make_unique<verifier::VerifierServiceImpl>(s.verifier.get(),
                                                                         verifier::VerifierServiceOptions{});
    ASSIGN_OR_RETURN(s.verifier_server, GrpcServer::Start({.address = kLoopback}, {s.verifier_service.get()}));
    resolved->verifier = {LoopbackAddress(*s.verifier_server)};
    CASCADE_LOG(INFO) << "embedded verifier on " << LoopbackAddress(*s.verifier_server);
  }
  return services;
}

}  // namespace cascade::orchestrator
