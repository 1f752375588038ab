#include "train/train_config.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lt2 {

double TrainConfig::lr_at(int64_t step) const {
  if (warmup_steps > 0 && step <= warmup_steps) return lr * double(step) / double(warmup_steps);
  const double floor = lr * min_lr_ratio;
  const int64_t decay = std::max<int64_t>(1, steps - warmup_steps);
  const double p = std::clamp(double(step - warmup_steps) / double(decay), 0.0, 1.0);
  return floor + 0.5 * (lr - floor) * (1.0 + std::cos(M_PI * p));
}

void TrainConfig::validate(const std::string& ctx) const {
  auto pos = [&](int64_t v, const char* f) { LT2_CHECK(v >= 1, ctx, ": field '", f, "' must be >= 1, got ", v); };
  pos(batch_size, "batch_size");
  pos(seq_len, "seq_len");
  pos(steps, "steps");
  pos(grad_accum, "grad_accum");
  pos(eval_batches, "eval_batches");
  LT2_CHECK(lr > 0 && std::isfinite(lr), ctx, ": field 'lr' must be > 0");
  LT2_CHECK(min_lr_ratio >= 0 && min_lr_ratio <= 1, ctx, ": field 'min_lr_ratio' must be in [0, 1]");
  LT2_CHECK(warmup_steps >= 0, ctx, ": field 'warmup_steps' must be >= 0");
  LT2_CHECK(weight_decay >= 0, ctx, ": field 'weight_decay' must be >= 0");
  LT2_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, ctx, ": fields 'beta1', 'beta2' must be in [0, 1)");
  LT2_CHECK(adam_eps > 0, ctx, ": field 'adam_eps' must be > 0");
  LT2_CHECK(grad_clip >= 0, ctx, ": field 'grad_clip' must be >= 0 (0 = off)");
  LT2_CHECK(dsa_warmup_steps >= 0, ctx, ": field 'dsa_warmup_steps' must be >= 0");
  LT2_CHECK(eval_every >= 0 && save_every >= 0, ctx, ": fields 'eval_every', 'save_every' must be >= 0");
  LT2_CHECK(val_fraction > 0 && val_fraction < 1, ctx, ": field 'val_fraction' must be in (0, 1)");
  LT2_CHECK(task_eval_rows >= 1, ctx, ": field 'task_eval_rows' must be >= 1");
}

TrainConfig TrainConfig::from_json(const json::Value& v, const std::string& ctx) {
  LT2_CHECK(v.is_object(), ctx, ": expected a JSON object");
  json::check_known_fields(
      v,
      {"batch_size", "seq_len", "steps", "grad_accum", "lr", "min_lr_ratio", "warmup_steps", "weight_decay", "beta1",
       "beta2", "adam_eps", "grad_clip", "dsa_warmup_steps", "seed", "eval_every", "eval_batches", "save_every", "data_files",
       "val_fraction", "task", "task_eval_rows", "data_shards", "mix"},
      ctx);
  TrainConfig c;
  c.batch_size = json::get_int(v, "batch_size", ctx, c.batch_size);
  c.seq_len = json::get_int(v, "seq_len", ctx, c.seq_len);
  c.steps = json::get_int(v, "steps", ctx, c.steps);
  c.grad_accum = json::get_int(v, "grad_accum", ctx, c.grad_accum);
  c.lr = json::get_number(v, "lr", ctx, c.lr);
  c.min_lr_ratio = json::get_number(v, "min_lr_ratio", ctx, c.min_lr_ratio);
  c.warmup_steps = json::get_int(v, "warmup_steps", ctx, c.warmup_steps);
  c.weight_decay = json::get_number(v, "weight_decay", ctx, c.weight_decay);
  c.beta1 = json::get_number(v, "beta1", ctx, c.beta1);
  c.beta2 = json::get_number(v, "beta2", ctx, c.beta2);
  c.adam_eps = json::get_number(v, "adam_eps", ctx, c.adam_eps);
  c.grad_clip = json::get_number(v, "grad_clip", ctx, c.grad_clip);
  c.dsa_warmup_steps = json::get_int(v, "dsa_warmup_steps", ctx, c.dsa_warmup_steps);
  c.seed = uint64_t(json::get_int(v, "seed", ctx, int64_t(c.seed)));
  c.eval_every = json::get_int(v, "eval_every", ctx, c.eval_every);
  c.eval_batches = json::get_int(v, "eval_batches", ctx, c.eval_batches);
  c.save_every = json::get_int(v, "save_every", ctx, c.save_every);
  c.val_fraction = json::get_number(v, "val_fraction", ctx, c.val_fraction);
  if (const json::Value* t = v.find("task"); t && !t->is_null()) {
    LT2_CHECK(t->is_object(), ctx, ": field 'task': expected an object like {\"name\": \"mqar\"}");
    c.task = *t;
  }
  c.task_eval_rows = json::get_int(v, "task_eval_rows", ctx, c.task_eval_rows);
  c.data_shards = json::get_string(v, "data_shards", ctx, c.data_shards);
  if (const json::Value* m = v.find("mix"); m && !m->is_null()) {
    LT2_CHECK(m->is_array(), ctx, ": field 'mix': expected an array like [{\"task\": {\"name\": \"niah1\"}, \"weight\": 0.05}]");
    c.mix = *m;
  }
  if (const json::Value* f = v.find("data_files")) {
    LT2_CHECK(f->is_array(), ctx, ": field 'data_files': expected an array of paths");
    for (const auto& e : f->elements()) {
      LT2_CHECK(e.is_string(), ctx, ": field 'data_files': expected strings");
      c.data_files.push_back(e.as_string());
    }
  }
  c.validate(ctx);
  return c;
}

json::Value TrainConfig::to_json() const {
  json::Value v = json::Value::object();
  v.set("batch_size", batch_size);
  v.set("seq_len", seq_len);
  v.set("steps", steps);
  v.set("grad_accum", grad_accum);
  v.set("lr", lr);
  v.set("min_lr_ratio", min_lr_ratio);
  v.set("warmup_steps", warmup_steps);
  v.set("weight_decay", weight_decay);
  v.set("beta1", beta1);
  v.set("beta2", beta2);
  v.set("adam_eps", adam_eps);
  v.set("grad_clip", grad_clip);
  v.set("dsa_warmup_steps", dsa_warmup_steps);
  v.set("seed", int64_t(seed));
  v.set("eval_every", eval_every);
  v.set("eval_batches", eval_batches);
  v.set("save_every", save_every);
  json::Value files = json::Value::array();
  for (const auto& f : data_files) files.push_back(f);
  v.set("data_files", files);
  v.set("val_fraction", val_fraction);
  if (!task.is_null()) v.set("task", task);
  v.set("task_eval_rows", task_eval_rows);
  if (!data_shards.empty()) v.set("data_shards", data_shards);
  if (!mix.is_null()) v.set("mix", mix);
  return v;
}

}  // namespace lt2
