#include "nn/ffn.h"

#include "ops/ops.h"

namespace lt2 {

SwiGluFfn::SwiGluFfn(const std::string& p, int64_t d, int64_t hidden, DType dt)
    : gate(p + ".gate_proj.weight", {hidden, d}, dt, Init::Normal, true),
      up(p + ".up_proj.weight", {hidden, d}, dt, Init::Normal, true),
      down(p + ".down_proj.weight", {d, hidden}, dt, Init::Normal, true) {}

Tensor SwiGluFfn::forward(const Tensor& x, Ctx* ctx) const {
  Tensor g, u;
  if (gate_up_.packed()) {
    const Tensor gu = ops::linear_split(x, gate_up_.w, 2);  // [2, .., hidden]
    g = gu.select(0), u = gu.select(1);
  } else {
    g = ops::linear(x, gate.w()), u = ops::linear(x, up.w());
  }
  Tensor h = ops::swiglu(g, u);
  Tensor y = ops::linear(h, down.w());
  if (ctx) *ctx = {g, u};  // h is rebuilt in backward(): one cheap pass saves storing a hidden-wide tensor
  return y;
}

Tensor SwiGluFfn::hidden(const Ctx& c) { return ops::swiglu(c.g, c.u); }

Tensor SwiGluFfn::backward(Ctx& c, const Tensor& x, const Tensor& dy) {
  // dh first: the pass that turns it into dg, du also rebuilds h, which down's dW then reads.
  Tensor dh = ops::linear_backward_dx(down.w(), dy);
  Tensor dg, du, h;
  if (gate_up_.packed()) {
    // dg, du side by side in one [.., 2 * hidden] gradient: dx and both dW are one GEMM each.
    const int64_t hidden = gate.value.dim(0);
    Shape s = x.shape();
    s.back() = 2 * hidden;
    const Tensor dgu = Tensor::empty(s, dh.dtype(), dh.device());
    const ColBlock dg_out{dgu, 0}, du_out{dgu, hidden};
    ops::swiglu_backward(c.g, c.u, dh, dg, du, &h, &dg_out, &du_out);
    ops::linear_backward_dw(h, dy, down.grad);
    c = {};
    return ops::linear_backward(x, gate_up_.w, dgu, gate_up_.grad);
  }
  ops::swiglu_backward(c.g, c.u, dh, dg, du, &h);
  ops::linear_backward_dw(h, dy, down.grad);
  Tensor dx = ops::linear_backward(x, gate.w(), dg, gate.grad);
  ops::linear_backward(x, up.w(), du, up.grad, &dx);
  c = {};
  return dx;
}

}  // namespace lt2
