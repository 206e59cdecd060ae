// Dataset rows for a stage: JSONL files in Cascade's field names or mapped
// from a public layout (DatasetSpec::fields), checked row by row with errors
// that name the file, line and field.
//
// Thread-safety: plain values.
#ifndef CASCADE_SERVICES_ORCHESTRATOR_DATASET_H_
#define CASCADE_SERVICES_ORCHESTRATOR_DATASET_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json_util.h"
#include "services/orchestrator/cascade_config.h"

namespace cascade::orchestrator {

struct ChatTurn {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

struct Example {
  // The row's "id", else "<file stem>:<line>"; stable across resumes.
  std::string id;
  // The conversation before the response (system prompt first when set).
  std::vector<ChatTurn> messages;
  // SFT target (the assistant's text).
  std::string response;
  // What the verifier backend needs besides the response (ground_truth,
  // tests, instruction_id_list, ...), as `verifier eval` takes it.
  Json spec = Json::object();
};

// Loads `spec` for a stage of `kind` scored by `reward` (ignored for SFT):
// every row must carry the fields that reward needs. `system_prompt`, when
// not empty, goes before rows that have none.
absl::StatusOr<std::vector<Example>> LoadDataset(const DatasetSpec& spec, StageKind kind,
                                                 RewardType reward, const std::string& system_prompt);

}  // namespace cascade::orchestrator

#endif  // CASCADE_SERVICES_ORCHESTRATOR_DATASET_H_
