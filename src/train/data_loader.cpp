#include "train/data_loader.h"

#include <algorithm>
#include <utility>

#include "core/rng.h"

namespace lt2 {

TextSource::TextSource(std::vector<int32_t> train, std::vector<int32_t> val, int64_t seq_len, uint64_t seed, int64_t vocab)
    : train_(std::move(train)), val_(std::move(val)), L_(seq_len), seed_(seed), vocab_(vocab) {
  LT2_CHECK(seq_len >= 1, "seq_len must be >= 1, got ", seq_len);
  LT2_CHECK(int64_t(train_.size()) > L_ + 1, "the training split has ", train_.size(),
            " tokens, fewer than seq_len + 2 = ", L_ + 2, ": use more text or a shorter seq_len");
  LT2_CHECK(int64_t(val_.size()) > L_ + 1, "the validation split has ", val_.size(),
            " tokens, fewer than seq_len + 2 = ", L_ + 2, ": use more text or a shorter seq_len");
}

static void window(const std::vector<int32_t>& s, int64_t start, int64_t L, int32_t* tokens, int32_t* targets) {
  std::copy(s.begin() + start, s.begin() + start + L, tokens);
  std::copy(s.begin() + start + 1, s.begin() + start + L + 1, targets);
}

void TextSource::train_row(uint64_t i, int32_t* tokens, int32_t* targets) const {
  const CounterRng rng{seed_, stream_id("train-window")};
  window(train_, int64_t(rng.bits(i) % uint64_t(train_.size() - L_)), L_, tokens, targets);  // starts 0 .. size-L-1
}

int64_t TextSource::num_eval_rows() const { return std::max<int64_t>(1, int64_t(val_.size() - 1) / L_); }

void TextSource::eval_row(int64_t i, int32_t* tokens, int32_t* targets) const {
  const int64_t span = int64_t(val_.size()) - L_ - 1;
  window(val_, (i * L_) % (span + 1), L_, tokens, targets);
}

DataLoader::DataLoader(std::shared_ptr<const RowSource> source, int64_t batch) : source_(std::move(source)), B_(batch) {
  LT2_CHECK(batch >= 1, "batch size must be >= 1, got ", batch);
}

template <class Fill>
static Batch make_batch(int64_t B, int64_t L, Fill fill) {
  Batch b{Tensor::empty({B, L}, DType::I32), Tensor::empty({B, L}, DType::I32)};
  for (int64_t r = 0; r < B; ++r) fill(r, b.ids.data<int32_t>() + r * L, b.targets.data<int32_t>() + r * L);
  return b;
}

Batch DataLoader::train_batch(uint64_t index) const {
  return make_batch(B_, source_->seq_len(), [&](int64_t r, int32_t* t, int32_t* g) {
    source_->train_row(index * uint64_t(B_) + uint64_t(r), t, g);
  });
}

int64_t DataLoader::num_eval_batches() const { return (source_->num_eval_rows() + B_ - 1) / B_; }

Batch DataLoader::eval_batch(int64_t i) const {  // the last batch holds the remaining rows only
  const int64_t rows = std::min(B_, source_->num_eval_rows() - i * B_);
  LT2_CHECK(rows >= 1, "evaluation batch ", i, " is past the end of the evaluation set");
  return make_batch(rows, source_->seq_len(), [&](int64_t r, int32_t* t, int32_t* g) { source_->eval_row(i * B_ + r, t, g); });
}

}  // namespace lt2
