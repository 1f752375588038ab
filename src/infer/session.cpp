#include "infer/session.h"

#include <algorithm>

namespace lt2 {

// Logits for the sampler: GPU logits come back as F32 on the host; CPU ones stay as they are.
static Tensor on_host(const Tensor& logits) {
  return logits.on_cuda() ? logits.to(Device::CPU, DType::F32) : logits;
}

Session::Session(const LoopedModel& model, int64_t batch, int64_t context)
    : model_(model), batch_(batch), context_(context), caches_(model.make_caches(batch, context)),
      lengths_(size_t(batch), 0) {}

int64_t Session::cache_bytes() const {
  int64_t n = 0;
  for (const auto& c : caches_) n += c->bytes();
  return n;
}

Tensor Session::prefill(int64_t slot, const std::vector<int32_t>& prompt, bool all_positions) {
  LT2_CHECK(slot >= 0 && slot < batch_, "prefill: sequence ", slot, " outside the batch of ", batch_);
  LT2_CHECK(!prompt.empty(), "prefill: empty prompt");
  LT2_CHECK(int64_t(prompt.size()) <= context_, "prompt of ", prompt.size(), " tokens is longer than the context limit ",
            context_);
  Tensor ids = Tensor::empty({1, int64_t(prompt.size())}, DType::I32);
  std::copy(prompt.begin(), prompt.end(), ids.data<int32_t>());
  CacheRun r{CacheRun::Prefill, slot, nullptr, all_positions};
  Tensor logits = model_.run(ids, caches_, r);
  lengths_[size_t(slot)] = int64_t(prompt.size());
  return on_host(logits.reshape({logits.numel() / model_.config().vocab_size, model_.config().vocab_size}));
}

Tensor Session::decode(const std::vector<int32_t>& tokens) {
  LT2_CHECK(int64_t(tokens.size()) == batch_, "decode: ", tokens.size(), " tokens for a batch of ", batch_);
  for (int64_t b = 0; b < batch_; ++b) {
    LT2_CHECK(lengths_[b] > 0, "decode: sequence ", b, " was not prefilled");
    LT2_CHECK(lengths_[b] < context_, "sequence ", b, " reached the context limit of ", context_, " tokens");
  }
  Tensor ids = Tensor::empty({batch_, 1}, DType::I32);
  std::copy(tokens.begin(), tokens.end(), ids.data<int32_t>());
  const std::vector<int64_t> positions = lengths_;  // the new token's position = tokens so far
  Tensor logits = model_.run(ids, caches_, {CacheRun::Decode, 0, &positions});
  for (auto& n : lengths_) ++n;
  return on_host(logits.reshape({batch_, model_.config().vocab_size}));
}

}  // namespace lt2
