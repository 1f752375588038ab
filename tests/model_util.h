#pragma once
// Tiny model configs and O(1) random parameters shared by the model-level tests.
#include <string>

#include "gradcheck.h"
#include "model/looped_model.h"

namespace lt2::test {

inline ModelConfig tiny_config(const std::string& pattern, int64_t n_layers, int64_t loops) {
  ModelConfig c;
  c.vocab_size = 256;
  c.hidden_size = 8;
  c.num_hidden_layers = n_layers;
  c.num_loops = loops;
  c.intermediate_size = 12;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;  // GQA: both query heads share one kv head
  c.head_dim = 4;
  c.gdn_num_heads = 2;
  c.gdn_num_v_heads = 4;  // grouped value heads (GVA), 2 value heads per key head
  c.gdn_head_k_dim = 4;
  c.gdn_head_v_dim = 6;  // K != V
  c.gdn_conv_size = 4;
  c.max_position_embeddings = 128;
  c.layer_types = parse_pattern(pattern, n_layers, "test");
  return c;
}

// Re-draws every parameter to O(1), non-zero values after init(): rho and the zero-initialised
// attention output gate (g_proj) become random, norms move away from 1, GDN decays moderate.
inline void randomize(LoopedModel& m, uint64_t seed) {
  m.init(seed);
  uint64_t k = 0;
  for (Param* p : m.params()) {
    ++k;
    Tensor& v = p->value;
    const Tensor r = randn(v.shape(), seed * 1000 + k), u = uniform(v.shape(), seed * 1000 + k, -1, 1);
    const bool embed = p->name == "model.embed_tokens.weight";
    for (int64_t i = 0; i < v.numel(); ++i) {
      double x = 0;
      switch (p->init) {
        case Init::Normal: x = (embed ? 1.0 : 0.25) * r.item(i); break;
        case Init::Zeros: x = 0.3 * r.item(i); break;  // rho, attention g_proj
        case Init::Ones: x = 1.0 + 0.1 * r.item(i); break;
        case Init::ALog: x = u.item(i); break;  // decay rate exp(A_log) in (0.37, 2.7)
        case Init::DtBias: x = 0.5 * r.item(i); break;
      }
      v.set(i, x);
    }
  }
}

}  // namespace lt2::test
