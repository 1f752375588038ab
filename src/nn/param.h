#pragma once
// A trainable parameter: its Hugging Face style name, value, gradient, and how it is
// initialised and regularised. Layers own Params; the model hands out pointers to them.
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lt2 {

// SPEC §1/§3 initialisation rules.
enum class Init { Normal, Zeros, Ones, ALog, DtBias };

struct Param {
  std::string name;
  Tensor value;    // the master copy (F32 for training; F64 in gradient checks)
  Tensor grad;     // same dtype and device as value
  Tensor compute;  // optional low-precision copy (BF16 on the GPU) that forward/backward read

  Init init = Init::Normal;
  bool decay = true;  // weight decay applies (matrices only: not norms, rho, A_log, dt_bias)

  Param() = default;
  Param(std::string n, const Shape& shape, DType dt, Init i, bool wd)
      : name(std::move(n)), value(Tensor::zeros(shape, dt)), grad(Tensor::zeros(shape, dt)), init(i), decay(wd) {}

  // The tensor the ops read: the low-precision copy when there is one.
  const Tensor& w() const { return compute.defined() ? compute : value; }
};

using ParamList = std::vector<Param*>;

// Fills every parameter from the counter-based RNG keyed by (seed, parameter name),
// so initialisation is independent of creation order and of the backend.
void init_params(const ParamList& params, uint64_t seed, double std);

}  // namespace lt2
