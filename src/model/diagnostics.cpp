#include "model/diagnostics.h"

#include <cmath>
#include <cstdio>

#include "ops/ops.h"

namespace lt2 {

void accumulate_diagnostics(const LoopedModel& model, const Tensor& ids, Diagnostics& d) {
  const ModelConfig& c = model.config();
  if (d.at.empty()) {
    d.loops = c.num_loops, d.layers = c.num_hidden_layers;
    d.at.assign(size_t(d.loops * d.layers), {});
  }
  LoopedModel::Ctx ctx;
  ctx.keep_activations = true;
  model.forward(ids, &ctx);  // the training context holds every (loop, layer) call's tensors
  const double n = double(d.batches);
  for (int64_t i = 0; i < d.loops * d.layers; ++i) {
    const Block::Ctx& b = ctx.blocks[size_t(i)];
    LayerDiag& g = d.at[size_t(i)];
    const double mass = model.block(int(i % d.layers)).first_token_mass(b);
    const double rms = std::sqrt(ops::sum_squares(b.h) / double(b.h.numel()));
    double mx = 0;
    Tensor h = SwiGluFfn::hidden(b.ffn);
    if (h.on_cuda()) h = h.to(Device::CPU);  // one copy, then read per element
    for (int64_t k = 0; k < h.numel(); ++k) mx = std::max(mx, std::abs(h.item(k)));
    g.first_token_mass = (g.first_token_mass * n + mass) / (n + 1);  // running means over batches
    g.topk_mass = (g.topk_mass * n + model.block(int(i % d.layers)).mixer().topk_mass(*b.mixer)) / (n + 1);
    g.residual_rms = (g.residual_rms * n + rms) / (n + 1);
    g.max_ffn_activation = std::max(g.max_ffn_activation, mx);
  }
  ++d.batches;
}

std::string diagnostics_table(const Diagnostics& d, const ModelConfig& cfg) {
  const bool dsa = cfg.count(MixerSpec::Dsa) > 0;
  std::string s = "| loop | layer | mixer | first-token attention mass | residual RMS | max FFN activation |";
  s += dsa ? " top-k share of dense attention |\n|---|---|---|---|---|---|---|\n" : "\n|---|---|---|---|---|---|\n";
  char row[256];
  for (int64_t t = 0; t < d.loops; ++t)
    for (int64_t l = 0; l < d.layers; ++l) {
      const LayerDiag& g = d.get(t, l);
      char mass[32] = "—";
      if (!std::isnan(g.first_token_mass)) std::snprintf(mass, sizeof mass, "%.4f", g.first_token_mass);
      std::snprintf(row, sizeof row, "| %lld | %lld | %s | %s | %.4f | %.3f |", (long long)t + 1, (long long)l + 1,
                    cfg.layer_types[size_t(l)].str().c_str(), mass, g.residual_rms, g.max_ffn_activation);
      s += row;
      if (dsa) {
        char share[32] = " — |";
        if (!std::isnan(g.topk_mass)) std::snprintf(share, sizeof share, " %.4f |", g.topk_mass);
        s += share;
      }
      s += "\n";
    }
  return s;
}

}  // namespace lt2
