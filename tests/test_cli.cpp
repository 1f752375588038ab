// The real CLI: a tiny end-to-end run, and bad input giving one clear message + non-zero exit.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli_util.h"
#include "core/fs.h"
#include "core/json.h"

using namespace lt2;
using namespace lt2::test;
namespace stdfs = std::filesystem;

namespace {
std::string g_dir, g_text, g_run;

void write(const std::string& path, const std::string& s) { std::ofstream(path, std::ios::binary) << s; }

// Expects failure: non-zero exit, exactly one "error:" line containing `phrase`, no crash.
void expect_error(const std::string& args, const std::string& phrase) {
  const RunResult r = run_lt2(args);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
  EXPECT_NE(r.out.find("error: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(phrase), std::string::npos) << "expected '" << phrase << "' in:\n" << r.out;
  size_t count = 0;
  for (size_t p = r.out.find("error: "); p != std::string::npos; p = r.out.find("error: ", p + 1)) ++count;
  EXPECT_EQ(count, 1u) << r.out;
}

// A copy of the trained checkpoint with its model.safetensors replaced by `bytes`.
std::string corrupt_copy(const std::string& name, const std::string& bytes) {
  const std::string d = g_dir + "/" + name;
  stdfs::create_directories(d);
  stdfs::copy_file(g_run + "/config.json", d + "/config.json", stdfs::copy_options::overwrite_existing);
  write(d + "/model.safetensors", bytes);
  return d;
}
}  // namespace

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_dir = (stdfs::temp_directory_path() / ("lt2_cli_" + std::to_string(getpid()))).string();
    stdfs::remove_all(g_dir);
    stdfs::create_directories(g_dir);
    g_text = g_dir + "/text.txt";
    std::string s;
    for (int i = 0; i < 200; ++i) s += "A small text to train on, line " + std::to_string(i % 13) + ".\n\n";
    write(g_text, s);
    const RunResult r = run_lt2("train --config tiny --steps 4 --data " + g_text + " --out " + g_dir + "/run");
    ASSERT_EQ(r.code, 0) << r.out;
    g_run = g_dir + "/run/checkpoint-000004";
  }
  static void TearDownTestSuite() { stdfs::remove_all(g_dir); }
};

TEST_F(Cli, TrainWritesCheckpointMetricsAndResumes) {
  for (const char* f : {"config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"})
    EXPECT_TRUE(fs::exists(g_run + "/" + f)) << f;
  const std::string metrics = fs::read_file(g_dir + "/run/metrics.jsonl");
  EXPECT_NE(metrics.find("\"val_loss\""), std::string::npos);
  EXPECT_NE(metrics.find("\"tokens_per_s\""), std::string::npos);
  // A second train into the same directory refuses to clobber it.
  expect_error("train --config tiny --steps 4 --data " + g_text + " --out " + g_dir + "/run", "already holds a run");
  // Resume extends the run to 6 steps.
  stdfs::copy(g_dir + "/run", g_dir + "/run2", stdfs::copy_options::recursive);
  const RunResult r = run_lt2("train --resume " + g_dir + "/run2 --steps 6");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("resumed"), std::string::npos);
  EXPECT_TRUE(fs::exists(g_dir + "/run2/checkpoint-000006/model.safetensors"));
}

TEST_F(Cli, EvalGenerateInfo) {
  RunResult r = run_lt2("eval ppl --model " + g_dir + "/run --data " + g_text + " --seq-len 32 --max-batches 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"ppl\""), std::string::npos) << r.out;
  r = run_lt2("generate --model " + g_dir + "/run --prompt 'A small' --max-tokens 5 --temperature 0");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("A small", 0), 0u) << r.out;
  r = run_lt2("info --config small-125m --context 8192");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("parameters"), std::string::npos);
  r = run_lt2("--help");
  EXPECT_EQ(r.code, 0);
  r = run_lt2("train --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--resume"), std::string::npos);
}

// Conversion of the trained full-attention model into a GDN+DSA one, then indexer stage 1.
TEST_F(Cli, ConvertFullAttentionToDsaThenTrainTheIndexer) {
  const std::string tiny = R"("vocab_size": 256, "hidden_size": 32, "num_hidden_layers": 2, "num_loops": 2,
      "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
      "gdn_num_heads": 2, "gdn_head_k_dim": 16, "gdn_head_v_dim": 32, "max_position_embeddings": 256)";
  const std::string cfg = g_dir + "/dsa.json";
  write(cfg, R"J({"model": {"pattern": "gdn,dsa(8)", "dsa_index_heads": 2, "dsa_index_head_dim": 8, )J" + tiny +
                 R"J(}, "train": {"batch_size": 4, "seq_len": 32, "steps": 3, "dsa_warmup_steps": 3, "eval_every": 3,
                 "eval_batches": 1, "save_every": 3}})J");
  const std::string conv = g_dir + "/converted";
  RunResult r = run_lt2("convert --from " + g_dir + "/run --config " + cfg + " --out " + conv);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("new (initialised): model.layers.1.attn.indexer.q_proj.weight"), std::string::npos) << r.out;
  r = run_lt2("eval diag --model " + conv + " --data " + g_text + " --seq-len 32 --batches 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("top-k share of dense attention"), std::string::npos) << r.out;
  r = run_lt2("train --config " + cfg + " --init-from " + conv + " --data " + g_text + " --out " + g_dir + "/dsa_run");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("init: 36 of 36 tensors"), std::string::npos) << r.out;
  const std::string metrics = fs::read_file(g_dir + "/dsa_run/metrics.jsonl");
  EXPECT_NE(metrics.find("\"indexer_kl\""), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"dsa_stage\":1"), std::string::npos) << metrics;
  r = run_lt2("generate --model " + g_dir + "/dsa_run --prompt 'A small' --max-tokens 5 --temperature 0");
  ASSERT_EQ(r.code, 0) << r.out;
  // --out with a trailing slash names the directory itself (replacing it with --overwrite).
  r = run_lt2("convert --from " + g_dir + "/run --config " + cfg + " --out " + conv + "/ --overwrite");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(conv + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(conv + ".tmp") || fs::exists(conv + ".old") || fs::exists(conv + "/.tmp"));
  // Bad conversions: the target exists, a shape that differs, a tensor the target lacks.
  expect_error("convert --from " + g_dir + "/run --config " + cfg + " --out " + conv, "already exists");
  const std::string wide = g_dir + "/wide.json";
  write(wide, R"({"model": {"pattern": "gdn,full", "num_hidden_layers": 2, "hidden_size": 48}})");
  expect_error("convert --from " + g_dir + "/run --config " + wide + " --out " + g_dir + "/c2", "has shape");
  const std::string back = g_dir + "/back.json";
  write(back, R"({"model": {"pattern": "gdn,full", )" + tiny + "}}");
  expect_error("convert --from " + conv + " --config " + back + " --out " + g_dir + "/c3", "unexpected tensor");
  expect_error("convert --from " + conv + " --out " + g_dir + "/c4", "--from, --config and --out are required");
}

TEST_F(Cli, BadFlagsAndCommands) {
  expect_error("train --bogus 3", "unknown flag '--bogus'");
  expect_error("train --steps abc", "expects an integer");
  expect_error("generate --model " + g_dir + "/run --prompt x --temperature -1", "temperature must be >= 0");
  expect_error("generate --prompt x", "--model DIR is required");
  const RunResult r = run_lt2("frobnicate");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unknown command"), std::string::npos);
}

TEST_F(Cli, GenerateBatchStopsAndLimits) {
  const std::string model = " --model " + g_dir + "/run --temperature 0 --max-tokens 12";
  // A batch from a prompts file gives the same greedy text as each prompt alone.
  const std::string pf = g_dir + "/prompts.txt";
  write(pf, "A small\nline 1\n");
  RunResult batch = run_lt2("generate" + model + " --prompts " + pf);
  ASSERT_EQ(batch.code, 0) << batch.out;
  for (const char* p : {"A small", "line 1"}) {
    const RunResult one = run_lt2("generate" + model + " --prompt '" + p + "'");
    ASSERT_EQ(one.code, 0) << one.out;
    EXPECT_NE(batch.out.find(one.out.substr(0, one.out.size() - 1)), std::string::npos)
        << "batch:\n" << batch.out << "\nalone:\n" << one.out;
  }
  // A stop string ends the text before it; use the first generated character as the stop.
  const RunResult one = run_lt2("generate" + model + " --prompt 'A small'");
  const std::string first(1, one.out[7]);
  const RunResult stopped = run_lt2("generate" + model + " --prompt 'A small' --stop '" + first + "'");
  ASSERT_EQ(stopped.code, 0) << stopped.out;
  EXPECT_EQ(stopped.out, "A small\n");
  expect_error("generate" + model + " --prompt x --top-p 0", "top-p must be in (0, 1]");
  expect_error("generate --model " + g_dir + "/run --prompt x --max-tokens 1000", "exceeds the model's context limit");
  expect_error("generate" + model + " --prompts " + g_dir + "/none.txt", "cannot open prompts file");
}

TEST_F(Cli, BenchDecodeWritesCsvAndSvg) {
  const std::string out = g_dir + "/dec";
  const RunResult r = run_lt2("bench decode --config tiny --contexts 16,32 --loops 1,2 --steps 2 --window 8 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string csv = fs::read_file(out + ".csv");
  int rows = 0;
  for (char c : csv) rows += c == '\n';
  EXPECT_EQ(rows, 1 + 5 * 2 * 2);  // header + mixers x loops x contexts
  EXPECT_NE(csv.find("GDN+DSA,"), std::string::npos);
  const std::string svg = fs::read_file(out + ".svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("GDN"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("GB/s)</text>"), std::string::npos) << "the title must be complete";
  size_t open = 0, close = 0;
  for (size_t p = svg.find("<g "); p != std::string::npos; p = svg.find("<g ", p + 1)) ++open;
  for (size_t p = svg.find("</g>"); p != std::string::npos; p = svg.find("</g>", p + 1)) ++close;
  EXPECT_EQ(open, 4u);  // four charts
  EXPECT_EQ(open, close);
  expect_error("bench decode --contexts 0,4", "--contexts expects");
}

TEST_F(Cli, ResumeAndOverwriteRules) {
  // --resume wants the run directory, and keeps the run's seed.
  expect_error("train --resume " + g_run, "not the checkpoint");
  expect_error("train --resume " + g_dir + "/run --seed 5", "--resume takes the config, data, seed");
  expect_error("train --resume " + g_dir + "/run", "has already run 4 of its 4 steps");
  // Resuming twice from the same checkpoint leaves one metrics line per step.
  stdfs::copy(g_dir + "/run", g_dir + "/run3", stdfs::copy_options::recursive);
  ASSERT_EQ(run_lt2("train --resume " + g_dir + "/run3 --steps 6").code, 0);
  const std::string m1 = fs::read_file(g_dir + "/run3/metrics.jsonl");
  write(g_dir + "/run3/latest", "checkpoint-000004\n");  // as if the run had died after step 6, before saving
  ASSERT_EQ(run_lt2("train --resume " + g_dir + "/run3 --steps 6").code, 0);
  // The same steps again (only the measured tokens/s may differ).
  auto steps_only = [](const std::string& text) {
    std::string out;
    for (size_t p = 0; p < text.size();) {
      const size_t e = text.find('\n', p);
      out += text.substr(p, std::min(text.find("tokens_per_s", p), e) - p) + "\n";
      p = e + 1;
    }
    return out;
  };
  EXPECT_EQ(steps_only(fs::read_file(g_dir + "/run3/metrics.jsonl")), steps_only(m1));
  // --overwrite replaces the run but not unrelated files in the directory.
  write(g_dir + "/run3/notes.txt", "keep me");
  ASSERT_EQ(run_lt2("train --config tiny --steps 2 --data " + g_text + " --out " + g_dir + "/run3 --overwrite").code, 0);
  EXPECT_EQ(fs::read_file(g_dir + "/run3/notes.txt"), "keep me");
  EXPECT_FALSE(fs::exists(g_dir + "/run3/checkpoint-000006"));
  EXPECT_TRUE(fs::exists(g_dir + "/run3/checkpoint-000002/model.safetensors"));
}

TEST_F(Cli, TaskTrainingAndEvalTask) {
  const std::string cfg = g_dir + "/task.json";
  write(cfg, R"({"model": {"hidden_size": 32, "num_hidden_layers": 2, "num_loops": 2, "intermediate_size": 64,
                            "pattern": "gdn,full", "num_attention_heads": 2, "head_dim": 16, "gdn_num_heads": 2,
                            "gdn_head_k_dim": 16, "gdn_head_v_dim": 32, "max_position_embeddings": 64},
                  "train": {"batch_size": 4, "seq_len": 32, "steps": 3, "eval_every": 3, "eval_batches": 2,
                            "task": {"name": "mqar", "vocab": 64, "num_pairs": 4}, "task_eval_rows": 16}})");
  RunResult r = run_lt2("train --config " + cfg + " --out " + g_dir + "/task_run");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("accuracy"), std::string::npos) << r.out;
  r = run_lt2("eval task --model " + g_dir + "/task_run");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"accuracy\""), std::string::npos) << r.out;
  r = run_lt2("eval task --model " + g_dir + "/task_run --task '{\"name\": \"probe\", \"distance\": 4}'");
  ASSERT_EQ(r.code, 0) << r.out;
  expect_error("eval task --model " + g_dir + "/task_run --task '{\"name\": \"foo\"}'", "unknown task 'foo'");
  expect_error("eval ppl --model " + g_dir + "/task_run", "was trained on a task");
  expect_error("eval task --model " + g_dir + "/run", "was not trained on a task");
}

TEST_F(Cli, DataCorpusFeedsTraining) {
  const std::string out = g_dir + "/corpus";
  RunResult r = run_lt2("data corpus --sources fortunes --extra " + g_text + " --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("train:"), std::string::npos) << r.out;
  r = run_lt2("train --config tiny --steps 2 --data " + out + "/train.jsonl --out " + g_dir + "/corpus_run");
  ASSERT_EQ(r.code, 0) << r.out;
  write(g_dir + "/bad.jsonl", "{\"text\": \"ok\"}\n{\"txt\": 1}\n");
  expect_error("train --config tiny --data " + g_dir + "/bad.jsonl --out " + g_dir + "/r4", "bad.jsonl:2");
  expect_error("data corpus --sources fortunes,nope --out " + out, "nope");
  // The shard path: corpus -> byte shards -> train -> evaluate on the shards' validation split.
  r = run_lt2("data shards --corpus " + out + " --out " + g_dir + "/shards --tokens-per-shard 100000");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(g_dir + "/shards/train/shard_00000.lt2shard")) << r.out;
  r = run_lt2("train --config tiny --steps 2 --shards " + g_dir + "/shards --out " + g_dir + "/shard_run");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("token shards"), std::string::npos) << r.out;
  r = run_lt2("eval ppl --model " + g_dir + "/shard_run --max-batches 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"ppl\""), std::string::npos) << r.out;
  expect_error("train --config tiny --steps 2 --shards " + g_dir + "/nowhere --out " + g_dir + "/r5", "nowhere");
  expect_error("train --config tiny --data x --shards y --out " + g_dir + "/r6", "not both");
  // A corpus without a test split still shards (the test split is optional).
  ASSERT_EQ(run_lt2("data corpus --sources fortunes --test-fraction 0 --out " + g_dir + "/corpus0").code, 0);
  r = run_lt2("data shards --corpus " + g_dir + "/corpus0 --out " + g_dir + "/shards0");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_FALSE(fs::exists(g_dir + "/shards0/test"));
#ifdef LT2_HAVE_SENTENCEPIECE
  r = run_lt2("data tokenizer --corpus " + out + " --vocab 400 --out " + g_dir + "/tok");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(g_dir + "/tok.model")) << r.out;
  // A model that uses it: the checkpoint carries the tokenizer and every command reads text through it.
  auto sp_config = [&](int vocab) {
    const std::string f = g_dir + "/sp" + std::to_string(vocab) + ".json";
    write(f, R"({"model": {"vocab_size": )" + std::to_string(vocab) + R"(, "hidden_size": 32, "num_hidden_layers": 2,
      "num_loops": 2, "intermediate_size": 64, "pattern": "gdn,full", "num_attention_heads": 2, "head_dim": 16,
      "gdn_num_heads": 2, "gdn_head_k_dim": 16, "gdn_head_v_dim": 32, "max_position_embeddings": 256,
      "tokenizer": "sentencepiece:)" + g_dir + R"(/tok.model"},
      "train": {"batch_size": 4, "seq_len": 32, "steps": 2, "eval_every": 2, "eval_batches": 1}})");
    return f;
  };
  r = run_lt2("train --config " + sp_config(400) + " --data " + g_text + " --out " + g_dir + "/sp_run");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string ck = g_dir + "/sp_run/checkpoint-000002";
  EXPECT_TRUE(fs::exists(ck + "/tokenizer.model"));
  EXPECT_NE(fs::read_file(ck + "/config.json").find("\"sentencepiece:tokenizer.model\""), std::string::npos);
  r = run_lt2("generate --model " + g_dir + "/sp_run --prompt 'A small' --max-tokens 8 --temperature 0");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("A small", 0), 0u) << r.out;
  r = run_lt2("eval ppl --model " + g_dir + "/sp_run --data " + g_text + " --max-batches 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("bits_per_token"), std::string::npos) << r.out;
  r = run_lt2("train --resume " + g_dir + "/sp_run --steps 3");
  ASSERT_EQ(r.code, 0) << r.out;
  expect_error("train --config " + sp_config(300) + " --data " + g_text + " --out " + g_dir + "/sp_bad",
               "tokenizer/model mismatch");
#endif
  expect_error("data tokenizer --corpus " + g_dir + "/nothing", "nothing");
}

TEST_F(Cli, EvalNiahWritesTableAndHeatmap) {
  const RunResult r = run_lt2("eval niah --model " + g_dir + "/run --kind 1 --contexts 200,250 --depths 0,1 --samples 1 --out " +
                              g_dir + "/niah");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* ext : {".md", ".svg", ".json"}) EXPECT_TRUE(fs::exists(g_dir + "/niah" + ext)) << ext;
  EXPECT_EQ(fs::read_file(g_dir + "/niah.svg").rfind("<svg", 0), 0u);
  expect_error("eval niah --model " + g_dir + "/run --kind 1 --contexts 4096", "exceeds the model's context limit");
  expect_error("eval niah --model " + g_dir + "/run --kind 2 --contexts 250", "prose");
}

TEST_F(Cli, EvalMultipleChoice) {
  const std::string f = g_dir + "/mc.jsonl";
  write(f, R"({"context": "A small text to train on,", "choices": ["line", "zebra"], "label": 0})" "\n"
           R"({"context": "A small", "choices": ["text", "qqqq"], "label": 0})" "\n");
  const RunResult r = run_lt2("eval mc --model " + g_dir + "/run --data " + f);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"items\": 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"acc_norm\""), std::string::npos) << r.out;
  write(g_dir + "/mc_bad.jsonl", R"({"context": "x", "choices": ["a"], "label": 0})" "\n");
  expect_error("eval mc --model " + g_dir + "/run --data " + g_dir + "/mc_bad.jsonl", "mc_bad.jsonl:1");
}

TEST_F(Cli, EvalDiagWritesTableJsonAndChart) {
  const RunResult r = run_lt2("eval diag --model " + g_dir + "/run --data " + g_text + " --seq-len 32 --batches 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("first-token attention mass"), std::string::npos) << r.out;
  for (const char* ext : {".md", ".json", ".svg"}) EXPECT_TRUE(fs::exists(g_dir + "/run/eval/diag" + ext)) << ext;
  // The run's report embeds the diagnostics chart and table.
  const RunResult rep = run_lt2("report " + g_dir + "/run");
  ASSERT_EQ(rep.code, 0) << rep.out;
  const std::string html = fs::read_file(g_dir + "/run/report.html");
  EXPECT_NE(html.find("first-token attention mass"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  expect_error("report " + g_dir + "/nowhere", "nowhere");
}

TEST_F(Cli, SwapsCurriculumRunsAndReports) {
  // A tiny budget: the model will not pass, but the driver must train, evaluate and report.
  const RunResult r = run_lt2("curriculum swaps --config tiny --stages 4,8 --budget 4 --eval-every 2 --eval-rows 8 --out " +
                              g_dir + "/cur.json");
  ASSERT_EQ(r.code, 0) << r.out;
  const json::Value v = json::Value::parse(fs::read_file(g_dir + "/cur.json"), "cur.json");
  EXPECT_GE(json::get_int(v, "total_steps", "cur"), 4);
  EXPECT_EQ(json::get_int(*v.find("stages")->elements().data(), "n", "cur"), 4);
  expect_error("curriculum swaps --config tiny --stages 8,4", "stages");
}

TEST_F(Cli, EvalEdgeCases) {
  const std::string blank = g_dir + "/blank.txt";
  write(blank, "\n\n\n");
  expect_error("eval ppl --model " + g_dir + "/run --data " + blank, "no text");
  const std::string tiny = g_dir + "/two.txt";
  write(tiny, "ab");  // one document "ab": a window of 2 tokens is still scored
  RunResult t = run_lt2("eval ppl --model " + g_dir + "/run --data " + tiny);
  EXPECT_EQ(t.code, 0) << t.out;
  EXPECT_NE(t.out.find("\"tokens\": 2,"), std::string::npos) << t.out;
  expect_error("eval ppl --model " + g_dir + "/run --data " + g_text + " --max-batches 0", "must be >= 1");
  const RunResult r = run_lt2("eval ppl --model " + g_dir + "/run --data " + g_text + " --seq-len 8 --max-batches 1");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("nan"), std::string::npos) << r.out;
  EXPECT_EQ(run_lt2("eval --help").code, 0);
  EXPECT_EQ(run_lt2("bench --help").code, 0);
}

TEST_F(Cli, BadConfigs) {
  const std::string c1 = g_dir + "/malformed.json";
  write(c1, "{\"model\": {\"hidden_size\": 32,,}}");
  expect_error("train --config " + c1, "malformed.json:1:");
  const std::string c2 = g_dir + "/heads.json";
  write(c2, R"({"model": {"pattern": "full", "num_attention_heads": 3, "num_key_value_heads": 2}})");
  expect_error("train --config " + c2, "must be a multiple of num_key_value_heads");
  const std::string c3 = g_dir + "/mixer.json";
  write(c3, R"({"model": {"pattern": "gdn,foo", "num_hidden_layers": 2}})");
  expect_error("train --config " + c3, "unknown mixer 'foo'");
  const std::string c4 = g_dir + "/type.json";
  write(c4, R"({"model": {"hidden_size": "big"}})");
  expect_error("train --config " + c4, "hidden_size");
  const std::string c5 = g_dir + "/field.json";
  write(c5, R"({"model": {"hiden_size": 64}})");
  expect_error("train --config " + c5, "unknown field 'hiden_size'");
  expect_error("train --config " + g_dir + "/nope.json", "nope.json");
  const std::string c7 = g_dir + "/ratio.json";
  write(c7, R"J({"model": {"pattern": "interleave(full,gdn,1:x)"}})J");
  expect_error("train --config " + c7, "ratio must look like 1:4");
  const std::string c8 = g_dir + "/huge.json";
  write(c8, R"({"model": {"vocab_size": 4611686018427387905, "hidden_size": 4}})");
  expect_error("train --config " + c8, "field 'vocab_size' must be <= 2147483647");
  const std::string c6 = g_dir + "/window.json";
  write(c6, R"J({"model": {"pattern": "window(0)"}})J");
  expect_error("train --config " + c6, "window size must be an integer >= 1");
  const std::string c9 = g_dir + "/dsa.json";
  write(c9, R"J({"model": {"pattern": "dsa"}})J");
  expect_error("train --config " + c9, "mixer 'dsa' needs its top-k: dsa(k)");
  write(c9, R"J({"model": {"pattern": "dsa(0)"}})J");
  expect_error("train --config " + c9, "top-k must be an integer >= 1");
  write(c9, R"J({"model": {"pattern": "dsa(8)", "dsa_index_heads": 0}})J");
  expect_error("train --config " + c9, "field 'dsa_index_heads' must be >= 1");
  write(c9, R"J({"model": {"pattern": "dsa(8)"}, "train": {"dsa_warmup_steps": -1}})J");
  expect_error("train --config " + c9, "dsa_warmup_steps");
  write(c9, R"J({"model": {"num_loops": 2, "recompute_loops": true, "recompute_keep_loops": 3}})J");
  expect_error("train --config " + c9, "recompute_keep_loops must be in [0, num_loops = 2], got 3");
}

TEST_F(Cli, MissingData) {
  expect_error("train --config tiny --data " + g_dir + "/missing.txt --out " + g_dir + "/r2", "missing.txt");
  const std::string empty = g_dir + "/empty.txt";
  write(empty, "");
  expect_error("train --config tiny --data " + empty + " --out " + g_dir + "/r3", "empty");
}

TEST_F(Cli, CorruptCheckpoints) {
  const std::string good = fs::read_file(g_run + "/model.safetensors");
  const std::string eval = "eval ppl --data " + g_text + " --model ";
  // truncated in the data, and in the header
  expect_error(eval + corrupt_copy("trunc", good.substr(0, good.size() - 100)), "model.safetensors");
  expect_error(eval + corrupt_copy("trunc_header", good.substr(0, 20)), "model.safetensors");
  // header length larger than the file
  std::string bad_len = good;
  bad_len[6] = 0x7f;
  expect_error(eval + corrupt_copy("badlen", bad_len), "header");
  // unsupported dtype
  std::string bad_dtype = good;
  const size_t p = bad_dtype.find("\"F32\"");
  ASSERT_NE(p, std::string::npos);
  bad_dtype.replace(p, 5, "\"F16\"");
  expect_error(eval + corrupt_copy("dtype", bad_dtype), "unsupported dtype 'F16'");
  // offsets past the end: trailing bytes removed but header unchanged -> ranges exceed the buffer
  expect_error(eval + corrupt_copy("offsets", good.substr(0, good.size() - 4)), "model.safetensors");
  // config.json that does not match the tensors
  const std::string d = corrupt_copy("mismatch", good);
  std::string cfg = fs::read_file(d + "/config.json");
  const size_t h = cfg.find("\"hidden_size\": 32");
  ASSERT_NE(h, std::string::npos);
  cfg.replace(h, 17, "\"hidden_size\": 48");
  write(d + "/config.json", cfg);
  expect_error(eval + d, "has shape");
  // not a checkpoint at all
  expect_error(eval + g_dir, "not a checkpoint");
}
