// SwiGLU, the sigmoid output gate and GDN's beta / decay gates on the GPU.
#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

namespace {

// ---- SwiGLU (ew_map functors: elements [i, i + V)) -------------------------------------------
template <class T>
struct Swiglu {
  const T *g, *u;
  T* h;
  template <int V>
  __device__ void apply(int64_t i) const {
    float gv[V], uv[V];
    ld_vec<V>(g + i, gv);
    ld_vec<V>(u + i, uv);
#pragma unroll
    for (int k = 0; k < V; ++k) gv[k] = silu_f(gv[k]) * uv[k];
    st_vec<V>(h + i, gv);
  }
};

// h (may be null): the forward's output, rebuilt from the g and u this pass reads anyway.
// dg, du may be column blocks of a fused projection's packed gradient.
template <class T>
struct SwigluBackward {
  const T *g, *u, *dh;
  Out<T> dg, du;
  T* h;
  template <int V>
  __device__ void apply(int64_t i) const {
    float gv[V], uv[V], dv[V], hv[V];
    ld_vec<V>(g + i, gv);
    ld_vec<V>(u + i, uv);
    ld_vec<V>(dh + i, dv);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      hv[k] = silu_f(gv[k]) * uv[k];
      uv[k] = dv[k] * uv[k] * silu_grad_f(gv[k]);  // dg
      dv[k] = dv[k] * silu_f(gv[k]);              // du
    }
    st_vec<V>(dg.at(i), uv);
    st_vec<V>(du.at(i), dv);
    if (h) st_vec<V>(h + i, hv);
  }
};

// ---- sigmoid output gate -----------------------------------------------------------------
// Per head: y[i] = a[i] * sigmoid(z[i / grp]), grp = D.
template <class T>
__global__ void sigmoid_gate_head_kernel(const T* a, const T* z, T* y, int64_t n, int64_t grp) {
  LT2_GRID_STRIDE(i, n) y[i] = st<T>(ld(a[i]) * sigmoid_f(ld(z[i / grp])));
}

// Per channel every element is independent (ew_map functors).
template <class T>
struct SigmoidGateChannel {
  const T *a, *z;
  T* y;
  template <int V>
  __device__ void apply(int64_t i) const {
    float av[V], zv[V];
    ld_vec<V>(a + i, av);
    ld_vec<V>(z + i, zv);
#pragma unroll
    for (int k = 0; k < V; ++k) av[k] *= sigmoid_f(zv[k]);
    st_vec<V>(y + i, av);
  }
};
// y (may be null): the forward's output, rebuilt (as in the head kernel below).
// dz may be a column block of a fused projection's packed gradient.
template <class T>
struct SigmoidGateChannelBackward {
  const T *a, *z, *dy;
  T* da;
  Out<T> dz;
  T* y;
  template <int V>
  __device__ void apply(int64_t i) const {
    float av[V], zv[V], gv[V];
    ld_vec<V>(a + i, av);
    ld_vec<V>(z + i, zv);
    ld_vec<V>(dy + i, gv);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float s = sigmoid_f(zv[k]);
      zv[k] = gv[k] * av[k] * s * (1.f - s);  // dz
      gv[k] *= s;                             // da
      av[k] *= s;                             // y
    }
    st_vec<V>(da + i, gv);
    st_vec<V>(dz.at(i), zv);
    if (y) st_vec<V>(y + i, av);
  }
};

// Per head: dz[j] sums over the head's grp channels, one warp per gate value.
template <class T>
__global__ void sigmoid_gate_backward_head_kernel(const T* a, const T* z, const T* dy, T* da, Out<T> dz, T* y,
                                                  int64_t nz, int64_t grp) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (j >= nz) return;  // whole warps leave together: the shuffles below stay full-warp
  const int lane = threadIdx.x & 31;
  const float s = sigmoid_f(ld(z[j]));
  float acc = 0.f;
  for (int64_t i = j * grp + lane; i < (j + 1) * grp; i += 32) {
    const float g = ld(dy[i]), av = ld(a[i]);
    da[i] = st<T>(g * s);
    acc += g * av;
    if (y) y[i] = st<T>(av * s);
  }
  acc = warp_sum(acc);
  if (lane == 0) *dz.at(j) = st<T>(acc * s * (1.f - s));
}

// ---- GDN gates -----------------------------------------------------------------------------
// beta = sigmoid(b); g = -exp(A_log[h]) * softplus(a + dt_bias[h]); beta and g are F32.
template <class T, class P>
__global__ void gdn_gates_kernel(const T* a, const T* b, const P* A_log, const P* dt_bias, float* beta, float* g,
                                 int64_t n, int64_t HV) {
  LT2_GRID_STRIDE(i, n) {
    const int64_t h = i % HV;
    beta[i] = sigmoid_f(ld(b[i]));
    g[i] = -expf(ld(A_log[h])) * softplus_f(ld(a[i]) + ld(dt_bias[h]));
  }
}

// Input gradients; the parameter gradients are reduced separately (deterministically).
template <class T, class P, class G>
__global__ void gdn_gates_backward_kernel(const T* a, const T* b, const P* A_log, const P* dt_bias, const G* dbeta,
                                          const G* dg, T* da, T* db, int64_t n, int64_t HV) {
  LT2_GRID_STRIDE(i, n) {
    const int64_t h = i % HV;
    const float s = sigmoid_f(ld(b[i]));
    db[i] = st<T>(ld(dbeta[i]) * s * (1.f - s));
    // g = -A softplus(x), x = a + dt_bias: dg/dx = -A sigmoid(x)
    const float x = ld(a[i]) + ld(dt_bias[h]);
    da[i] = st<T>(-ld(dg[i]) * expf(ld(A_log[h])) * sigmoid_f(x));
  }
}

// dA_log[h] += sum_r dg * g  (dg/dA_log = g = -A softplus(x))
template <class T, class P, class G>
struct GdnDALog {
  const T* a;
  const P* A_log;
  const P* dt_bias;
  const G* dg;
  int64_t HV;
  __device__ float operator()(int64_t r, int64_t h) const {
    const int64_t i = r * HV + h;
    return ld(dg[i]) * (-expf(ld(A_log[h])) * softplus_f(ld(a[i]) + ld(dt_bias[h])));
  }
};

// ddt_bias[h] += sum_r da  (the fp32 value, before da is rounded to its storage type)
template <class T, class P, class G>
struct GdnDDtBias {
  const T* a;
  const P* A_log;
  const P* dt_bias;
  const G* dg;
  int64_t HV;
  __device__ float operator()(int64_t r, int64_t h) const {
    const int64_t i = r * HV + h;
    return -ld(dg[i]) * expf(ld(A_log[h])) * sigmoid_f(ld(a[i]) + ld(dt_bias[h]));
  }
};

// Per channel (1) when z has as many elements as a, per head (D) when it has one per D-group.
int64_t gate_group(const Tensor& a, const Tensor& z) {
  check_same_dtype(a, z, "sigmoid_gate");
  LT2_CHECK(a.ndim() == 4, "sigmoid_gate: a must be [B, L, H, D], got ", shape_str(a.shape()));
  if (z.numel() == a.numel()) return 1;
  LT2_CHECK(z.numel() * a.dim(3) == a.numel(), "sigmoid_gate: gate ", shape_str(z.shape()),
            " is neither per channel nor per head for ", shape_str(a.shape()));
  return a.dim(3);
}

}  // namespace

Tensor swiglu(const Tensor& g, const Tensor& u) {
  expect_cuda({&g, &u}, "swiglu");
  check_shape(u, g.shape(), "swiglu up");
  check_same_dtype(g, u, "swiglu");
  Tensor h = Tensor::empty_like(g);
  const int64_t n = g.numel();
  if (n == 0) return h;
  dispatch_float(g.dtype(), [&](auto t) {
    using T = decltype(t);
    ew_map<T>(n, {g.bytes(), u.bytes(), h.bytes()}, Swiglu<T>{g.data<T>(), u.data<T>(), h.data<T>()}, "swiglu");
  });
  return h;
}

void swiglu_backward(const Tensor& g, const Tensor& u, const Tensor& dh, Tensor& dg, Tensor& du, Tensor* h,
                     const ColBlock* dg_out, const ColBlock* du_out) {
  expect_cuda({&g, &u, &dh}, "swiglu_backward");
  check_shape(u, g.shape(), "swiglu up");
  check_shape(dh, g.shape(), "swiglu dh");
  check_same_dtype(g, u, "swiglu_backward");
  check_same_dtype(g, dh, "swiglu_backward");
  if (h) *h = Tensor::empty_like(g);
  dispatch_float(g.dtype(), [&](auto t) {
    using T = decltype(t);
    const Out<T> dgo = make_out<T>(g, dg, dg_out, "swiglu_backward dg");
    const Out<T> duo = make_out<T>(u, du, du_out, "swiglu_backward du");
    T* hp = h ? h->data<T>() : nullptr;
    constexpr int kWide = 16 / sizeof(T);
    ew_map<T>(g.numel(), {g.bytes(), u.bytes(), dh.bytes(), dgo.p, duo.p, hp},
              SwigluBackward<T>{g.data<T>(), u.data<T>(), dh.data<T>(), dgo, duo, hp}, "swiglu_backward",
              dgo.splits_into(kWide) && duo.splits_into(kWide));
  });
}

Tensor sigmoid_gate(const Tensor& a, const Tensor& z) {
  expect_cuda({&a, &z}, "sigmoid_gate");
  const int64_t grp = gate_group(a, z), n = a.numel();
  Tensor y = Tensor::empty_like(a);
  if (n == 0) return y;
  dispatch_float(a.dtype(), [&](auto t) {
    using T = decltype(t);
    if (grp == 1) {
      ew_map<T>(n, {a.bytes(), z.bytes(), y.bytes()}, SigmoidGateChannel<T>{a.data<T>(), z.data<T>(), y.data<T>()},
                "sigmoid_gate");
    } else {
      sigmoid_gate_head_kernel<<<ew_grid(n), kEwThreads, 0, stream()>>>(a.data<T>(), z.data<T>(), y.data<T>(), n,
                                                                        grp);
      check_launch("sigmoid_gate");
    }
  });
  return y;
}

void sigmoid_gate_backward(const Tensor& a, const Tensor& z, const Tensor& dy, Tensor& da, Tensor& dz, Tensor* y,
                           const ColBlock* dz_out) {
  expect_cuda({&a, &z, &dy}, "sigmoid_gate_backward");
  const int64_t grp = gate_group(a, z), n = a.numel(), nz = z.numel();
  check_shape(dy, a.shape(), "sigmoid_gate dy");
  check_same_dtype(a, dy, "sigmoid_gate_backward");
  da = Tensor::empty_like(a);
  if (y) *y = Tensor::empty_like(a);
  dispatch_float(a.dtype(), [&](auto t) {
    using T = decltype(t);
    const Out<T> dzo = make_out<T>(z, dz, dz_out, "sigmoid_gate_backward dz");
    if (n == 0) return;
    T* yp = y ? y->data<T>() : nullptr;
    if (grp == 1) {
      ew_map<T>(n, {a.bytes(), z.bytes(), dy.bytes(), da.bytes(), dzo.p, yp},
                SigmoidGateChannelBackward<T>{a.data<T>(), z.data<T>(), dy.data<T>(), da.data<T>(), dzo, yp},
                "sigmoid_gate_backward", dzo.splits_into(16 / sizeof(T)));
    } else {
      const int warps = kEwThreads / 32;
      sigmoid_gate_backward_head_kernel<<<unsigned(blocks_for(nz, warps)), kEwThreads, 0, stream()>>>(
          a.data<T>(), z.data<T>(), dy.data<T>(), da.data<T>(), dzo, yp, nz, grp);
    }
  });
  check_launch("sigmoid_gate_backward");
}

void gdn_gates(const Tensor& a, const Tensor& b, const Tensor& A_log, const Tensor& dt_bias, Tensor& beta,
               Tensor& g) {
  expect_cuda({&a, &b, &A_log, &dt_bias}, "gdn_gates");
  check_shape(b, a.shape(), "gdn_gates b");
  check_same_dtype(a, b, "gdn_gates");
  const int64_t HV = a.dim(-1), n = a.numel();
  check_shape(A_log, {HV}, "gdn_gates A_log");
  check_shape(dt_bias, {HV}, "gdn_gates dt_bias");
  check_same_dtype(A_log, dt_bias, "gdn_gates");
  beta = Tensor::empty(a.shape(), DType::F32, Device::CUDA);
  g = Tensor::empty(a.shape(), DType::F32, Device::CUDA);
  if (n == 0) return;
  dispatch_float(a.dtype(), [&](auto t) {
    dispatch_float(A_log.dtype(), [&](auto p) {
      using T = decltype(t);
      using P = decltype(p);
      gdn_gates_kernel<<<ew_grid(n), kEwThreads, 0, stream()>>>(a.data<T>(), b.data<T>(), A_log.data<P>(),
                                                               dt_bias.data<P>(), beta.data<float>(),
                                                               g.data<float>(), n, HV);
    });
  });
  check_launch("gdn_gates");
}

void gdn_gates_backward(const Tensor& a, const Tensor& b, const Tensor& A_log, const Tensor& dt_bias,
                        const Tensor& dbeta, const Tensor& dg, Tensor& da, Tensor& db, Tensor& dA_log,
                        Tensor& ddt_bias) {
  expect_cuda({&a, &b, &A_log, &dt_bias, &dbeta, &dg, &dA_log, &ddt_bias}, "gdn_gates_backward");
  check_shape(b, a.shape(), "gdn_gates b");
  check_shape(dbeta, a.shape(), "gdn_gates dbeta");
  check_shape(dg, a.shape(), "gdn_gates dg");
  check_same_dtype(a, b, "gdn_gates_backward");
  check_same_dtype(A_log, dt_bias, "gdn_gates_backward");
  check_same_dtype(dbeta, dg, "gdn_gates_backward");
  const int64_t HV = a.dim(-1), rows = rows_of(a), n = a.numel();
  check_shape(A_log, {HV}, "gdn_gates A_log");
  check_shape(dt_bias, {HV}, "gdn_gates dt_bias");
  check_shape(dA_log, {HV}, "gdn_gates dA_log");
  check_shape(ddt_bias, {HV}, "gdn_gates ddt_bias");
  expect_f32(dA_log, "gdn_gates_backward", "dA_log");
  expect_f32(ddt_bias, "gdn_gates_backward", "ddt_bias");
  da = Tensor::empty_like(a);
  db = Tensor::empty_like(b);
  if (n == 0) return;
  // dbeta / dg are normally F32 (gradients of the F32 gates) but any float storage works.
  dispatch_float(a.dtype(), [&](auto t) {
    dispatch_float(A_log.dtype(), [&](auto p) {
      dispatch_float(dg.dtype(), [&](auto gt) {
        using T = decltype(t);
        using P = decltype(p);
        using G = decltype(gt);
        gdn_gates_backward_kernel<<<ew_grid(n), kEwThreads, 0, stream()>>>(
            a.data<T>(), b.data<T>(), A_log.data<P>(), dt_bias.data<P>(), dbeta.data<G>(), dg.data<G>(),
            da.data<T>(), db.data<T>(), n, HV);
        check_launch("gdn_gates_backward");
        colsum_accumulate(GdnDALog<T, P, G>{a.data<T>(), A_log.data<P>(), dt_bias.data<P>(), dg.data<G>(), HV}, rows,
                          HV, dA_log, "gdn_gates_backward");
        colsum_accumulate(GdnDDtBias<T, P, G>{a.data<T>(), A_log.data<P>(), dt_bias.data<P>(), dg.data<G>(), HV},
                          rows, HV, ddt_bias, "gdn_gates_backward");
      });
    });
  });
}

}  // namespace lt2::cuda
