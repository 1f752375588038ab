#pragma once
// The model configuration (config.json of a checkpoint) and the mixer pattern language.
#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"

namespace lt2 {

// One layer's mixer. window: the span of window(w) (0 otherwise); topk: the k of dsa(k).
struct MixerSpec {
  enum Kind { Full, Window, Gdn, Dsa } kind = Full;
  int64_t window = 0;
  int64_t topk = 0;
  bool is_attention() const { return kind != Gdn; }  // has q, k, v, o (and a KV cache)
  std::string str() const;  // "full", "window(128)", "gdn", "dsa(64)"
};

struct ModelConfig {
  int64_t vocab_size = 256;
  int64_t hidden_size = 128;        // d
  int64_t num_hidden_layers = 4;    // N shared layers
  int64_t num_loops = 4;            // T
  int64_t intermediate_size = 384;  // SwiGLU hidden
  std::vector<MixerSpec> layer_types;  // one per layer (resolved from `pattern`)
  std::vector<int64_t> loop_windows;   // optional, one per loop: attention span per loop (0 = full)

  // softmax attention
  int64_t num_attention_heads = 4;
  int64_t num_key_value_heads = 4;
  int64_t head_dim = 32;
  double rope_theta = 10000.0;
  std::string output_gate = "channel";  // "channel" (d -> H*Dh), "head" (d -> H) or "none"

  // DeepSeek sparse attention's lightning indexer (SPEC §2): H_I heads of width d_I
  int64_t dsa_index_heads = 4;
  int64_t dsa_index_head_dim = 32;

  // Gated DeltaNet
  int64_t gdn_num_heads = 2;     // key heads
  int64_t gdn_num_v_heads = 2;   // value heads (GVA when > gdn_num_heads)
  int64_t gdn_head_k_dim = 48;
  int64_t gdn_head_v_dim = 96;   // expand_v * K
  int64_t gdn_conv_size = 4;
  bool gdn_chunked = true;       // chunked (C = 64) or token recurrence in training

  // norms, loops, head
  double rms_norm_eps = 1e-6;
  bool sandwich_norm = false;       // Ouro: RMSNorm on mixer and FFN outputs
  bool norm_between_loops = false;  // Ouro: final norm after every loop, replaces h, no rho
  // Training memory: keep only each loop's input and recompute the loop's activations in the
  // backward (one extra forward of the blocks; activation memory / T). Same gradients.
  bool recompute_loops = false;
  // With recompute_loops: the last N loops keep their activations instead (their backward comes
  // first, so they are held from the forward until then). Buys back N/T of the extra forward
  // for N - 1 loops' worth of activation memory: the last loop's would be rebuilt at once
  // anyway, so keeping it (the default) costs no peak memory.
  int64_t recompute_keep_loops = 1;
  bool tie_word_embeddings = false;
  double initializer_range = 0.02;
  int64_t max_position_embeddings = 2048;  // context limit
  std::string tokenizer = "bytes";

  // Window of full / window attention layer `layer` in loop `loop` (0 = full causal);
  // loop_windows does not apply to dsa layers (their span is chosen by the indexer).
  int64_t attention_window(int layer, int loop) const;
  int count(MixerSpec::Kind k) const;

  // Parse + validate; `ctx` names the source in errors (e.g. "runs/x/config.json").
  static ModelConfig from_json(const json::Value& v, const std::string& ctx);
  json::Value to_json() const;
  void validate(const std::string& ctx) const;
};

// Pattern language (SPEC §5): "gdn" (every layer), an explicit list "gdn,gdn,full",
// "interleave(full,gdn,1:4)" (one full per five layers, at every fifth position),
// "bookend(full,gdn)" (full first and last, gdn between). Mixers: full, window(w), gdn, dsa(k).
std::vector<MixerSpec> parse_pattern(const std::string& pattern, int64_t n_layers, const std::string& ctx);
MixerSpec parse_mixer(const std::string& name, const std::string& ctx);

}  // namespace lt2
