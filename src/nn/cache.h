#pragma once
// Inference state of one (loop, layer) pair. A looped model owns T * N of them: every loop
// re-runs each mixer from scratch on its own input (SPEC §1), so caches are never shared
// between loops. Memory is allocated once, for a batch and a context limit.
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace lt2 {

struct LayerCache {
  virtual ~LayerCache() = default;
  virtual int64_t bytes() const = 0;
};

// Softmax attention: post-RoPE keys and values. window = 0: one row per position up to the
// context limit; window = w: a ring of w rows, position p at row p % w.
// dsa(k) layers also keep every position's indexer key.
struct KvCache : LayerCache {
  Tensor k, v;  // [B, rows, Hkv, D]
  Tensor kI;    // dsa: [B, rows, dI]
  int64_t window = 0;
  int64_t rows() const { return k.dim(1); }
  int64_t row_of(int64_t pos) const { return window > 0 ? pos % window : pos; }
  int64_t bytes() const override { return int64_t(k.nbytes() + v.nbytes() + (kI.defined() ? kI.nbytes() : 0)); }
};

// Gated DeltaNet: the recurrent state and the last (W-1) pre-conv inputs of q, k and v.
struct GdnCache : LayerCache {
  Tensor state;                      // [B, HV, K, V]
  Tensor conv_q, conv_k, conv_v;     // [B, W-1, C], oldest first
  int64_t bytes() const override {
    return int64_t(state.nbytes() + conv_q.nbytes() + conv_k.nbytes() + conv_v.nbytes());
  }
};

// How a mixer runs: training / plain forward, filling one batch slot of a cache from a whole
// prompt (prefill), or one token per sequence at the given positions (decode).
struct CacheRun {
  enum Mode { Prefill, Decode } mode;
  int64_t slot = 0;                         // prefill: which sequence of the batch
  const std::vector<int64_t>* positions = nullptr;  // decode: position of each sequence's token
  bool all_logits = false;  // prefill: LM head on every prompt position (else only the last)
  Tensor position_ids{};  // decode: the positions as I32 [B] on the model's device (the model fills it once per step)
};

}  // namespace lt2
