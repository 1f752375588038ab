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

// Projections that read the same input (attention's q, k, v, g; the FFN's gate, up), run as
// one GEMM per pass where the parameters have low-precision compute copies (the GPU's BF16
// path). The model packs them: the parts' compute copies become row blocks of `w` and their
// gradients row blocks of `grad`, so each part is still its own Param (own name on disk, own
// master value, optimizer state and gradient view) while the GEMMs read and write one buffer.
// Elsewhere (the CPU, F32 / F64 compute) nothing is packed and the layer runs the parts one by
// one: that path is the numerical reference.
struct FusedProj {
  ParamList parts;  // equal in width (rows) and input size, set by the owning layer
  Tensor w;         // [parts * N, K]: the packed compute copies; undefined when not packed
  Tensor grad;      // [parts * N, K]: the packed gradients (the master dtype)

  bool packed() const { return w.defined(); }
  int64_t n() const { return int64_t(parts.size()); }
  // Packs (compute dtype `dt`) when every part has a compute copy of that dtype to be made;
  // the parts' current gradients are kept. Called by the model before it refreshes the copies.
  void pack(DType dt);
  // Undoes pack(): each part gets its own gradient (a copy of its block) and no compute copy.
  void unpack();
};

// Fills every parameter from the counter-based RNG keyed by (seed, parameter name),
// so initialisation is independent of creation order and of the backend.
void init_params(const ParamList& params, uint64_t seed, double std);

}  // namespace lt2
