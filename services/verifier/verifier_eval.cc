#include "services/verifier/verifier_eval.h"

#include <istream>
#include <ostream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace cascade::verifier {
namespace {

// A line as read: either an item to check or the reason it cannot be one.
struct PendingLine {
  int64_t number = 0;
  bool valid = false;
  VerifyInput input;
  std::string error;
};

void WriteOutput(std::ostream& out, double reward, const std::string& verdict,
                 const Json& details) {
  Json line = {{"reward", reward}, {"verdict", verdict}, {"details", details}};
  // Replace invalid UTF-8 rather than throw: a response may contain any bytes.
  out << line.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n';
}

}  // namespace

absl::StatusOr<EvalSummary> RunEval(VerifierCore& core, const EvalOptions& options,
                                    std::istream& in, std::ostream& out, std::ostream& err) {
  if (!core.HasBackend(options.backend)) {
    // Let the core produce the message that lists the known backends.
    auto probe = core.VerifyBatch(options.backend, {});
    return probe.status();
  }
  EvalSummary summary;
  absl::Time start = absl::Now();
  std::string text;
  int64_t line_number = 0;
  bool stop = false;
  while (!stop) {
    // 1. Read a chunk, parsing each line; malformed lines keep their slot.
    std::vector<PendingLine> chunk;
    while (static_cast<int>(chunk.size()) < options.chunk_lines && std::getline(in, text)) {
      ++line_number;
      if (!text.empty() && text.back() == '\r') text.pop_back();
      if (absl::StripAsciiWhitespace(text).empty()) continue;  // blank lines are not records
      PendingLine line;
      line.number = line_number;
      std::string where = absl::StrCat(options.input_name, ": line ", line_number);
      auto parsed = ParseJson(text, where);
      if (!parsed.ok()) {
        line.error = std::string(parsed.status().message());
      } else if (!parsed->is_object()) {
        line.error = absl::StrCat(where, ": expected a JSON object, got ", JsonTypeName(*parsed));
      } else {
        line.valid = true;
        line.input = {std::move(*parsed), JsonPath(where)};
      }
      chunk.push_back(std::move(line));
    }
    if (chunk.empty()) break;

    // 2. Score the valid lines of the chunk as one batch.
    std::vector<VerifyInput> inputs;
    for (PendingLine& line : chunk) {
      if (line.valid) inputs.push_back(std::move(line.input));
    }
    std::vector<VerifyOutput> outputs;
    if (!inputs.empty()) {
      auto scored = core.VerifyBatch(options.backend, std::move(inputs), options.item_timeout);
      if (!scored.ok()) return scored.status();
      outputs = std::move(*scored);
    }

    // 3. Write one output line per input line, in order.
    size_t next_output = 0;
    for (const PendingLine& line : chunk) {
      ++summary.lines;
      if (!line.valid) {
        ++summary.malformed;
        ++summary.verdicts[std::string(kVerdictInvalidInput)];
        err << line.error << '\n';
        if (options.strict) {
          out.flush();
          return absl::InvalidArgumentError(line.error);
        }
        WriteOutput(out, 0.0, std::string(kVerdictInvalidInput), {{"error", line.error}});
        continue;
      }
      const VerifyOutput& output = outputs[next_output++];
      if (output.verdict == kVerdictInvalidInput) {
        ++summary.malformed;
        std::string message = output.details.value("error", "invalid item");
        err << message << '\n';
        if (options.strict) {
          out.flush();
          return absl::InvalidArgumentError(message);
        }
      }
      ++summary.verdicts[output.verdict];
      summary.reward_sum += output.reward;
      WriteOutput(out, output.reward, output.verdict, output.details);
    }
    out.flush();
    stop = in.eof();
  }
  summary.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return summary;
}

std::string FormatEvalSummary(const EvalSummary& summary) {
  std::string text = absl::StrFormat(
      "scored %d lines in %.2f s (%.0f/s): mean reward %.4f", summary.lines, summary.seconds,
      summary.seconds > 0 ? summary.lines / summary.seconds : 0.0,
      summary.lines > 0 ? summary.reward_sum / summary.lines : 0.0);
  std::string separator = "; ";
  for (const auto& [verdict, count] : summary.verdicts) {
    absl::StrAppend(&text, separator, verdict, " ", count);
    separator = ", ";
  }
  if (summary.malformed > 0) absl::StrAppend(&text, "; ", summary.malformed, " malformed");
  return text;
}

}  // namespace cascade::verifier
