// lt2 convert: a new checkpoint of another architecture from a trained one. Every tensor of
// the source goes to the parameter of the same name (shapes must agree); parameters the source
// lacks get the target config's fresh initialisation. Typical use: a trained model whose
// full-attention layers become dsa(k) layers (same q/k/v/o/g names, plus a new lightning
// indexer), whose indexer stage 1 (train.dsa_warmup_steps) then trains from this checkpoint.
#include <cstdio>
#include <filesystem>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/run_config.h"
#include "core/fs.h"
#include "model/checkpoint.h"

namespace lt2::cli {

int cmd_convert(int argc, char** argv) {
  Args a("lt2 convert",
         {{"from", true, "trained checkpoint or run directory to take the weights from"},
          {"config", true, "preset or JSON run config whose \"model\" is the target architecture"},
          {"out", true, "directory of the new checkpoint (must not exist unless --overwrite)"},
          {"seed", true, "seed of the fresh initialisation of the new parameters (default 1234)"},
          {"overwrite", false, "replace --out if it exists"}},
         argc, argv, 2);
  if (a.help()) {
    std::printf("usage: lt2 convert --from CKPT --config CONFIG --out DIR [flags]\n\n"
                "Writes a checkpoint of the --config architecture with the weights of --from under the same names;\n"
                "parameters --from lacks (e.g. a dsa(k) layer's indexer) are freshly initialised.\n\n%s",
                a.usage().c_str());
    return 0;
  }
  LT2_CHECK(a.has("from") && a.has("config") && a.has("out"), "lt2 convert: --from, --config and --out are required");
  namespace stdfs = std::filesystem;
  stdfs::path out_path = stdfs::path(a.str("out")).lexically_normal();
  if (!out_path.has_filename()) out_path = out_path.parent_path();  // "dir/" names dir
  const std::string from = resolve_checkpoint_dir(a.str("from")), out = out_path.string();
  LT2_CHECK(!out.empty() && out != "." && out != "..", "lt2 convert: --out must name a new directory");
  ModelConfig cfg = load_run(a.str("config")).model;
  LT2_CHECK(!fs::exists(out) || a.has("overwrite"), out, " already exists: pass --overwrite to replace it");
  std::string tokenizer_file;  // a SentencePiece model travels with the weights
  if (cfg.tokenizer != "bytes") {
    tokenizer_file = from + "/tokenizer.model";
    LT2_CHECK(fs::exists(tokenizer_file), from, " has no tokenizer.model for the config's SentencePiece tokenizer");
    cfg.tokenizer = "sentencepiece:tokenizer.model";
  }
  LoopedModel model(cfg);
  model.init(uint64_t(a.integer("seed", 1234)));
  const std::vector<std::string> fresh = load_matching_weights(model, from);
  // Written next to the target and renamed into place; a replaced checkpoint is moved aside
  // first and deleted last, so an interrupted run leaves the old or the new one, never half.
  const std::string tmp = out + ".tmp", old = out + ".old";
  stdfs::remove_all(tmp);
  save_model(tmp, model, tokenizer_file);
  stdfs::remove_all(old);
  if (stdfs::exists(out)) stdfs::rename(out, old);
  stdfs::rename(tmp, out);
  stdfs::remove_all(old);
  std::printf("wrote %s: %zu of %zu tensors from %s\n", out.c_str(), model.params().size() - fresh.size(),
              model.params().size(), from.c_str());
  for (const auto& n : fresh) std::printf("  new (initialised): %s\n", n.c_str());
  return 0;
}

}  // namespace lt2::cli
