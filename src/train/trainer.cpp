#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "core/fs.h"
#include "core/safetensors.h"
#include "model/checkpoint.h"
#include "nn/dsa_indexer.h"
#include "ops/ops.h"

namespace lt2 {

Trainer::Trainer(LoopedModel& model, const TrainConfig& cfg, std::shared_ptr<const RowSource> data)
    : model_(model), cfg_(cfg), data_(std::move(data), cfg.batch_size) {
  cfg_.validate("train config");
  LT2_CHECK(data_.source().seq_len() == cfg.seq_len, "data rows have ", data_.source().seq_len(),
            " tokens but seq_len is ", cfg.seq_len);
  LT2_CHECK(data_.source().vocab_needed() <= model.config().vocab_size, "the data uses token ids up to ",
            data_.source().vocab_needed() - 1, " but the model's vocab_size is ", model.config().vocab_size);
  LT2_CHECK(cfg.seq_len <= model.config().max_position_embeddings, "seq_len ", cfg.seq_len,
            " exceeds the model's context limit max_position_embeddings = ", model.config().max_position_embeddings);
  for (const Param* p : model_.params()) {
    m_.push_back(Tensor::zeros_like(p->value));
    v_.push_back(Tensor::zeros_like(p->value));
  }
}

StepStats Trainer::step() {
  StepStats st;
  const bool has_dsa = model_.config().count(MixerSpec::Dsa) > 0;
  st.dsa_dense = has_dsa && step_ < cfg_.dsa_warmup_steps;
  if (has_dsa) model_.set_dsa_dense(st.dsa_dense);
  model_.zero_grad();
  const int64_t V = model_.config().vocab_size, A = cfg_.grad_accum;
  // The step's numbers stay on the model's device until one read at the end (on a GPU, the
  // step's only host synchronisation, plus one per DSA layer for the indexer loss): C rows per micro-batch, one per loss chunk, of
  // {loss sum, scored rows, first bad target row}; the last row's element 0 = the squared
  // gradient norm.
  const int64_t rows = int64_t(cfg_.batch_size) * cfg_.seq_len, C = model_.loss_chunks(rows);
  Tensor stats = Tensor::zeros({A * C + 1, 3}, DType::F64, model_.device());
  for (int64_t micro = 0; micro < A; ++micro) {
    const Batch b = data_.train_batch(uint64_t(step_ * A + micro));
    LT2_CHECK(b.ids.numel() == rows, "micro-batch of ", b.ids.numel(), " tokens, expected ", rows);
    Tensor loss_stats = stats.narrow(micro * C, C);
    model_.loss_backward(b.ids, b.targets.reshape({rows}), 1.0 / double(A), loss_stats);
    st.tokens += rows;
  }
  Tensor norm_sq = stats.select(A * C);
  const auto& ps = model_.params();
  // DSA stage 1 trains the indexers alone: the others are frozen (no update, not in the norm).
  auto frozen = [&](const Param* p) { return st.dsa_dense && !is_dsa_indexer_param(p->name); };
  for (const Param* p : ps)
    if (!frozen(p)) ops::accumulate_sum_squares(p->grad, norm_sq);
  ++step_;
  st.lr = cfg_.lr_at(step_);
  for (size_t i = 0; i < ps.size(); ++i)  // clipping happens inside the update, from norm_sq
    if (!frozen(ps[i]))
      ops::adamw_step(ps[i]->value, ps[i]->grad, m_[i], v_[i],
                    {st.lr, cfg_.beta1, cfg_.beta2, cfg_.adam_eps, ps[i]->decay ? cfg_.weight_decay : 0.0, step_,
                     cfg_.grad_clip, &norm_sq});
  model_.refresh_compute();
  if (has_dsa) model_.set_dsa_dense(false);  // evaluation, checkpoints and inference attend sparsely

  const Tensor host = stats.on_cuda() ? stats.to(Device::CPU) : stats;
  for (int64_t micro = 0; micro < A; ++micro) {
    double sum = 0, count = 0;
    for (int64_t c = 0; c < C; ++c) {
      const int64_t row = (micro * C + c) * 3, chunk = model_.loss_chunk_rows();
      const int64_t n = std::min(chunk, rows - c * chunk);  // the chunk's rows: "first bad row" when none is bad
      sum += host.item(row), count += host.item(row + 1);
      LT2_CHECK(host.item(row + 2) >= double(n), "training data: micro-batch ", micro, " of step ", step_,
                " has a target id outside [0, ", V, ")");
    }
    st.loss += (count > 0 ? sum / count : 0.0) / double(A);
  }
  st.grad_norm = std::sqrt(host.item(A * C * 3));
  if (has_dsa) st.indexer_kl = model_.take_indexer_kl();
  LT2_CHECK(std::isfinite(st.loss), "training diverged: loss is ", st.loss, " at step ", step_);
  LT2_CHECK(std::isfinite(st.grad_norm), "training diverged: gradient norm is ", st.grad_norm, " at step ", step_);
  return st;
}

EvalStats evaluate_model(const LoopedModel& model, const DataLoader& data, int64_t batches,
                         const std::function<void(int64_t, double)>& on_batch) {
  const int64_t n = std::min(batches, data.num_eval_batches()), V = model.config().vocab_size;
  LT2_CHECK(n >= 1, "evaluation needs at least one batch");
  double loss = 0;  // summed over scored positions, so a partial last batch weighs what it holds
  int64_t correct = 0, scored = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Batch b = data.eval_batch(i);
    Tensor logits = model.forward(b.ids, nullptr).reshape({b.ids.numel(), V}).to(Device::CPU, DType::F32);
    const float* lp = logits.data<float>();
    const int32_t* tg = b.targets.data<int32_t>();
    int64_t batch_scored = 0;
    for (int64_t r = 0; r < b.ids.numel(); ++r) {
      if (tg[r] < 0) continue;
      ++batch_scored;
      correct += std::max_element(lp + r * V, lp + (r + 1) * V) - (lp + r * V) == tg[r];
    }
    loss += ops::cross_entropy(logits, b.targets.reshape({b.ids.numel()}), nullptr) * double(batch_scored);
    scored += batch_scored;
    if (on_batch) on_batch(i + 1, loss / double(std::max<int64_t>(1, scored)));
  }
  LT2_CHECK(scored > 0, "evaluation found no positions to score");
  return {loss / double(scored), double(correct) / double(scored)};
}

TrainConfig saved_train_config(const std::string& dir) {
  const std::string st = dir + "/trainer_state.json";
  LT2_CHECK(fs::exists(st), dir, " has no trainer_state.json (not written by lt2 train): pass the data explicitly");
  const json::Value state = json::read_file(st);
  LT2_CHECK(state.is_object() && state.find("train"), st, ": missing field 'train'");
  return TrainConfig::from_json(*state.find("train"), st + ": train");
}

EvalStats Trainer::evaluate() const { return evaluate_model(model_, data_, cfg_.eval_batches); }

static std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "checkpoint-%06lld", static_cast<long long>(step));
  return buf;
}

std::string Trainer::save(const std::string& run_dir) const {
  namespace stdfs = std::filesystem;
  const std::string name = checkpoint_name(step_), final_dir = run_dir + "/" + name, tmp = final_dir + ".tmp";
  if (read_latest(run_dir) == name && fs::exists(final_dir + "/trainer_state.json")) return final_dir;  // saved already
  std::error_code ec;
  stdfs::remove_all(tmp, ec);  // leftovers of an interrupted save
  try {
    save_model(tmp, model_, tokenizer_file_);
    if (const char* f = std::getenv("LT2_FAULT_INJECT"); f && std::string(f) == "checkpoint")
      fail("fault injected: checkpoint write interrupted after model.safetensors (LT2_FAULT_INJECT)");
    safetensors::TensorList opt;
    const auto& ps = model_.params();
    for (size_t i = 0; i < ps.size(); ++i) {
      opt.emplace_back("exp_avg." + ps[i]->name, m_[i].to(Device::CPU));
      opt.emplace_back("exp_avg_sq." + ps[i]->name, v_[i].to(Device::CPU));
    }
    safetensors::save(tmp + "/optimizer.safetensors", opt);
    json::Value state = json::Value::object();
    state.set("step", step_);
    state.set("data_position", step_ * cfg_.grad_accum);  // micro-batches consumed
    state.set("train", cfg_.to_json());
    fs::write_file_atomic(tmp + "/trainer_state.json", state.dump(2) + "\n");
  } catch (...) {
    stdfs::remove_all(tmp, ec);  // the previous checkpoint and `latest` are untouched
    throw;
  }
  stdfs::remove_all(final_dir, ec);
  stdfs::rename(tmp, final_dir, ec);
  LT2_CHECK(!ec, "cannot rename ", tmp, " to ", final_dir, ": ", ec.message());
  const std::string previous = read_latest(run_dir);
  fs::write_file_atomic(run_dir + "/latest", name + "\n");
  // Keep the newest two checkpoints (the new one and the one before it); drop leftovers of
  // interrupted saves.
  std::vector<stdfs::path> stale;
  for (const auto& e : stdfs::directory_iterator(run_dir)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("checkpoint-", 0) == 0 && n != name && n != previous) stale.push_back(e.path());
  }
  for (const auto& p : stale) stdfs::remove_all(p, ec);
  return final_dir;
}

void Trainer::load(const std::string& path) {
  const std::string dir = resolve_checkpoint_dir(path);
  const ModelConfig saved = load_model_config(dir);
  LT2_CHECK(saved.to_json() == model_.config().to_json(), dir, "/config.json describes a different model than the one being trained");
  load_weights(model_, dir);
  const std::string opt_path = dir + "/optimizer.safetensors";
  const safetensors::File opt = safetensors::load(opt_path);
  for (size_t i = 0; i < model_.params().size(); ++i) {
    const std::string& n = model_.params()[i]->name;
    const Tensor& m = opt.get("exp_avg." + n);
    const Tensor& v = opt.get("exp_avg_sq." + n);
    LT2_CHECK(m.shape() == m_[i].shape() && v.shape() == v_[i].shape(), opt_path, ": moment shapes of '", n,
              "' do not match the model");
    m_[i].copy_from(m);
    v_[i].copy_from(v);
  }
  const std::string st_path = dir + "/trainer_state.json";
  const json::Value st = json::read_file(st_path);
  step_ = json::get_int(st, "step", st_path);
  LT2_CHECK(step_ >= 0, st_path, ": field 'step' must be >= 0");
}

}  // namespace lt2
