#include "train/data_loader.h"

#include <utility>

#include "core/rng.h"

namespace lt2 {

DataLoader::DataLoader(std::vector<int32_t> tokens, int64_t batch, int64_t seq_len, uint64_t seed, const char* what)
    : tokens_(std::move(tokens)), B_(batch), L_(seq_len), seed_(seed) {
  LT2_CHECK(batch >= 1 && seq_len >= 1, "data loader: batch and seq_len must be >= 1, got ", batch, " and ", seq_len);
  LT2_CHECK(int64_t(tokens_.size()) > seq_len + 1, "the ", what, " split has ", tokens_.size(),
            " tokens, fewer than seq_len + 2 = ", seq_len + 2, ": use more text or a shorter seq_len");
}

Batch DataLoader::window_batch(const std::vector<int64_t>& starts) const {
  Batch b{Tensor::empty({B_, L_}, DType::I32), Tensor::empty({B_, L_}, DType::I32)};
  int32_t* ids = b.ids.data<int32_t>();
  int32_t* tg = b.targets.data<int32_t>();
  for (int64_t i = 0; i < B_; ++i)
    for (int64_t t = 0; t < L_; ++t) {
      ids[i * L_ + t] = tokens_[starts[i] + t];
      tg[i * L_ + t] = tokens_[starts[i] + t + 1];
    }
  return b;
}

Batch DataLoader::train_batch(uint64_t index) const {
  const CounterRng rng{seed_, stream_id("train-batch") + index};
  const uint64_t span = tokens_.size() - L_ - 1;
  std::vector<int64_t> starts(B_);
  for (int64_t i = 0; i < B_; ++i) starts[i] = int64_t(rng.bits(i) % span);
  return window_batch(starts);
}

int64_t DataLoader::num_eval_batches() const { return std::max<int64_t>(1, (tokens_.size() - 1) / (B_ * L_)); }

Batch DataLoader::eval_batch(int64_t i) const {
  const int64_t span = tokens_.size() - L_ - 1;
  std::vector<int64_t> starts(B_);
  for (int64_t j = 0; j < B_; ++j) starts[j] = ((i * B_ + j) * L_) % (span + 1);
  return window_batch(starts);
}

}  // namespace lt2
