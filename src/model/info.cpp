#include "model/info.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace lt2 {

int64_t count_params(const ModelConfig& c, bool emb) {
  const int64_t d = c.hidden_size, ffn = 3 * d * c.intermediate_size;
  int64_t n = 0;
  for (const auto& m : c.layer_types) {
    n += ffn + 2 * d + (c.sandwich_norm ? 2 * d : 0);
    if (m.is_attention()) {
      const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
      n += d * H * D * 2 + d * Hkv * D * 2;
      if (c.output_gate == "channel") n += d * H * D;
      if (c.output_gate == "head") n += d * H;
      if (m.kind == MixerSpec::Dsa)  // indexer: q_proj, k_proj, k_norm, weights_proj
        n += d * c.dsa_index_heads * c.dsa_index_head_dim + d * c.dsa_index_head_dim + c.dsa_index_head_dim +
             d * c.dsa_index_heads;
    } else {
      const int64_t HK = c.gdn_num_heads * c.gdn_head_k_dim, HVV = c.gdn_num_v_heads * c.gdn_head_v_dim;
      n += d * (2 * HK + 3 * HVV + 2 * c.gdn_num_v_heads) + c.gdn_conv_size * (2 * HK + HVV) +
           2 * c.gdn_num_v_heads + c.gdn_head_v_dim;
    }
  }
  n += d + (c.norm_between_loops ? 0 : c.num_loops * d);
  if (emb) n += c.vocab_size * d * (c.tie_word_embeddings ? 1 : 2);
  return n;
}

namespace {
// One layer's cost in one loop: `window` is the softmax span in that loop (0 = full).
MixerCost layer_cost(const ModelConfig& c, const MixerSpec& m, int64_t window, int64_t context, int64_t train_L,
                     double act_bytes) {
  const double d = double(c.hidden_size);
  MixerCost k;
  k.mixer = m.str();
  double weights = 3.0 * d * c.intermediate_size;  // the block's FFN rides along with its mixer
  if (m.is_attention()) {
    const double H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim, w = double(window);
    weights += d * H * D * 2 + d * Hkv * D * 2 + (c.output_gate == "channel" ? d * H * D : 0);
    // QK^T and PV: 4 H D FLOPs per visible key. Training: a causal row sees (L+1)/2 keys on average.
    const double train_keys = w > 0 ? std::min<double>(w, (train_L + 1) / 2.0) : (train_L + 1) / 2.0;
    const double decode_keys = w > 0 ? std::min<double>(w, double(context)) : double(context);
    k.mix_flops_train = 4 * H * D * train_keys;
    k.mix_flops_decode = 4 * H * D * decode_keys;
    k.cache_bytes = 2 * Hkv * D * act_bytes * decode_keys;  // a span of w keeps min(w, context) rows
    k.cache_grows = w == 0;
    if (m.kind == MixerSpec::Dsa) {
      // Attention over at most k keys; the indexer scores every visible key (2 H_I d_I FLOPs
      // each) and the cache also holds one indexer key per token.
      const double HI = double(c.dsa_index_heads), dI = double(c.dsa_index_head_dim), topk = double(m.topk);
      weights += d * (HI * dI + dI + HI);
      k.mix_flops_train = 4 * H * D * std::min(topk, train_keys) + 2 * HI * dI * train_keys;
      k.mix_flops_decode = 4 * H * D * std::min(topk, decode_keys) + 2 * HI * dI * decode_keys;
      k.cache_bytes += dI * act_bytes * decode_keys;
    }
  } else {
    const double HK = double(c.gdn_num_heads * c.gdn_head_k_dim), HV = double(c.gdn_num_v_heads);
    const double K = double(c.gdn_head_k_dim), V = double(c.gdn_head_v_dim), C = 64;
    weights += d * (2 * HK + 3 * HV * V + 2 * HV);
    // Recurrent step per head: decay + S^T k + k u^T + S^T q  ~ 7 K V.
    k.mix_flops_decode = HV * 7 * K * V;
    // Chunked per head: intra-chunk K K^T, Q K^T, (C x C)(C x V) products and W, U
    // (~ C (2K + 2V) per token), plus the state terms W S, q S, K^T Delta (~ 6 K V).
    k.mix_flops_train = HV * (C * (2 * K + 2 * V) + 6 * K * V);
    // fp32 state plus the conv cache of the last (W - 1) pre-conv q, k, v inputs.
    k.cache_bytes = HV * K * V * 4.0 + double(c.gdn_conv_size - 1) * (2 * HK + HV * V) * act_bytes;
  }
  k.matmul_flops = 2 * weights;
  return k;
}
}  // namespace

ModelCost model_cost(const ModelConfig& c, int64_t loops, int64_t context, int64_t train_L, double act_bytes) {
  ModelCost mc;
  mc.loops = loops > 0 ? loops : c.num_loops;
  LT2_CHECK(c.loop_windows.empty() || mc.loops == c.num_loops, "loop_windows gives spans for T = ", c.num_loops,
            " loops; cannot cost the model at T = ", mc.loops);
  mc.context = context;
  mc.params = count_params(c, true);
  mc.params_non_embedding = count_params(c, false);
  // The table: one row per mixer kind of the stack, at the layer's own span.
  std::map<std::string, size_t> row;
  for (const MixerSpec& m : c.layer_types) {
    if (!row.count(m.str())) {
      row[m.str()] = mc.mixers.size();
      mc.mixers.push_back(layer_cost(c, m, m.window, context, train_L, act_bytes));
    }
    mc.mixers[row[m.str()]].layers++;
  }
  // Totals: every (loop, layer) call at its span in that loop (loop_windows may change it).
  double fwd_train = 0, fwd_mm = 0, fwd_decode = 0;
  for (int64_t t = 0; t < mc.loops; ++t)
    for (size_t l = 0; l < c.layer_types.size(); ++l) {
      const MixerSpec& m = c.layer_types[l];
      const int64_t w = c.loop_windows.empty() ? m.window : c.attention_window(int(l), int(t));
      const MixerCost k = layer_cost(c, m, w, context, train_L, act_bytes);
      fwd_train += k.matmul_flops + k.mix_flops_train;
      fwd_mm += k.matmul_flops;
      fwd_decode += k.matmul_flops + k.mix_flops_decode;
      mc.cache_bytes += k.cache_bytes;
    }
  const double head = 2.0 * double(c.hidden_size) * double(c.vocab_size);
  mc.train_flops_per_token = 3 * (fwd_train + head);
  mc.train_matmul_flops_per_token = 3 * (fwd_mm + head);
  mc.decode_flops_per_token = fwd_decode + head;
  return mc;
}

}  // namespace lt2
