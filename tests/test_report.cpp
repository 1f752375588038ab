// The HTML run report (report/html_report.h): sections, inline SVG, markdown tables,
// escaping, no scripts, and errors that name the file (and line) at fault.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "core/fs.h"
#include "error_util.h"
#include "report/html_report.h"

namespace {

namespace sfs = std::filesystem;
using lt2::test::contains;
using lt2::test::error_of;

size_t count(const std::string& s, const std::string& part) {
  size_t n = 0;
  for (size_t p = s.find(part); p != std::string::npos; p = s.find(part, p + part.size())) ++n;
  return n;
}

const char* kConfig = R"({
  "model": {"model_type": "lt2", "hidden_size": 32, "num_loops": 2, "layer_types": ["gdn", "full"],
            "note": "a <b> & c > d"},
  "train": {"batch_size": 4, "steps": 20, "lr": 0.003}
})";

const char* kMetrics =
    "{\"step\":0,\"val_loss\":5.5,\"val_ppl\":244.7,\"val_accuracy\":0}\n"
    "{\"step\":1,\"loss\":5.56,\"lr\":0.0006,\"grad_norm\":1.12,\"tokens_per_s\":1000}\n"
    "{\"step\":2,\"loss\":5.0,\"lr\":0.0012,\"grad_norm\":1.5,\"tokens_per_s\":3000}\n"
    "\n"
    "{\"step\":3,\"loss\":4.25,\"lr\":0.0018,\"grad_norm\":0.9,\"tokens_per_s\":2000}\n"
    "{\"step\":3,\"val_loss\":4.125,\"val_ppl\":61.87,\"val_accuracy\":0.375}\n";

const char* kEvalSvg =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<svg xmlns='http://www.w3.org/2000/svg' width='200' height='100'>"
    "<rect class='cell' id='niah-cell' width='10' height='10' fill='#00ff00'/>"
    "<script>alert(1)</script>"
    "<text onclick=\"alert(2)\">NIAH</text></svg>\n";

const char* kEvalMd =
    "# NIAH accuracy\n\n"
    "Exact-match retrieval of the needle.\n\n"
    "| context | depth 0% | depth 50% |\n"
    "|---|:---:|---:|\n"
    "| 256 | 100% | 75% |\n"
    "| 1024 | 50% | a\\|b |\n";

class Report : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (sfs::temp_directory_path() / "lt2_report_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    sfs::remove_all(dir_, ec);
  }
  void write(const std::string& rel, const std::string& text) {
    sfs::create_directories(sfs::path(dir_ + "/" + rel).parent_path());
    lt2::fs::write_file_atomic(dir_ + "/" + rel, text);
  }
  void write_run(bool with_eval = true) {
    write("run_config.json", kConfig);
    write("metrics.jsonl", kMetrics);
    if (with_eval) {
      write("eval/niah.svg", kEvalSvg);
      write("eval/niah.md", kEvalMd);
    }
  }
  std::string dir_;
};

TEST_F(Report, HasSectionsChartsAndSummary) {
  write_run();
  const std::string h = lt2::report::build_run_report(dir_);
  EXPECT_EQ(h.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_TRUE(contains(h, "<title>lt2 run report: " + dir_ + "</title>"));
  EXPECT_TRUE(contains(h, "<h1>Run report: " + dir_ + "</h1>"));
  for (const char* s : {"<h2>Summary</h2>", "<h2>Training curves</h2>", "<h2>Evaluation</h2>", "<h2>Configuration</h2>",
                        "<h3>model</h3>", "<h3>train</h3>"})
    EXPECT_TRUE(contains(h, s));
  // Chart titles (train + validation loss, grad norm, lr, and the optional ones with data).
  for (const char* s : {">Loss<", ">Gradient norm<", ">Learning rate<", ">Validation accuracy<", ">Throughput<",
                        ">train<", ">validation<"})
    EXPECT_TRUE(contains(h, s)) << s;
  // Summary: last step 3, final loss 4.25, best val loss 4.125 (ppl 61.87) at step 3,
  // best accuracy 0.375, median tokens/s 2000, planned steps from the config.
  for (const char* s : {">3<", "of 20 planned", "4.2500", "4.1250", "61.87", "0.375", ">2000<", "median of 3 steps"})
    EXPECT_TRUE(contains(h, s)) << s;
  // Config rendered as a table; arrays compact JSON.
  EXPECT_TRUE(contains(h, "<td>hidden_size</td><td><code>32</code></td>"));
  EXPECT_TRUE(contains(h, "[&quot;gdn&quot;,&quot;full&quot;]"));
}

TEST_F(Report, SelfContainedAndBalanced) {
  write_run();
  const std::string h = lt2::report::build_run_report(dir_);
  EXPECT_EQ(count(h, "<script"), 0u);
  EXPECT_EQ(count(h, "onclick"), 0u);
  EXPECT_EQ(count(h, "<?xml"), 0u);
  EXPECT_EQ(count(h, "<link"), 0u);
  EXPECT_EQ(count(h, "src="), 0u);
  EXPECT_EQ(count(h, "http://"), count(h, "xmlns='http://www.w3.org/2000/svg'"));  // only SVG namespaces
  EXPECT_EQ(count(h, "<svg"), count(h, "</svg>"));
  EXPECT_EQ(count(h, "<svg"), 6u);  // 5 charts + the eval heatmap
  EXPECT_EQ(count(h, "<table"), count(h, "</table>"));
  EXPECT_EQ(count(h, "<table"), 3u);  // model, train, the markdown table
  EXPECT_EQ(count(h, "<html"), 1u);
  EXPECT_EQ(count(h, "</html>"), 1u);
}

TEST_F(Report, EmbedsEvalSvgAndMarkdownTable) {
  write_run();
  const std::string h = lt2::report::build_run_report(dir_);
  EXPECT_TRUE(contains(h, "<h3>niah</h3>"));
  EXPECT_TRUE(contains(h, "<rect class='cell' id='niah-cell' width='10' height='10' fill='#00ff00'/>"));
  EXPECT_TRUE(contains(h, "<text>NIAH</text>"));
  EXPECT_TRUE(contains(h, "<h3>NIAH accuracy</h3>"));
  EXPECT_TRUE(contains(h, "<p>Exact-match retrieval of the needle.</p>"));
  EXPECT_TRUE(contains(h, "<thead><tr><th>context</th><th style='text-align:center'>depth 0%</th>"
                          "<th style='text-align:right'>depth 50%</th></tr></thead>"));
  EXPECT_TRUE(contains(h, "<tr><td>256</td><td style='text-align:center'>100%</td><td style='text-align:right'>75%</td></tr>"));
  EXPECT_TRUE(contains(h, "<td style='text-align:right'>a|b</td>"));
  // The SVG precedes its table.
  EXPECT_LT(h.find("niah-cell"), h.find("<th>context</th>"));
}

TEST_F(Report, NoEvalDirectoryNoEvalSection) {
  write_run(false);
  const std::string h = lt2::report::build_run_report(dir_ + "/");
  EXPECT_FALSE(contains(h, "<h2>Evaluation</h2>"));
  EXPECT_TRUE(contains(h, "<h1>Run report: " + dir_ + "</h1>"));
}

TEST_F(Report, EscapesConfigStrings) {
  write_run(false);
  const std::string h = lt2::report::build_run_report(dir_);
  EXPECT_TRUE(contains(h, "<td>note</td><td><code>a &lt;b&gt; &amp; c &gt; d</code></td>"));
  EXPECT_FALSE(contains(h, "a <b> & c"));
  EXPECT_FALSE(contains(h, "<b>"));
}

TEST_F(Report, MalformedMetricsLineNamesFileAndLine) {
  write("run_config.json", kConfig);
  const std::string m = dir_ + "/metrics.jsonl";
  write("metrics.jsonl", "{\"step\":1,\"loss\":2}\n{\"step\":2,\"loss\":\n");
  EXPECT_TRUE(contains(error_of([&] { lt2::report::build_run_report(dir_); }), m + ":2:"));
  write("metrics.jsonl", "{\"step\":1,\"loss\":2}\n\n{\"step\":3,\"loss\":\"high\"}\n");
  std::string e = error_of([&] { lt2::report::build_run_report(dir_); });
  EXPECT_TRUE(contains(e, m + ":3: field 'loss': expected a number, got a string"));
  write("metrics.jsonl", "{\"loss\":2}\n");
  EXPECT_TRUE(contains(error_of([&] { lt2::report::build_run_report(dir_); }), m + ":1: missing field 'step'"));
  write("metrics.jsonl", "{\"step\":1.5}\n");
  EXPECT_TRUE(contains(error_of([&] { lt2::report::build_run_report(dir_); }), m + ":1: field 'step'"));
  write("metrics.jsonl", "[1,2]\n");
  EXPECT_TRUE(contains(error_of([&] { lt2::report::build_run_report(dir_); }), m + ":1: expected a JSON object"));
}

TEST_F(Report, MissingFilesGiveClearErrors) {
  std::string e = error_of([&] { lt2::report::build_run_report(dir_ + "/nope"); });
  EXPECT_TRUE(contains(e, "run directory " + dir_ + "/nope does not exist"));
  write("metrics.jsonl", kMetrics);
  e = error_of([&] { lt2::report::build_run_report(dir_); });
  EXPECT_TRUE(contains(e, dir_ + "/run_config.json does not exist"));
  sfs::remove(dir_ + "/metrics.jsonl");
  write("run_config.json", kConfig);
  e = error_of([&] { lt2::report::build_run_report(dir_); });
  EXPECT_TRUE(contains(e, dir_ + "/metrics.jsonl does not exist"));
  write("metrics.jsonl", kMetrics);
  write("run_config.json", "{\"model\": }");
  e = error_of([&] { lt2::report::build_run_report(dir_); });
  EXPECT_TRUE(contains(e, dir_ + "/run_config.json:1:"));
}

TEST_F(Report, EmptyMetricsStillRenders) {
  write("run_config.json", kConfig);
  write("metrics.jsonl", "");
  const std::string h = lt2::report::build_run_report(dir_);
  EXPECT_TRUE(contains(h, "no data"));
  EXPECT_EQ(count(h, "<svg"), count(h, "</svg>"));
}

TEST(ReportMarkdown, PipesWithoutSeparatorAreNotATable) {
  const std::string h = lt2::report::markdown_to_html("| a | b |\n| c | d |\n");
  EXPECT_FALSE(contains(h, "<table"));
  EXPECT_TRUE(contains(h, "<pre>| a | b |\n| c | d |\n</pre>"));
}

TEST(ReportSvg, SanitizeStripsScriptsAndProlog) {
  const std::string s = lt2::report::sanitize_svg(
      "<!DOCTYPE svg><svg a='1'><SCRIPT type='x'>bad()</SCRIPT><g onload='x()' id='k'/><a href='javascript:x()'/></svg>");
  EXPECT_EQ(s, "<svg a='1'><g id='k'/><a href='x()'/></svg>");
  EXPECT_TRUE(contains(error_of([] { lt2::report::sanitize_svg("<html/>"); }), "no <svg> element"));
}

}  // namespace
