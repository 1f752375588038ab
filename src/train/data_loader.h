#pragma once
// Where training rows come from. A RowSource gives row i of the training stream and row i
// of the evaluation set as pure functions of (seed, i), so the data position of a run is its
// row counter and resuming needs no loader state. Rows are (tokens, targets) of seq_len
// positions; target -1 means no loss there (synthetic tasks score only their answers).
#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace lt2 {

struct Batch {
  Tensor ids;      // I32 [B, L]
  Tensor targets;  // I32 [B, L]: what each position must predict, -1 = ignored
};

class RowSource {
 public:
  virtual ~RowSource() = default;
  virtual int64_t seq_len() const = 0;
  virtual int64_t vocab_needed() const = 0;  // every token and target is below this
  virtual int64_t num_eval_rows() const = 0;
  // Write seq_len tokens and targets.
  virtual void train_row(uint64_t i, int32_t* tokens, int32_t* targets) const = 0;
  virtual void eval_row(int64_t i, int32_t* tokens, int32_t* targets) const = 0;
};

// Text: random windows of a training token stream, consecutive windows of a validation one.
class TextSource : public RowSource {
 public:
  TextSource(std::vector<int32_t> train, std::vector<int32_t> val, int64_t seq_len, uint64_t seed, int64_t vocab = 256);
  int64_t seq_len() const override { return L_; }
  int64_t vocab_needed() const override { return vocab_; }
  int64_t num_eval_rows() const override;
  void train_row(uint64_t i, int32_t* tokens, int32_t* targets) const override;
  void eval_row(int64_t i, int32_t* tokens, int32_t* targets) const override;

 private:
  std::vector<int32_t> train_, val_;
  int64_t L_;
  uint64_t seed_;
  int64_t vocab_;
};

// Batches of B rows: training batch `index` holds rows index*B .. index*B + B-1.
class DataLoader {
 public:
  DataLoader(std::shared_ptr<const RowSource> source, int64_t batch);
  Batch train_batch(uint64_t index) const;
  Batch eval_batch(int64_t i) const;  // rows i*B .. of the evaluation set, each scored once
  int64_t num_eval_batches() const;
  const RowSource& source() const { return *source_; }

 private:
  std::shared_ptr<const RowSource> source_;
  int64_t B_;
};

}  // namespace lt2
