// Causal depthwise convolution (width W, no bias) followed by SiLU, as in GDN's short conv,
// and its decode step.
// Training kernels tile each sequence into runs of kConvRows rows, one thread block per run and
// 32 · VEC channels. Each warp takes a sub-run of kSubRows rows; a thread owns VEC adjacent
// channels of it (a warp covers consecutive channels of a row, in 8- or 16-byte accesses) and
// loads all the rows it reads, its sub-run plus the W-1 rows before it (and, backward, the
// W-1 rows of dpre after it), before it uses the first. Measured on an H100: the kernels are
// bound by issuing instructions, not by DRAM (a walk with the window in registers, rows staged
// in shared memory, 16-byte rows and other block orders were no faster; the sigmoid's one-MUFU
// reciprocal was: 48 -> 38 us forward, 102 -> 76 us backward at C 512; bench/RESULTS.md). The
// backward computes dpre = dy silu'(pre) for its rows, then dx and the sub-run's dw, and the
// block adds its four sub-runs' dw in shared memory in a fixed order. The weight may be F32 or
// the activations' dtype; its gradient is F32 and accumulated (+=) from the runs' partial sums
// through op_util's deterministic column sum (no atomics). W = 4 (GDN's) is a compile-time
// constant of its kernels. The backward may store dx with a wider row stride, into a column
// block of a fused projection's packed gradient (GDN's [dq | dk] and [dv | dz]).
// conv_silu_l2norm (GDN's q, k) runs the same kernels with NORM lanes a head (head 32 / 64 /
// 128 channels, 4 a lane): the forward scales each row's head by its L2 norm before the store,
// the backward turns dy into d(conv output) with the head's two sums (warp shuffles) before
// dpre. Shapes outside that (other heads, widths, C not a multiple of 128 channels) compose
// conv_silu and l2norm.
#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

namespace {

// Bound on the conv width (GDN uses W = 4; widths up to 4 take the register-lean kernels).
constexpr int kMaxConvWidth = 16;
// Rows per run (one block; dw partials are per run) and threads per block of the training
// kernels: 32 lanes across channels times four sub-runs of kSubRows rows.
constexpr int kConvRows = 32;
constexpr int kConvThreads = 128;
constexpr int kConvLanes = 32;
constexpr int kSubRuns = kConvThreads / kConvLanes;
constexpr int kSubRows = kConvRows / kSubRuns;

void check_conv(const Tensor& x, const Tensor& w, const char* op) {
  expect_cuda({&x, &w}, op);
  LT2_CHECK(x.ndim() == 3, op, ": x must be [B, L, C], got ", shape_str(x.shape()));
  LT2_CHECK(w.ndim() == 2 && w.dim(0) == x.dim(2), op, ": weight ", shape_str(w.shape()), " does not match C = ",
            x.dim(2));
  LT2_CHECK(w.dim(1) >= 1 && w.dim(1) <= kMaxConvWidth, op, ": conv width ", w.dim(1), " must be in 1..",
            kMaxConvWidth, " on CUDA");
  LT2_CHECK(w.dtype() == DType::F32 || w.dtype() == x.dtype(), op, ": weight must be F32 or ",
            dtype_name(x.dtype()), ", got ", dtype_name(w.dtype()));
}

// Calls f(T{}, TW{}) for activation dtype xt and weight dtype wt (F32 or xt).
template <class F>
void dispatch_conv(DType xt, DType wt, F&& f) {
  dispatch_float(xt, [&](auto x_tag) {
    dispatch_float(wt, [&](auto w_tag) { f(x_tag, w_tag); });
  });
}

// The sub-run a thread owns: channels [c0, c0 + VEC) of rows [t0, t1) of sequence b (empty,
// t1 = t0, past the sequence's end).
struct ConvRun {
  int64_t base, c0, t0, t1;  // base: offset of (b, t = 0, c0)
  int64_t row0;              // b L: the row of (b, t = 0) in [B L, C]
  int64_t run;               // index of the block's run (b, row tile), for dw partials
  bool active;
  __device__ ConvRun(int64_t L, int64_t C, int vec) {
    const int64_t tiles = (L + kConvRows - 1) / kConvRows;
    run = blockIdx.x;
    const int64_t b = run / tiles;
    t0 = (run % tiles) * kConvRows + int64_t(threadIdx.x / kConvLanes) * kSubRows;
    t1 = t0 + kSubRows < L ? t0 + kSubRows : L;
    if (t1 < t0) t1 = t0;
    c0 = (int64_t(blockIdx.y) * kConvLanes + threadIdx.x % kConvLanes) * vec;
    active = c0 < C;
    row0 = b * L;
    base = row0 * C + c0;
  }
};

// wrev[f][i] = w[c0 + i, W-1-f], the tap through which x[t - f] reaches pre[t] (and dpre[s + f]
// reaches dx[s]); zero for f >= W.
template <int VEC, int WMAX, class TW>
__device__ __forceinline__ void load_taps(const TW* w, int64_t c0, int W, float (&wrev)[WMAX][VEC]) {
#pragma unroll
  for (int f = 0; f < WMAX; ++f)
#pragma unroll
    for (int i = 0; i < VEC; ++i) wrev[f][i] = f < W ? ld(w[(c0 + i) * W + (W - 1 - f)]) : 0.f;
}

// VEC channels of rows [t - (WMAX-1), t - (WMAX-1) + N) into raw (storage-type) packs, zeros
// before the sequence start and from row `end` on: every load of a sub-run is issued before the
// first is used.
template <int N, int WMAX, int VEC, class T>
__device__ __forceinline__ void load_rows(const T* x, int64_t base, int64_t t, int64_t end, int64_t C,
                                          Pack<T, VEC> (&rows)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const int64_t s = t - (WMAX - 1) + i;
    if (s >= 0 && s < end) {
      rows[i] = *reinterpret_cast<const Pack<T, VEC>*>(x + base + s * C);
    } else {
#pragma unroll
      for (int k = 0; k < VEC; ++k) rows[i].v[k] = st<T>(0.f);
    }
  }
}

// pre[t0 + u] of channel c0 + i: sum over f < W of w[W-1-f] x[t0 + u - f], from rows as
// load_rows leaves them (rows[u + WMAX-1 - f] = x[t0 + u - f]).
template <int WMAX, int VEC, int N, class T>
__device__ __forceinline__ float pre_activation(const float (&wrev)[WMAX][VEC], const Pack<T, VEC> (&rows)[N],
                                                int u, int i, int W) {
  float acc = 0.f;
#pragma unroll
  for (int f = 0; f < WMAX; ++f)
    if (f < W) acc += wrev[f][i] * ld(rows[u + WMAX - 1 - f].v[i]);
  return acc;
}

// Sum of v over the NORM lanes of a head (xor offsets below NORM stay inside it).
template <int NORM>
__device__ __forceinline__ float head_sum(float v) {
#pragma unroll
  for (int o = NORM / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// y (this lane's VEC values of a head spread over NORM lanes) scaled to scale y / sqrt(sum y^2 +
// 1e-6) over the head, as l2norm.
template <int NORM, int VEC>
__device__ __forceinline__ void l2norm_head(float (&y)[VEC], float scale) {
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < VEC; ++i) ss += y[i] * y[i];
  const float f = scale * rsqrtf(head_sum<NORM>(ss) + 1e-6f);
#pragma unroll
  for (int i = 0; i < VEC; ++i) y[i] *= f;
}

// dpre of one row for VEC channels from pre and the incoming gradient g. With NORM, g is the
// gradient of the normalised output scale y / n (y = silu(pre), n = sqrt(sum y^2 + 1e-6) over
// the head): d y = scale (g / n - y (g . y) / n^3), as l2norm_backward.
template <int NORM, int VEC>
__device__ __forceinline__ void row_dpre(const float (&pre)[VEC], float (&g)[VEC], float scale) {
  if constexpr (NORM > 0) {
    float y[VEC], ss = 0.f, dot = 0.f;
#pragma unroll
    for (int i = 0; i < VEC; ++i) {
      y[i] = silu_f(pre[i]);
      ss += y[i] * y[i];
      dot += y[i] * g[i];
    }
    const float inv = rsqrtf(head_sum<NORM>(ss) + 1e-6f), a = scale * inv;
    const float b = a * head_sum<NORM>(dot) * inv * inv;
#pragma unroll
    for (int i = 0; i < VEC; ++i) g[i] = g[i] * a - y[i] * b;
  }
#pragma unroll
  for (int i = 0; i < VEC; ++i) g[i] *= silu_grad_f(pre[i]);
}

// WMAX: compile-time bound on W (the register arrays' size); W itself is a runtime argument,
// unless EXACT (W == WMAX, known at compile time). A thread loads its sub-run's rows and the
// W-1 before them at once, then computes each output from them. NORM > 0: l2norm over heads of
// NORM lanes (every lane of the warp active: C a multiple of 32 VEC).
template <class T, class TW, int VEC, int WMAX, bool EXACT, int NORM = 0>
__global__ void __launch_bounds__(kConvThreads) conv_silu_kernel(const T* __restrict__ x, const TW* __restrict__ w,
                                                                  T* __restrict__ y, int64_t L, int64_t C, int w_arg,
                                                                  float scale) {
  const int W = EXACT ? WMAX : w_arg;
  const ConvRun r(L, C, VEC);
  if (!r.active || r.t0 == r.t1) return;  // an empty sub-run past L must not read its halo rows
  Pack<T, VEC> rows[kSubRows + WMAX - 1];  // rows[s + WMAX-1 - f] = x[t0 + s - f]
  load_rows<kSubRows + WMAX - 1, WMAX>(x, r.base, r.t0, r.t1, C, rows);
  float wrev[WMAX][VEC];
  load_taps(w, r.c0, W, wrev);
#pragma unroll
  for (int s = 0; s < kSubRows; ++s) {
    if (r.t0 + s >= r.t1) break;
    float out[VEC];
#pragma unroll
    for (int i = 0; i < VEC; ++i) out[i] = silu_f(pre_activation(wrev, rows, s, i, W));
    if constexpr (NORM > 0) l2norm_head<NORM>(out, scale);
    st_vec<VEC>(y + r.base + (r.t0 + s) * C, out);
  }
}

// The backward of one sub-run [t0, t1), its loads issued at once as in the forward: dy at rows
// t0 .. t1 + W - 2 (every dpre a dx of the sub-run needs), x from W-1 rows before those.
// dpre[t] = dy[t] silu'(pre[t]); dx[s] = sum_f w[W-1-f] dpre[s + f] for its rows; dw[j][i] +=
// sum over its rows t of dpre[t] x[t - (W-1) + j] for channel c0 + i. dx rows are ldx apart
// (C, or wider when dx is a column block of a fused projection's gradient).
template <class T, class TW, int VEC, int WMAX, int NORM>
__device__ __forceinline__ void conv_backward_subrun(const T* __restrict__ x, const TW* __restrict__ w,
                                                   const T* __restrict__ dy, T* __restrict__ dx, int64_t ldx,
                                                   const ConvRun& r, int64_t L, int64_t C, int W, float scale,
                                                   float (&dw)[WMAX][VEC]) {
  constexpr int kD = kSubRows + WMAX - 1;  // dpre rows t0 + u, u < kD
  const int64_t t_end = r.t1 + W - 1 < L ? r.t1 + W - 1 : L;
  Pack<T, VEC> xrows[kD + WMAX - 1], dyrows[kD];  // xrows[u + WMAX-1 - f] = x[t0 + u - f]
  load_rows<kD + WMAX - 1, WMAX>(x, r.base, r.t0, t_end, C, xrows);
  load_rows<kD, 1>(dy, r.base, r.t0, t_end, C, dyrows);
  float wrev[WMAX][VEC];
  load_taps(w, r.c0, W, wrev);
  float dp[kD][VEC], dwrev[WMAX][VEC] = {};  // dwrev[f] = the sub-run's part of dw[W-1-f]
#pragma unroll
  for (int u = 0; u < kD; ++u) {  // dy is zero past t_end: so is dp
    float pre[VEC];
#pragma unroll
    for (int i = 0; i < VEC; ++i) pre[i] = pre_activation(wrev, xrows, u, i, W), dp[u][i] = ld(dyrows[u].v[i]);
    row_dpre<NORM>(pre, dp[u], scale);
  }
#pragma unroll
  for (int s = 0; s < kSubRows; ++s) {
    if (r.t0 + s >= r.t1) break;
    float out[VEC];
#pragma unroll
    for (int i = 0; i < VEC; ++i) {
      out[i] = 0.f;
#pragma unroll
      for (int f = 0; f < WMAX; ++f)
        if (f < W) {
          out[i] += wrev[f][i] * dp[s + f][i];
          dwrev[f][i] += dp[s][i] * ld(xrows[s + WMAX - 1 - f].v[i]);
        }
    }
    st_vec<VEC>(dx + (r.row0 + r.t0 + s) * ldx + r.c0, out);
  }
  // dw[j] = dwrev[W-1-j]: W is a runtime value, so the selection is unrolled over both indices.
#pragma unroll
  for (int j = 0; j < WMAX; ++j)
#pragma unroll
    for (int f = 0; f < WMAX; ++f)
      if (f == W - 1 - j)
#pragma unroll
        for (int i = 0; i < VEC; ++i) dw[j][i] = dwrev[f][i];
}

// One block per run: each warp takes its sub-run, then the block's dw partial of the run goes
// to partial[run, c * W + j].
template <class T, class TW, int VEC, int WMAX, bool EXACT, int NORM = 0>
__global__ void __launch_bounds__(kConvThreads) conv_silu_backward_kernel(
    const T* __restrict__ x, const TW* __restrict__ w, const T* __restrict__ dy, T* __restrict__ dx, int64_t ldx,
    float* __restrict__ partial, int64_t L, int64_t C, int w_arg, float scale) {
  const int W = EXACT ? WMAX : w_arg;
  const ConvRun r(L, C, VEC);
  float dw[WMAX][VEC] = {};
  if (r.active && r.t0 < r.t1) conv_backward_subrun<T, TW, VEC, WMAX, NORM>(x, w, dy, dx, ldx, r, L, C, W, scale, dw);
  __shared__ float red[kSubRuns - 1][WMAX * VEC][kConvLanes];  // sub-runs 1.. hand dw to sub-run 0
  // dw of the block's run: sub-run 0 adds the others' in order 1, 2, 3 (deterministic).
  const int s = threadIdx.x / kConvLanes, lane = threadIdx.x % kConvLanes;
  if (s > 0)
#pragma unroll
    for (int j = 0; j < WMAX; ++j)
#pragma unroll
      for (int i = 0; i < VEC; ++i) red[s - 1][j * VEC + i][lane] = dw[j][i];
  __syncthreads();
  if (s > 0 || !r.active) return;
  float* pr = partial + r.run * C * W;
#pragma unroll
  for (int i = 0; i < VEC; ++i)
#pragma unroll
    for (int j = 0; j < WMAX; ++j)
      if (j < W) {
        float sum = dw[j][i];
#pragma unroll
        for (int o = 0; o < kSubRuns - 1; ++o) sum += red[o][j * VEC + i][lane];
        pr[(r.c0 + i) * W + j] = sum;
      }
}

// Calls launch(VEC, WMAX, EXACT) as integral constants: 4 channels per thread when the rows
// allow 4-wide accesses and W <= 4 (W = 4 exactly as a constant); wider convolutions take one
// channel per thread, which keeps their register arrays out of local memory.
template <class F>
void with_shape(bool vec4, int W, F&& launch) {
  using std::integral_constant;
  if (W > 4) launch(integral_constant<int, 1>{}, integral_constant<int, kMaxConvWidth>{}, std::false_type{});
  else if (vec4 && W == 4) launch(integral_constant<int, 4>{}, integral_constant<int, 4>{}, std::true_type{});
  else if (vec4) launch(integral_constant<int, 4>{}, integral_constant<int, 4>{}, std::false_type{});
  else launch(integral_constant<int, 1>{}, integral_constant<int, 4>{}, std::false_type{});
}

dim3 conv_grid(int64_t B, int64_t L, int64_t C, int vec) {
  return dim3(unsigned(B * ((L + kConvRows - 1) / kConvRows)), unsigned(blocks_for(blocks_for(C, vec), kConvLanes)));
}

// dw[c*W + j] += sum over runs of partial[run, c*W + j], in a fixed order.
struct ConvDwPartial {
  const float* partial;
  int64_t n;
  __device__ float operator()(int64_t r, int64_t c) const { return partial[r * n + c]; }
};

// One decode step per (b, c): y = silu(w[c, W-1] x + sum_{j<W-1} w[c, j] cache[j]), then the
// thread shifts its own cache column (no other thread touches it).
template <class T, class TW, class TC>
__global__ void conv_step_kernel(const T* x, TC* cache, const TW* w, T* y, int64_t n, int64_t C, int W) {
  LT2_GRID_STRIDE(idx, n) {
    const int64_t b = idx / C, c = idx % C;
    TC* cb = cache + b * (W - 1) * C + c;
    const float xv = ld(x[idx]);
    float acc = ld(w[c * W + W - 1]) * xv;
    for (int j = 0; j < W - 1; ++j) acc += ld(w[c * W + j]) * ld(cb[j * C]);
    y[idx] = st<T>(silu_f(acc));
    if (W > 1) {
      for (int j = 0; j < W - 2; ++j) cb[j * C] = cb[(j + 1) * C];
      cb[(W - 2) * C] = st<TC>(xv);
    }
  }
}

// Lanes a head for conv_silu_l2norm's fused kernels (4 channels a lane: W = 4, whole warps of
// channels), or 0 where it composes conv_silu and l2norm.
int norm_lanes(const Tensor& x, const Tensor& w, int64_t head, std::initializer_list<const void*> ptrs) {
  const int64_t C = x.dim(2);
  if (w.dim(1) != 4 || C % (4 * kConvLanes) != 0 || !vec_aligned(4, C, dtype_size(x.dtype()), ptrs)) return 0;
  return head == 32 || head == 64 || head == 128 ? int(head / 4) : 0;
}

// Calls launch(VEC, WMAX, EXACT, NORM) as integral constants: with_shape's choice, or the fused
// norm's W = 4 kernels with `lanes` lanes a head.
template <class F>
void with_kernel(bool vec4, int W, int lanes, F&& launch) {
  using std::integral_constant;
  const auto four = integral_constant<int, 4>{};
  const auto no_norm = integral_constant<int, 0>{};
  if (lanes == 8) launch(four, four, std::true_type{}, integral_constant<int, 8>{});
  else if (lanes == 16) launch(four, four, std::true_type{}, integral_constant<int, 16>{});
  else if (lanes == 32) launch(four, four, std::true_type{}, integral_constant<int, 32>{});
  else with_shape(vec4, W, [&](auto vec, auto wmax, auto exact) { launch(vec, wmax, exact, no_norm); });
}

// y = conv_silu(x, w), normalised over heads of `lanes` lanes when lanes > 0.
Tensor conv_forward(const Tensor& x, const Tensor& w, int lanes, float scale) {
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2);
  const int W = int(w.dim(1));
  Tensor y = Tensor::empty_like(x);
  if (x.numel() == 0) return y;
  const bool vec4 = vec_aligned(4, C, dtype_size(x.dtype()), {x.bytes(), y.bytes()});
  dispatch_conv(x.dtype(), w.dtype(), [&](auto x_tag, auto w_tag) {
    using T = decltype(x_tag);
    using TW = decltype(w_tag);
    with_kernel(vec4, W, lanes, [&](auto vec, auto wmax, auto exact, auto norm) {
      conv_silu_kernel<T, TW, vec(), wmax(), exact(), norm()>
          <<<conv_grid(B, L, C, vec()), kConvThreads, 0, stream()>>>(x.data<T>(), w.data<TW>(), y.data<T>(), L, C, W,
                                                                      scale);
    });
  });
  check_launch("conv_silu");
  return y;
}

// Where conv_backward writes dx: its first element and row stride (in elements).
struct DxDest {
  std::byte* p;
  int64_t ld;
};

// dx's destination: dx_out's block when given (dx left undefined), else dx, allocated here.
DxDest dx_dest(const Tensor& x, Tensor& dx, const ColBlock* dx_out, const char* op) {
  if (!dx_out) {
    dx = Tensor::empty_like(x);
    return {dx.bytes(), x.dim(2)};
  }
  expect_cuda({&dx_out->t}, op);
  check_col_block(*dx_out, x.dim(0) * x.dim(1), x.dim(2), x.dtype(), op);
  dx = Tensor();
  Tensor t = dx_out->t;  // a handle on the block's storage
  return {t.bytes() + dx_out->col * int64_t(dtype_size(x.dtype())), dx_out->ld()};
}

// Whether the 4-channel kernels may write dx there (with x's own alignment checked apart).
bool dx_vec4(const DxDest& d, DType dt) { return d.ld % 4 == 0 && aligned_to(4 * dtype_size(dt), {d.p}); }

// dx of conv_forward (dy the gradient of its output) into `out`; dw += the taps' gradient.
// `lanes` > 0 needs 4-wide access to x, dy and out (norm_lanes and dx_vec4).
void conv_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dw, int lanes, float scale,
                   const DxDest& out) {
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2);
  const int W = int(w.dim(1));
  if (x.numel() == 0) return;
  const int64_t runs = B * ((L + kConvRows - 1) / kConvRows);
  Tensor partial = Tensor::empty({runs, C * W}, DType::F32, Device::CUDA);
  const bool vec4 = vec_aligned(4, C, dtype_size(x.dtype()), {x.bytes(), dy.bytes()}) && dx_vec4(out, x.dtype());
  dispatch_conv(x.dtype(), w.dtype(), [&](auto x_tag, auto w_tag) {
    using T = decltype(x_tag);
    using TW = decltype(w_tag);
    with_kernel(vec4, W, lanes, [&](auto vec, auto wmax, auto exact, auto norm) {
      conv_silu_backward_kernel<T, TW, vec(), wmax(), exact(), norm()>
          <<<conv_grid(B, L, C, vec()), kConvThreads, 0, stream()>>>(x.data<T>(), w.data<TW>(), dy.data<T>(),
                                                                      reinterpret_cast<T*>(out.p), out.ld,
                                                                      partial.data<float>(), L, C, W, scale);
    });
  });
  check_launch("conv_silu_backward");
  colsum_accumulate(ConvDwPartial{partial.data<float>(), C * W}, runs, C * W, dw, "conv_silu_backward dw");
}

void check_conv_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Tensor& dw, const char* op) {
  check_conv(x, w, op);
  expect_cuda({&dy, &dw}, op);
  check_shape(dy, x.shape(), op);
  check_same_dtype(x, dy, op);
  check_shape(dw, w.shape(), op);
  expect_f32(dw, op, "dw");
}

}  // namespace

Tensor conv_silu(const Tensor& x, const Tensor& w) {
  check_conv(x, w, "conv_silu");
  return conv_forward(x, w, 0, 0.f);
}

Tensor conv_silu_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dw, const ColBlock* dx_out) {
  check_conv_backward(x, w, dy, dw, "conv_silu_backward");
  Tensor dx;
  conv_backward(x, w, dy, dw, 0, 0.f, dx_dest(x, dx, dx_out, "conv_silu_backward dx"));
  return dx;
}

Tensor conv_silu_l2norm(const Tensor& x, const Tensor& w, int64_t head, double scale) {
  check_conv(x, w, "conv_silu_l2norm");
  const Shape heads = conv_head_shape(x, head, "conv_silu_l2norm");
  const int lanes = norm_lanes(x, w, head, {x.bytes()});  // y is a fresh (aligned) tensor
  if (lanes) return conv_forward(x, w, lanes, float(scale));
  return l2norm(conv_forward(x, w, 0, 0.f).reshape(heads), scale).reshape(x.shape());
}

Tensor conv_silu_l2norm_backward(const Tensor& x, const Tensor& w, int64_t head, double scale, const Tensor& dy,
                                 Tensor& dw, const ColBlock* dx_out) {
  check_conv_backward(x, w, dy, dw, "conv_silu_l2norm_backward");
  const Shape heads = conv_head_shape(x, head, "conv_silu_l2norm_backward");
  Tensor dx;
  const DxDest out = dx_dest(x, dx, dx_out, "conv_silu_l2norm_backward dx");
  const int lanes = dx_vec4(out, x.dtype()) ? norm_lanes(x, w, head, {x.bytes(), dy.bytes()}) : 0;
  if (lanes) {
    conv_backward(x, w, dy, dw, lanes, float(scale), out);
  } else {
    const Tensor y = conv_forward(x, w, 0, 0.f).reshape(heads);
    conv_backward(x, w, l2norm_backward(y, scale, dy.reshape(heads)).reshape(x.shape()), dw, 0, 0.f, out);
  }
  return dx;
}

bool conv_silu_l2norm_fused(const Tensor& x, const Tensor& w, int64_t head) {
  return norm_lanes(x, w, head, {x.bytes()}) > 0;
}

Tensor conv_silu_step(const Tensor& x, Tensor& cache, const Tensor& w) {
  check_conv(x, w, "conv_silu_step");
  expect_cuda({&cache}, "conv_silu_step");
  const int64_t B = x.dim(0), C = x.dim(2), W = w.dim(1);
  LT2_CHECK(x.dim(1) == 1, "conv_silu_step: x must be [B, 1, C]");
  check_shape(cache, {B, W - 1, C}, "conv_silu_step cache");
  LT2_CHECK(cache.dtype() == DType::F32 || cache.dtype() == x.dtype(), "conv_silu_step: cache must be F32 or ",
            dtype_name(x.dtype()), ", got ", dtype_name(cache.dtype()));
  Tensor y = Tensor::empty_like(x);
  const int64_t n = B * C;
  if (n == 0) return y;
  dispatch_conv(x.dtype(), w.dtype(), [&](auto x_tag, auto w_tag) {
    using T = decltype(x_tag);
    using TW = decltype(w_tag);
    dispatch_float(cache.dtype(), [&](auto c_tag) {
      using TC = decltype(c_tag);
      conv_step_kernel<<<ew_grid(n), kEwThreads, 0, stream()>>>(x.data<T>(), cache.data<TC>(), w.data<TW>(),
                                                                 y.data<T>(), n, C, int(W));
    });
  });
  check_launch("conv_silu_step");
  return y;
}

}  // namespace lt2::cuda
