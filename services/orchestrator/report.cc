#include "services/orchestrator/report.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace cascade::orchestrator {
namespace {

// Chart geometry, in SVG user units (pixels at 100% zoom).
constexpr double kChartWidth = 460;
constexpr double kChartHeight = 220;
constexpr double kMarginLeft = 56;
constexpr double kMarginRight = 12;
constexpr double kMarginTop = 28;
constexpr double kMarginBottom = 34;

// The step-time phases, in stacking order, with their colours.
struct Phase {
  const char* name;
  const char* color;
};
constexpr Phase kPhases[] = {{"generate", "#4e79a7"},
                             {"verify", "#f28e2b"},
                             {"train", "#59a14f"},
                             {"sync", "#b07aa1"},
                             {"other", "#bab0ac"}};

std::string Fixed(double value, int decimals) {
  if (!std::isfinite(value)) return "n/a";
  return absl::StrFormat("%.*f", decimals, value);
}

std::string FormatUnixTime(double seconds) {
  if (seconds <= 0.0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC",
                          absl::FromUnixSeconds(static_cast<int64_t>(seconds)),
                          absl::UTCTimeZone());
}

std::string FormatDuration(double seconds) {
  if (seconds < 120) return absl::StrFormat("%.1f s", seconds);
  if (seconds < 7200) return absl::StrFormat("%.1f min", seconds / 60);
  return absl::StrFormat("%.2f h", seconds / 3600);
}

// Tick values covering [lo, hi] at a 1-2-5 spacing, about `target` of them,
// never closer than `min_step` (1 on the step axis: steps are integers).
std::vector<double> NiceTicks(double lo, double hi, int target, double min_step = 0.0) {
  double span = hi - lo;
  if (!(span > 0)) return {lo};
  double raw = std::max(span / target, min_step);
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double factor : {1.0, 2.0, 5.0, 10.0}) {
    step = factor * magnitude;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    // Avoid "-0" labels from accumulated rounding.
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  return ticks;
}

std::string TickLabel(double value, double step) {
  int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step)));
  return absl::StrFormat("%.*f", std::min(decimals, 6), value);
}

// Maps data coordinates into the plot area of one chart.
class Frame {
 public:
  Frame(double x_lo, double x_hi, double y_lo, double y_hi) {
    if (!(x_hi > x_lo)) {
      x_lo -= 0.5;
      x_hi += 0.5;
    }
    if (!(y_hi > y_lo)) {
      double pad = std::max(std::abs(y_lo) * 0.1, 0.5);
      y_lo -= pad;
      y_hi += pad;
    }
    x_lo_ = x_lo;
    x_hi_ = x_hi;
    y_lo_ = y_lo;
    y_hi_ = y_hi;
  }
  double X(double x) const {
    return kMarginLeft + (x - x_lo_) / (x_hi_ - x_lo_) * (kChartWidth - kMarginLeft - kMarginRight);
  }
  double Y(double y) const {
    return kChartHeight - kMarginBottom -
           (y - y_lo_) / (y_hi_ - y_lo_) * (kChartHeight - kMarginTop - kMarginBottom);
  }
  double x_lo() const { return x_lo_; }
  double x_hi() const { return x_hi_; }
  double y_lo() const { return y_lo_; }
  double y_hi() const { return y_hi_; }

 private:
  double x_lo_, x_hi_, y_lo_, y_hi_;
};

std::string SvgOpen(absl::string_view title) {
  return absl::StrFormat(
      "<svg class=\"chart\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" "
      "role=\"img\"><title>%s</title>"
      "<text x=\"%.0f\" y=\"16\" class=\"ct\">%s</text>",
      kChartWidth, kChartHeight, kChartWidth, kChartHeight, HtmlEscape(title), kMarginLeft,
      HtmlEscape(title));
}

// Axes, grid lines and tick labels; the x axis is the step.
std::string Axes(const Frame& f) {
  std::string out;
  std::vector<double> yt = NiceTicks(f.y_lo(), f.y_hi(), 4);
  double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1.0;
  for (double t : yt) {
    if (t < f.y_lo() || t > f.y_hi()) continue;
    absl::StrAppendFormat(&out,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" class=\"yl\">%s</text>",
                          kMarginLeft, f.Y(t), kChartWidth - kMarginRight, f.Y(t), kMarginLeft - 4,
                          f.Y(t) + 4, TickLabel(t, ystep));
  }
  std::vector<double> xt = NiceTicks(f.x_lo(), f.x_hi(), 6, /*min_step=*/1.0);
  double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1.0;
  for (double t : xt) {
    if (t < f.x_lo() || t > f.x_hi()) continue;
    absl::StrAppendFormat(&out, "<text x=\"%.1f\" y=\"%.1f\" class=\"xl\">%s</text>", f.X(t),
                          kChartHeight - kMarginBottom + 14, TickLabel(t, std::max(xstep, 1.0)));
  }
  absl::StrAppendFormat(&out,
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>"
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\" class=\"xl\">step</text>",
                        kMarginLeft, kMarginTop, kMarginLeft, kChartHeight - kMarginBottom,
                        kMarginLeft, kChartHeight - kMarginBottom, kChartWidth - kMarginRight,
                        kChartHeight - kMarginBottom,
                        (kMarginLeft + kChartWidth - kMarginRight) / 2, kChartHeight - 4);
  return out;
}

std::string NoData(absl::string_view title) {
  return absl::StrCat(SvgOpen(title),
                      absl::StrFormat("<text x=\"%.0f\" y=\"%.0f\" class=\"nodata\">no steps "
                                      "recorded</text></svg>",
                                      kChartWidth / 2, kChartHeight / 2));
}

struct Point {
  double x;
  double y;
  // Half-width of the shaded band (0: none).
  double band = 0.0;
};

// A line over the stage's steps; points with a non-finite value are skipped
// so one bad metric does not blank the chart.
std::string LineChart(absl::string_view title, absl::string_view color,
                      const std::vector<Point>& raw, bool with_band) {
  std::vector<Point> points;
  for (const Point& p : raw) {
    if (std::isfinite(p.x) && std::isfinite(p.y) && std::isfinite(p.band)) points.push_back(p);
  }
  if (points.empty()) return NoData(title);
  double x_lo = points.front().x, x_hi = points.front().x;
  double y_lo = points.front().y, y_hi = points.front().y;
  for (const Point& p : points) {
    double band = with_band ? std::abs(p.band) : 0.0;
    x_lo = std::min(x_lo, p.x);
    x_hi = std::max(x_hi, p.x);
    y_lo = std::min(y_lo, p.y - band);
    y_hi = std::max(y_hi, p.y + band);
  }
  Frame f(x_lo, x_hi, y_lo, y_hi);
  std::string out = SvgOpen(title);
  absl::StrAppend(&out, Axes(f));
  if (with_band) {
    // Upper edge left to right, then the lower edge back.
    std::string polygon;
    for (const Point& p : points) {
      absl::StrAppendFormat(&polygon, "%.1f,%.1f ", f.X(p.x), f.Y(p.y + std::abs(p.band)));
    }
    for (auto it = points.rbegin(); it != points.rend(); ++it) {
      absl::StrAppendFormat(&polygon, "%.1f,%.1f ", f.X(it->x), f.Y(it->y - std::abs(it->band)));
    }
    absl::StrAppendFormat(&out, "<polygon points=\"%s\" fill=\"%s\" fill-opacity=\"0.2\"/>",
                          polygon, color);
  }
  std::string line;
  for (const Point& p : points) absl::StrAppendFormat(&line, "%.1f,%.1f ", f.X(p.x), f.Y(p.y));
  absl::StrAppendFormat(
      &out, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"/>", line,
      color);
  if (points.size() == 1) {
    absl::StrAppendFormat(&out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>",
                          f.X(points[0].x), f.Y(points[0].y), color);
  }
  absl::StrAppend(&out, "</svg>");
  return out;
}

// The five phases of a step; `other` is what the orchestrator spent outside
// the four services (sampling, advantages, bookkeeping), never negative.
std::array<double, 5> PhaseSeconds(const StepRecord& s) {
  double known = s.generate_s + s.verify_s + s.train_s + s.sync_s;
  return {s.generate_s, s.verify_s, s.train_s, s.sync_s, std::max(0.0, s.total_s - known)};
}

// One stacked bar per step: where the step's wall time went.
std::string TimeBreakdownChart(const std::vector<const StepRecord*>& steps) {
  // Short title: the legend shares its line.
  const std::string title = "step time (s)";
  if (steps.empty()) return NoData(title);
  double x_lo = static_cast<double>(steps.front()->step);
  double x_hi = static_cast<double>(steps.back()->step);
  double y_hi = 0.0;
  for (const StepRecord* s : steps) {
    double sum = 0.0;
    for (double v : PhaseSeconds(*s)) sum += v;
    y_hi = std::max(y_hi, sum);
  }
  // Bars are centred on their step, so leave half a bar on each side.
  Frame f(x_lo - 0.5, x_hi + 0.5, 0.0, y_hi > 0 ? y_hi * 1.05 : 1.0);
  std::string out = SvgOpen(title);
  absl::StrAppend(&out, Axes(f));
  double bar = std::max(0.5, (f.X(x_lo + 1) - f.X(x_lo)) * 0.8);
  for (const StepRecord* s : steps) {
    double base = 0.0;
    std::array<double, 5> phases = PhaseSeconds(*s);
    for (size_t i = 0; i < phases.size(); ++i) {
      if (!(phases[i] > 0) || !std::isfinite(phases[i])) continue;
      double top = base + phases[i];
      absl::StrAppendFormat(&out,
                            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                            "fill=\"%s\"/>",
                            f.X(static_cast<double>(s->step)) - bar / 2, f.Y(top), bar,
                            f.Y(base) - f.Y(top), kPhases[i].color);
      base = top;
    }
  }
  // Legend along the top right.
  double x = kChartWidth - kMarginRight - 5 * 58;
  for (const Phase& phase : kPhases) {
    absl::StrAppendFormat(&out,
                          "<rect x=\"%.1f\" y=\"8\" width=\"9\" height=\"9\" fill=\"%s\"/>"
                          "<text x=\"%.1f\" y=\"16\" class=\"lg\">%s</text>",
                          x, phase.color, x + 12, phase.name);
    x += 58;
  }
  absl::StrAppend(&out, "</svg>");
  return out;
}

// "generate 52.0% · verify 12.0% ... of 3.2 min; orchestration overhead 5.0%".
std::string TimeSummary(const std::vector<const StepRecord*>& steps) {
  std::array<double, 5> sums{};
  double total = 0.0;
  for (const StepRecord* s : steps) {
    std::array<double, 5> phases = PhaseSeconds(*s);
    for (size_t i = 0; i < phases.size(); ++i) sums[i] += phases[i];
    total += s->total_s;
  }
  if (!(total > 0)) return "<p class=\"time\">No step time recorded.</p>";
  std::string parts;
  for (size_t i = 0; i < sums.size(); ++i) {
    absl::StrAppend(&parts, i ? " &middot; " : "", kPhases[i].name, " ",
                    Fixed(100.0 * sums[i] / total, 1), "%");
  }
  return absl::StrCat("<p class=\"time\">Stage time ", FormatDuration(total), ": ", parts,
                      ". Orchestration overhead (other / total): <b>",
                      Fixed(100.0 * sums[4] / total, 1), "%</b>.</p>");
}

// Background colour of a matrix cell: red (lowest in the matrix) through
// yellow to green (highest), so forgetting stands out down a column.
std::string CellColor(double value, double lo, double hi) {
  double t = hi > lo ? (value - lo) / (hi - lo) : 1.0;
  return absl::StrFormat("hsl(%.0f,65%%,80%%)", 120.0 * std::clamp(t, 0.0, 1.0));
}

const StageRecord* FindStage(const std::vector<StageRecord>& stages, int index) {
  for (const StageRecord& s : stages) {
    if (s.stage_index == index) return &s;
  }
  return nullptr;
}

std::string StageLabel(const std::vector<StageRecord>& stages, int index) {
  const StageRecord* stage = FindStage(stages, index);
  if (stage == nullptr || stage->name.empty()) return absl::StrCat("stage ", index);
  return absl::StrCat("stage ", index, " (", stage->name, ")");
}

constexpr const char* kStyle = R"css(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:8px}
.chart{border:1px solid #e4e4e4;background:#fff}
.chart text{font-size:11px;fill:#444}.chart .ct{font-size:13px;fill:#222;font-weight:600}
.chart .yl{text-anchor:end}.chart .xl{text-anchor:middle}.chart .nodata{text-anchor:middle;fill:#999}
.chart .lg{font-size:10px}
.grid{stroke:#eee}.axis{stroke:#888}
.state-failed,.level-error{color:#b00020;font-weight:600}.level-warning{color:#a66a00}
.state-succeeded{color:#1b7f3b;font-weight:600}
.meta td:first-child{font-weight:600}
)css";

}  // namespace

std::string HtmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

EvalMatrix BuildEvalMatrix(const std::vector<StageRecord>& stages,
                           const std::vector<EvalRecord>& evals) {
  EvalMatrix matrix;
  std::map<int, std::string> domains;
  for (const EvalRecord& e : evals) {
    std::string& name = domains[e.domain_stage_index];
    if (name.empty()) name = e.domain;
  }
  for (const auto& [index, name] : domains) {
    matrix.domain_stage_indices.push_back(index);
    const StageRecord* stage = FindStage(stages, index);
    matrix.domains.push_back(!name.empty()      ? name
                             : stage != nullptr ? stage->domain
                                                : absl::StrCat("stage ", index));
  }
  auto row_at = [&](std::string label, int after, int64_t at_step) {
    EvalMatrix::Row row;
    row.label = std::move(label);
    row.after_stage_index = after;
    row.at_step = at_step;
    row.cells.resize(matrix.domain_stage_indices.size());
    for (const EvalRecord& e : evals) {
      if (e.after_stage_index != after || e.at_step != at_step) continue;
      auto column = std::find(matrix.domain_stage_indices.begin(),
                              matrix.domain_stage_indices.end(), e.domain_stage_index);
      row.cells[column - matrix.domain_stage_indices.begin()] = e.reward_mean;
    }
    return row;
  };

  bool has_baseline = std::any_of(evals.begin(), evals.end(), [](const EvalRecord& e) {
    return e.after_stage_index == 0 && e.at_step == -1;
  });
  if (has_baseline) matrix.rows.push_back(row_at("start", 0, -1));

  // The latest point of each stage; the start-of-stage evaluations (at_step
  // -1) of later stages repeat the previous stage's end and are left out.
  std::map<int, int64_t> latest;
  for (const EvalRecord& e : evals) {
    if (e.at_step < 0) continue;
    auto [it, inserted] = latest.emplace(e.after_stage_index, e.at_step);
    if (!inserted) it->second = std::max(it->second, e.at_step);
  }
  for (const auto& [after, at_step] : latest) {
    std::string label = absl::StrCat("after ", StageLabel(stages, after));
    const StageRecord* stage = FindStage(stages, after);
    if (stage != nullptr && stage->state != "done") {
      absl::StrAppend(&label, ", step ", at_step, ", in progress");
    }
    matrix.rows.push_back(row_at(std::move(label), after, at_step));
  }
  return matrix;
}

std::vector<OwnDomainProgress> BuildOwnDomainProgress(const std::vector<StageRecord>& stages,
                                                      const std::vector<EvalRecord>& evals) {
  std::vector<OwnDomainProgress> out;
  std::vector<StageRecord> ordered = stages;
  std::sort(ordered.begin(), ordered.end(), [](const StageRecord& a, const StageRecord& b) {
    return a.stage_index < b.stage_index;
  });
  for (const StageRecord& stage : ordered) {
    OwnDomainProgress p;
    p.stage_index = stage.stage_index;
    p.name = stage.name;
    p.domain = stage.domain;
    for (const EvalRecord& e : evals) {
      if (e.after_stage_index != stage.stage_index || e.domain_stage_index != stage.stage_index) {
        continue;
      }
      if (e.at_step == -1) {
        p.start = e.reward_mean;
      } else if (e.at_step > p.end_step) {
        p.end_step = e.at_step;
        p.end = e.reward_mean;
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::string RenderReportHtml(const JobRecord& job, const std::vector<StageRecord>& stages,
                             const std::vector<StepRecord>& steps,
                             const std::vector<EvalRecord>& evals,
                             const std::vector<EventRecord>& events) {
  std::string html;
  absl::StrAppend(&html, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
                  "<title>Cascade report: ", HtmlEscape(job.name.empty() ? job.job_id : job.name),
                  "</title><style>", kStyle, "</style></head><body>\n");

  // 1. Job header.
  const std::string state = JobStateName(job.state);
  absl::StrAppend(&html, "<h1>", HtmlEscape(job.name.empty() ? "(unnamed job)" : job.name),
                  "</h1>\n<table class=\"meta\">", "<tr><td>job id</td><td>",
                  HtmlEscape(job.job_id), "</td></tr>", "<tr><td>state</td><td class=\"state-",
                  state, "\">", state, "</td></tr>");
  if (!job.error.empty()) {
    absl::StrAppend(&html, "<tr><td>error</td><td class=\"state-failed\">", HtmlEscape(job.error),
                    "</td></tr>");
  }
  absl::StrAppend(&html, "<tr><td>created</td><td>", FormatUnixTime(job.created_at),
                  "</td></tr><tr><td>updated</td><td>", FormatUnixTime(job.updated_at),
                  "</td></tr>");
  if (job.updated_at > job.created_at && job.created_at > 0) {
    absl::StrAppend(&html, "<tr><td>elapsed</td><td>",
                    FormatDuration(job.updated_at - job.created_at), "</td></tr>");
  }
  if (!job.source.empty()) {
    absl::StrAppend(&html, "<tr><td>config</td><td>", HtmlEscape(job.source), "</td></tr>");
  }
  if (!job.output_dir.empty()) {
    absl::StrAppend(&html, "<tr><td>output</td><td>", HtmlEscape(job.output_dir), "</td></tr>");
  }
  absl::StrAppend(&html, "</table>\n");

  // Steps grouped by stage, each group in step order. Stages with steps but
  // no stage row still get a section.
  std::map<int, std::vector<const StepRecord*>> by_stage;
  for (const StageRecord& s : stages) by_stage[s.stage_index];
  for (const StepRecord& s : steps) by_stage[s.stage_index].push_back(&s);
  for (auto& [index, group] : by_stage) {
    std::sort(group.begin(), group.end(),
              [](const StepRecord* a, const StepRecord* b) { return a->step < b->step; });
  }

  // 2. Stage overview.
  if (!by_stage.empty()) {
    absl::StrAppend(&html,
                    "<h2>Stages</h2>\n<table><tr><th>#</th><th>name</th><th>domain</th>"
                    "<th>kind</th><th>state</th><th>steps</th><th>policy versions</th>"
                    "<th>last reward</th></tr>");
    for (const auto& [index, group] : by_stage) {
      const StageRecord* stage = FindStage(stages, index);
      std::string total =
          stage != nullptr && stage->total_steps > 0 ? absl::StrCat(" / ", stage->total_steps) : "";
      std::string versions =
          stage == nullptr || stage->start_version < 0
              ? "-"
              : absl::StrCat(stage->start_version, " &rarr; ",
                             stage->end_version >= 0 ? absl::StrCat(stage->end_version) : "…");
      absl::StrAppend(&html, "<tr><td>", index, "</td><td>", stage ? HtmlEscape(stage->name) : "",
                      "</td><td>", stage ? HtmlEscape(stage->domain) : "", "</td><td>",
                      stage ? HtmlEscape(stage->kind) : "", "</td><td>",
                      stage ? HtmlEscape(stage->state) : "", "</td><td class=\"num\">",
                      group.size(), total, "</td><td>", versions, "</td><td class=\"num\">",
                      group.empty() ? "-" : Fixed(group.back()->reward_mean, 3), "</td></tr>");
    }
    absl::StrAppend(&html, "</table>\n");
  }

  // 3. Per-stage charts.
  for (const auto& [index, group] : by_stage) {
    absl::StrAppend(&html, "<h2>", HtmlEscape(StageLabel(stages, index)), "</h2>\n");
    std::vector<Point> reward, length, filtered, truncated;
    for (const StepRecord* s : group) {
      double x = static_cast<double>(s->step);
      reward.push_back({x, s->reward_mean, s->reward_std});
      length.push_back({x, s->response_tokens_mean});
      filtered.push_back({x, s->filtered_fraction});
      truncated.push_back({x, s->truncation_rate});
    }
    absl::StrAppend(&html, "<div class=\"charts\">",
                    LineChart("mean reward (band: ±std)", "#4e79a7", reward, /*with_band=*/true),
                    LineChart("response length (mean tokens)", "#e15759", length, false),
                    LineChart("filtered fraction", "#76b7b2", filtered, false),
                    LineChart("truncation rate", "#edc948", truncated, false),
                    TimeBreakdownChart(group), "</div>\n", TimeSummary(group), "\n");
  }

  // 4. Cross-stage eval matrix and own-domain progress.
  EvalMatrix matrix = BuildEvalMatrix(stages, evals);
  absl::StrAppend(&html, "<h2>Evaluation across the cascade</h2>\n");
  if (matrix.rows.empty()) {
    absl::StrAppend(&html, "<p>No evaluations recorded.</p>\n");
  } else {
    double lo = INFINITY, hi = -INFINITY;
    for (const EvalMatrix::Row& row : matrix.rows) {
      for (const std::optional<double>& cell : row.cells) {
        if (cell && std::isfinite(*cell)) {
          lo = std::min(lo, *cell);
          hi = std::max(hi, *cell);
        }
      }
    }
    absl::StrAppend(&html, "<table class=\"matrix\"><tr><th>eval reward</th>");
    for (const std::string& domain : matrix.domains) {
      absl::StrAppend(&html, "<th>", HtmlEscape(domain), "</th>");
    }
    absl::StrAppend(&html, "</tr>");
    for (const EvalMatrix::Row& row : matrix.rows) {
      absl::StrAppend(&html, "<tr><th>", HtmlEscape(row.label), "</th>");
      for (const std::optional<double>& cell : row.cells) {
        if (!cell || !std::isfinite(*cell)) {
          absl::StrAppend(&html, "<td class=\"num\">-</td>");
        } else {
          absl::StrAppend(&html, "<td class=\"num\" style=\"background:", CellColor(*cell, lo, hi),
                          "\">", Fixed(*cell, 3), "</td>");
        }
      }
      absl::StrAppend(&html, "</tr>");
    }
    absl::StrAppend(&html, "</table>\n");
  }
  std::vector<OwnDomainProgress> progress = BuildOwnDomainProgress(stages, evals);
  if (!progress.empty()) {
    absl::StrAppend(&html, "<ul class=\"progress\">");
    for (const OwnDomainProgress& p : progress) {
      std::string change = p.start && p.end ? absl::StrCat(" (", *p.end >= *p.start ? "+" : "",
                                                           Fixed(*p.end - *p.start, 3), ")")
                                            : "";
      absl::StrAppend(&html, "<li>", HtmlEscape(StageLabel(stages, p.stage_index)),
                      ": eval reward on its own domain (", HtmlEscape(p.domain),
                      "): ", p.start ? Fixed(*p.start, 3) : "n/a", " &rarr; ",
                      p.end ? Fixed(*p.end, 3) : "n/a", change, "</li>");
    }
    absl::StrAppend(&html, "</ul>\n");
  }

  // 5. Events.
  absl::StrAppend(&html, "<h2>Events</h2>\n");
  if (events.empty()) {
    absl::StrAppend(&html, "<p>No events recorded.</p>\n");
  } else {
    std::vector<const EventRecord*> ordered;
    for (const EventRecord& e : events) ordered.push_back(&e);
    std::sort(ordered.begin(), ordered.end(),
              [](const EventRecord* a, const EventRecord* b) { return a->sequence < b->sequence; });
    absl::StrAppend(&html,
                    "<table class=\"events\"><tr><th>time</th><th>level</th>"
                    "<th>message</th></tr>");
    for (const EventRecord* e : ordered) {
      const std::string level = HtmlEscape(e->level);
      absl::StrAppend(&html, "<tr><td>", FormatUnixTime(e->time), "</td><td class=\"level-", level,
                      "\">", level, "</td><td>", HtmlEscape(e->message), "</td></tr>");
    }
    absl::StrAppend(&html, "</table>\n");
  }
  absl::StrAppend(&html, "</body></html>\n");
  return html;
}

}  // namespace cascade::orchestrator
