#pragma once
// SwiGLU feed-forward: down( silu(gate x) * up x ).
#include "nn/param.h"

namespace lt2 {

class SwiGluFfn {
 public:
  struct Ctx { Tensor g, u; };  // not the input x: the block rebuilds it for backward()
  SwiGluFfn(const std::string& prefix, int64_t d, int64_t hidden, DType dt);
  Tensor forward(const Tensor& x, Ctx* ctx) const;
  Tensor backward(Ctx& ctx, const Tensor& x, const Tensor& dy);
  // silu(gate x) * up x, rebuilt from a forward context (which does not keep it).
  static Tensor hidden(const Ctx& ctx);
  void collect(ParamList& out) { out.insert(out.end(), {&gate, &up, &down}); }
  void collect_fused(std::vector<FusedProj*>& out) {
    gate_up_.parts = {&gate, &up};  // set here, once the layer sits where it stays
    out.push_back(&gate_up_);
  }

  Param gate, up, down;

 private:
  FusedProj gate_up_;
};

}  // namespace lt2
