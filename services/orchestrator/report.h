// `orchestrator report JOB`: one self-contained HTML page per job. Charts are
// inline SVG drawn here, with no scripts, style sheets or fonts fetched from
// anywhere, so the file opens offline and can be mailed or archived as is.
//
// The page shows the job header, one section per stage (reward with its ±std
// band, response length, filtered fraction, truncation rate, the step-time
// breakdown and the orchestration overhead), the cross-stage eval matrix
// (forgetting across the cascade), each stage's progress on its own domain,
// and the job's events. Every string taken from the records is HTML-escaped.
//
// Thread-safety: pure functions of their arguments.
#ifndef CASCADE_SERVICES_ORCHESTRATOR_REPORT_H_
#define CASCADE_SERVICES_ORCHESTRATOR_REPORT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "services/orchestrator/job_store.h"

namespace cascade::orchestrator {

// The cross-stage eval matrix: one row per point of the cascade, one column
// per evaluated domain.
//
// Conventions of the evaluation rows (as the stage walker writes them):
//   - after_stage_index = i, at_step = -1: evaluation at the start of stage i;
//     the one of stage 0 is the baseline, the "start" row.
//   - after_stage_index = i, the largest at_step >= 0: the latest (at the end
//     of the stage, the final) evaluation of stage i, the "after stage i" row.
struct EvalMatrix {
  struct Row {
    // "start" or "after stage i (name)" (", step N, in progress" appended
    // while the stage is not done).
    std::string label;
    int after_stage_index = 0;
    int64_t at_step = -1;
    // One per column; empty where that domain was not evaluated.
    std::vector<std::optional<double>> cells;
  };
  // Columns in domain_stage_index order.
  std::vector<int> domain_stage_indices;
  std::vector<std::string> domains;
  std::vector<Row> rows;
};

EvalMatrix BuildEvalMatrix(const std::vector<StageRecord>& stages,
                           const std::vector<EvalRecord>& evals);

// A stage's eval reward on its own domain at its start and its latest point.
struct OwnDomainProgress {
  int stage_index = 0;
  std::string name;
  std::string domain;
  std::optional<double> start;
  std::optional<double> end;
  int64_t end_step = -1;
};

std::vector<OwnDomainProgress> BuildOwnDomainProgress(const std::vector<StageRecord>& stages,
                                                      const std::vector<EvalRecord>& evals);

// Escapes &, <, >, " and ' for text and attribute values.
std::string HtmlEscape(absl::string_view text);

// The whole page. Steps, evaluations and events may come in any order.
std::string RenderReportHtml(const JobRecord& job, const std::vector<StageRecord>& stages,
                             const std::vector<StepRecord>& steps,
                             const std::vector<EvalRecord>& evals,
                             const std::vector<EventRecord>& events);

}  // namespace cascade::orchestrator

#endif  // CASCADE_SERVICES_ORCHESTRATOR_REPORT_H_
