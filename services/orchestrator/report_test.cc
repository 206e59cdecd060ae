#include "services/orchestrator/report.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <regex>
#include <string>
#include <vector>

namespace cascade::orchestrator {
namespace {

// Two stages: IF-RL (3 steps), then math (2 steps) whose name carries markup.
struct Fixture {
  JobRecord job;
  std::vector<StageRecord> stages;
  std::vector<StepRecord> steps;
  std::vector<EvalRecord> evals;
  std::vector<EventRecord> events;
};

constexpr const char* kEvilName = "math <script>alert('x')</script> & more";

EvalRecord Eval(int after, int64_t at_step, int domain, double reward) {
  EvalRecord e;
  e.after_stage_index = after;
  e.at_step = at_step;
  e.domain_stage_index = domain;
  e.domain = domain == 0 ? "if" : "math";
  e.reward_mean = reward;
  e.samples = 32;
  return e;
}

Fixture MakeFixture() {
  Fixture f;
  f.job.job_id = "job-20250101-120000-abcd";
  f.job.name = "tiny cascade";
  f.job.state = JobState::kFailed;
  f.job.error = "verifier unreachable for 120 s";
  f.job.created_at = 1735732800.0;
  f.job.updated_at = 1735736400.0;

  StageRecord if_rl;
  if_rl.stage_index = 0;
  if_rl.name = "if-rl";
  if_rl.domain = "if";
  if_rl.kind = "grpo";
  if_rl.total_steps = 3;
  if_rl.state = "done";
  StageRecord math;
  math.stage_index = 1;
  math.name = kEvilName;
  math.domain = "math";
  math.kind = "grpo";
  math.total_steps = 2;
  math.state = "done";
  f.stages = {if_rl, math};

  for (int stage = 0; stage < 2; ++stage) {
    for (int64_t step = 0; step < 3 - stage; ++step) {
      StepRecord s;
      s.stage_index = stage;
      s.step = step;
      s.reward_mean = 0.2 + 0.1 * static_cast<double>(step);
      s.reward_std = 0.05;
      s.filtered_fraction = 0.25;
      s.response_tokens_mean = 100.0 + 10.0 * static_cast<double>(step);
      s.truncation_rate = 0.1;
      // 40% generate, 10% verify, 20% train, 10% sync, 20% other.
      s.generate_s = 4.0;
      s.verify_s = 1.0;
      s.train_s = 2.0;
      s.sync_s = 1.0;
      s.total_s = 10.0;
      f.steps.push_back(s);
    }
  }

  f.evals = {
      // Baseline: the "start" row.
      Eval(0, -1, 0, 0.100),
      Eval(0, -1, 1, 0.200),
      // A mid-stage evaluation that the matrix must not use.
      Eval(0, 1, 0, 0.300),
      Eval(0, 1, 1, 0.180),
      // End of stage 0.
      Eval(0, 3, 0, 0.400),
      Eval(0, 3, 1, 0.150),
      // Start of stage 1 (repeats the end of stage 0 in practice).
      Eval(1, -1, 0, 0.410),
      Eval(1, -1, 1, 0.155),
      // End of stage 1.
      Eval(1, 2, 0, 0.350),
      Eval(1, 2, 1, 0.600),
  };

  EventRecord e1;
  e1.sequence = 2;
  e1.time = 1735736000.0;
  e1.level = "error";
  e1.message = "verifier <down>";
  EventRecord e0;
  e0.sequence = 1;
  e0.time = 1735732801.0;
  e0.level = "info";
  e0.message = "stage 0 started";
  f.events = {e1, e0};
  return f;
}

std::string Render(const Fixture& f) {
  return RenderReportHtml(f.job, f.stages, f.steps, f.evals, f.events);
}

// The text of every cell of the first table with `table_class`, in order.
std::vector<std::string> TableCells(const std::string& html, const std::string& table_class) {
  size_t begin = html.find("<table class=\"" + table_class + "\">");
  REQUIRE(begin != std::string::npos);
  size_t end = html.find("</table>", begin);
  REQUIRE(end != std::string::npos);
  std::string table = html.substr(begin, end - begin);
  std::vector<std::string> cells;
  std::regex cell(R"(<t[hd][^>]*>([^<]*)</t[hd]>)");
  for (auto it = std::sregex_iterator(table.begin(), table.end(), cell);
       it != std::sregex_iterator(); ++it) {
    cells.push_back((*it)[1].str());
  }
  return cells;
}

TEST_CASE("the eval matrix has a start row and one end row per stage") {
  Fixture f = MakeFixture();
  EvalMatrix m = BuildEvalMatrix(f.stages, f.evals);
  CHECK(m.domain_stage_indices == std::vector<int>{0, 1});
  CHECK(m.domains == std::vector<std::string>{"if", "math"});
  REQUIRE(m.rows.size() == 3);
  CHECK(m.rows[0].label == "start");
  CHECK(m.rows[0].at_step == -1);
  CHECK(m.rows[1].label == "after stage 0 (if-rl)");
  CHECK(m.rows[1].at_step == 3);
  CHECK(m.rows[2].label == std::string("after stage 1 (") + kEvilName + ")");
  CHECK(m.rows[2].at_step == 2);
  std::vector<std::vector<double>> want = {{0.100, 0.200}, {0.400, 0.150}, {0.350, 0.600}};
  for (size_t r = 0; r < want.size(); ++r) {
    REQUIRE(m.rows[r].cells.size() == 2);
    for (size_t c = 0; c < 2; ++c) {
      REQUIRE(m.rows[r].cells[c].has_value());
      CHECK(*m.rows[r].cells[c] == Approx(want[r][c]));
    }
  }
}

TEST_CASE("the eval matrix marks a stage in progress and leaves missing cells empty") {
  Fixture f = MakeFixture();
  f.stages[1].state = "running";
  f.evals.pop_back();  // stage 1's math evaluation at step 2 is not in yet
  EvalMatrix m = BuildEvalMatrix(f.stages, f.evals);
  REQUIRE(m.rows.size() == 3);
  CHECK(m.rows[2].label == std::string("after stage 1 (") + kEvilName + "), step 2, in progress");
  REQUIRE(m.rows[2].cells[0].has_value());
  CHECK(*m.rows[2].cells[0] == Approx(0.350));
  CHECK(!m.rows[2].cells[1].has_value());
}

TEST_CASE("each stage's own-domain progress runs from its start eval to its latest") {
  Fixture f = MakeFixture();
  std::vector<OwnDomainProgress> p = BuildOwnDomainProgress(f.stages, f.evals);
  REQUIRE(p.size() == 2);
  CHECK(p[0].stage_index == 0);
  REQUIRE((p[0].start && p[0].end));
  CHECK(*p[0].start == Approx(0.100));
  CHECK(*p[0].end == Approx(0.400));
  CHECK(p[0].end_step == 3);
  REQUIRE((p[1].start && p[1].end));
  CHECK(*p[1].start == Approx(0.155));
  CHECK(*p[1].end == Approx(0.600));
}

TEST_CASE("the page shows the matrix cells in row and column order") {
  std::string html = Render(MakeFixture());
  std::vector<std::string> cells = TableCells(html, "matrix");
  const std::string evil = "math &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more";
  std::vector<std::string> want = {"eval reward",
                                   "if",
                                   "math",
                                   "start",
                                   "0.100",
                                   "0.200",
                                   "after stage 0 (if-rl)",
                                   "0.400",
                                   "0.150",
                                   "after stage 1 (" + evil + ")",
                                   "0.350",
                                   "0.600"};
  CHECK(cells == want);
  // The lowest value is red, the highest green.
  CHECK(html.find("background:hsl(0,65%,80%)\">0.100<") != std::string::npos);
  CHECK(html.find("background:hsl(120,65%,80%)\">0.600<") != std::string::npos);
}

TEST_CASE("the page gives start and end of each stage on its own domain") {
  std::string html = Render(MakeFixture());
  CHECK(html.find("stage 0 (if-rl): eval reward on its own domain (if): 0.100 &rarr; 0.400 "
                  "(+0.300)") != std::string::npos);
  CHECK(html.find("eval reward on its own domain (math): 0.155 &rarr; 0.600 (+0.445)") !=
        std::string::npos);
}

TEST_CASE("the page splits stage time into phases and names the orchestration overhead") {
  std::string html = Render(MakeFixture());
  CHECK(html.find("Stage time 30.0 s: generate 40.0% &middot; verify 10.0% &middot; train "
                  "20.0% &middot; sync 10.0% &middot; other 20.0%. Orchestration overhead "
                  "(other / total): <b>20.0%</b>") != std::string::npos);
  CHECK(html.find("Stage time 20.0 s:") != std::string::npos);
  // Two stages, five charts each.
  size_t charts = 0;
  for (size_t at = html.find("<svg "); at != std::string::npos; at = html.find("<svg ", at + 1)) {
    ++charts;
  }
  CHECK(charts == 10);
}

TEST_CASE("the page shows the job header and events oldest first") {
  std::string html = Render(MakeFixture());
  CHECK(html.find("<h1>tiny cascade</h1>") != std::string::npos);
  CHECK(html.find("job-20250101-120000-abcd") != std::string::npos);
  CHECK(html.find(">failed<") != std::string::npos);
  CHECK(html.find("verifier unreachable for 120 s") != std::string::npos);
  CHECK(html.find("2025-01-01 12:00:00 UTC") != std::string::npos);
  std::vector<std::string> cells = TableCells(html, "events");
  REQUIRE(cells.size() == 9);
  CHECK(cells[4] == "info");
  CHECK(cells[5] == "stage 0 started");
  CHECK(cells[7] == "error");
  CHECK(cells[8] == "verifier &lt;down&gt;");
}

TEST_CASE("strings from the records are escaped so markup in a name stays text") {
  std::string html = Render(MakeFixture());
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more") !=
        std::string::npos);
  CHECK(HtmlEscape("a<b>&\"c'") == "a&lt;b&gt;&amp;&quot;c&#39;");
}

TEST_CASE("the page is self-contained: no external references") {
  std::string html = Render(MakeFixture());
  CHECK(html.find("http://") == std::string::npos);
  CHECK(html.find("https://") == std::string::npos);
  CHECK(html.find("<link") == std::string::npos);
  CHECK(html.find(" src=") == std::string::npos);
  CHECK(html.find("@import") == std::string::npos);
  CHECK(html.find("<svg ") != std::string::npos);
}

TEST_CASE("a job without steps, evaluations or events still renders") {
  JobRecord job;
  job.job_id = "job-empty";
  std::string html = RenderReportHtml(job, {}, {}, {}, {});
  CHECK(html.find("job-empty") != std::string::npos);
  CHECK(html.find("No evaluations recorded.") != std::string::npos);
  CHECK(html.find("No events recorded.") != std::string::npos);
  CHECK(html.find("</html>") != std::string::npos);

  // Stages declared but not started: empty charts say so.
  Fixture f = MakeFixture();
  html = RenderReportHtml(job, f.stages, {}, {}, {});
  CHECK(html.find("no steps recorded") != std::string::npos);
  CHECK(html.find("No step time recorded.") != std::string::npos);
}

TEST_CASE("non-finite metrics are skipped instead of breaking the charts") {
  Fixture f = MakeFixture();
  f.steps[1].reward_mean = std::nan("");
  f.steps[2].response_tokens_mean = INFINITY;
  std::string html = Render(f);
  // printf spells non-finite doubles "nan" and "inf"; as whole words they
  // would only appear in broken SVG coordinates or labels.
  CHECK(!std::regex_search(html, std::regex("[^a-z](nan|inf)[^a-z]")));
  // The remaining points are still drawn.
  CHECK(html.find("<polyline") != std::string::npos);
}

}  // namespace
}  // namespace cascade::orchestrator
