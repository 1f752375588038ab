// RMSNorm, per-head L2 norm and GDN's gated RMSNorm on the GPU: one warp per row (rows are
// short: the model width, a head; l2norm's heads take a half or quarter warp), 16-byte
// accesses when the rows allow them, the row's statistics reduced in fp32 by warp shuffles;
// the backwards reduce the weight gradient inside their row pass (DwLaunch below).
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

namespace {

constexpr int kRowsPerBlock = 8;  // warps per block, one row each

// The row a group of LANES lanes handles and the lane's first column; a lane then walks
// columns c, c + LANES VEC, ... in VEC-wide pieces. A warp takes 32 / LANES consecutive rows:
// short rows (l2norm's heads) take a half or quarter warp, not a warp with lanes idle. r = -1:
// every row of the warp lies past the end (the whole warp returns); a group past the end
// otherwise works on the last row without storing (store false), so its warp's shuffles stay
// full.
template <int LANES = 32>
struct WarpRow {
  static constexpr int kLanes = LANES;
  int64_t r;
  int64_t c0;
  bool store;
  __device__ WarpRow(int64_t rows, int vec)
      : WarpRow(rows, vec, (int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32) * (32 / LANES) +
                               int64_t(threadIdx.x % 32) / LANES) {}
  __device__ WarpRow(int64_t rows, int vec, int64_t row) {
    const int64_t warp_first = row - int64_t(threadIdx.x % 32) / LANES;
    store = row < rows;
    r = warp_first >= rows ? -1 : store ? row : rows - 1;
    c0 = int64_t(threadIdx.x % LANES) * vec;
  }
};
#define LT2_ROW_COLUMNS(c, wr, n) \
  for (int64_t c = (wr).c0; c < (n); c += std::decay_t<decltype(wr)>::kLanes * VEC)

// Sum of v over the LANES lanes of a row's group (xor offsets below LANES stay inside it).
template <int LANES>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int o = LANES / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum of x^2 over the group's row xr (every lane of the group gets it).
template <int VEC, class T, class WR>
__device__ __forceinline__ float row_sum_squares(const T* xr, const WR& wr, int64_t n) {
  float ss = 0.f;
  LT2_ROW_COLUMNS(c, wr, n) {
    float v[VEC];
    ld_vec<VEC>(xr + c, v);
#pragma unroll
    for (int i = 0; i < VEC; ++i) ss += v[i] * v[i];
  }
  return group_sum<WR::kLanes>(ss);
}

// yr = xr * f * w over the group's row (w null: xr * f).
template <int VEC, class T, class P, class WR>
__device__ __forceinline__ void scale_row(const T* xr, const P* w, float f, T* yr, const WR& wr, int64_t n) {
  LT2_ROW_COLUMNS(c, wr, n) {
    float v[VEC], wv[VEC];
    ld_vec<VEC>(xr + c, v);
    if (w) {
      ld_vec<VEC>(w + c, wv);
    } else {
#pragma unroll
      for (int i = 0; i < VEC; ++i) wv[i] = 1.f;
    }
#pragma unroll
    for (int i = 0; i < VEC; ++i) v[i] *= f * wv[i];
    st_vec<VEC>(yr + c, v);
  }
}

// ---- weight gradients reduced inside the backward row passes ----------------------------
// A backward kernel that also owes dw[c] += sum_r term(r, c) walks kDwRowsPerWarp rows per warp
// (step i of block b: row (b kDwRowsPerWarp + i) kRowsPerBlock + warp) and adds each row's terms
// into its warp's row of a shared [kRowsPerBlock, n] tile; the block then sums its warps in order
// into partial[block, n], and colsum_accumulate adds those rows (a few MB, not the inputs again).
// Same bits on every run. Rows wider than kDwMaxCols (a tile over the 48 KiB default) take the
// separate column sum over the inputs instead.
constexpr int kDwRowsPerWarp = 8;
constexpr int64_t kDwMaxCols = 48 * 1024 / (kRowsPerBlock * sizeof(float));

__device__ __forceinline__ int64_t dw_row(int i) {
  return (int64_t(blockIdx.x) * kDwRowsPerWarp + i) * kRowsPerBlock + threadIdx.x / 32;
}

// Within a warp's row of the tile, column c = g VEC + i sits at i (n / VEC) + g (dw_at): the lanes
// of one VEC-wide access then touch consecutive words, so the tile has no bank conflicts.
template <int VEC>
__device__ __forceinline__ float& dw_at(float* acc, int64_t n, int64_t c, int i) {
  return acc[i * (n / VEC) + c / VEC];
}

// Zeroes the block's tile and returns this warp's row of it (null without partials: no fused dw).
__device__ __forceinline__ float* dw_tile_begin(const float* partial, int64_t n) {
  extern __shared__ float dw_tile[];
  if (!partial) return nullptr;
  for (int64_t i = threadIdx.x; i < kRowsPerBlock * n; i += blockDim.x) dw_tile[i] = 0.f;
  __syncthreads();
  return dw_tile + (threadIdx.x / 32) * n;
}

// partial[block, c] = the block's warps' sums, added in warp order. Every thread must reach it.
template <int VEC>
__device__ __forceinline__ void dw_tile_end(float* partial, int64_t n) {
  extern __shared__ float dw_tile[];
  if (!partial) return;
  __syncthreads();
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    float s = 0.f;
    for (int w = 0; w < kRowsPerBlock; ++w) s += dw_at<VEC>(dw_tile + w * n, n, c - c % VEC, int(c % VEC));
    partial[blockIdx.x * n + c] = s;
  }
}

// Row r of the blocks' partial sums [blocks, n], as colsum_accumulate reads its input.
struct PartialRow {
  const float* partial;
  int64_t n;
  __device__ float operator()(int64_t r, int64_t c) const { return partial[r * n + c]; }
};

// The launch of such a kernel: its grid, its tile and the partial sums' buffer (undefined when
// the rows are too wide for the tile; then finish() runs the separate column sum `fallback`).
struct DwLaunch {
  int64_t rows, n;
  dim3 grid;
  size_t smem = 0;
  Tensor partial;
  DwLaunch(int64_t rows_, int64_t n_)
      : rows(rows_), n(n_), grid(unsigned(blocks_for(rows_, kRowsPerBlock * kDwRowsPerWarp))) {
    if (n <= kDwMaxCols) {
      smem = size_t(kRowsPerBlock * n) * sizeof(float);
      partial = Tensor::empty({int64_t(grid.x), n}, DType::F32, Device::CUDA);  // freed in stream order
    }
  }
  float* partials() { return partial.defined() ? partial.data<float>() : nullptr; }
  template <class F>
  void finish(const F& fallback, Tensor& dw, const char* op) {
    if (!partial.defined()) return colsum_accumulate(fallback, rows, n, dw, op);
    colsum_accumulate(PartialRow{partial.data<float>(), n}, int64_t(grid.x), n, dw, op);
  }
};

// Calls launch(VEC, grid): VEC = 16 bytes of T when every row of n elements at these
// addresses (activations of T, weights of P) allows it, else 1.
template <class T, class P, class F>
void launch_rows(int64_t rows, int64_t n, std::initializer_list<const void*> acts, const void* weight, F&& launch,
                 bool wide_ok = true) {
  constexpr int kWide = 16 / sizeof(T);
  const dim3 grid(unsigned(blocks_for(rows, kRowsPerBlock)));
  const bool wide = wide_ok && vec_aligned(kWide, n, sizeof(T), acts) &&
                    (!weight || vec_aligned(kWide, n, sizeof(P), {weight}));
  if (wide) launch(std::integral_constant<int, kWide>{}, grid);
  else launch(std::integral_constant<int, 1>{}, grid);
}

// launch_rows for kernels that take a lane group per row: launch(VEC, LANES, grid) with LANES
// the fewest of 8, 16, 32 lanes that cover the row's VEC-wide pieces.
template <class T, class F>
void launch_group_rows(int64_t rows, int64_t n, std::initializer_list<const void*> acts, F&& launch) {
  launch_rows<T, T>(rows, n, acts, nullptr, [&](auto vec, dim3) {
    const int64_t pieces = n / vec();
    auto go = [&](auto lanes) {
      launch(vec, lanes, dim3(unsigned(blocks_for(rows, kRowsPerBlock * (32 / lanes())))));
    };
    if (pieces <= 8) go(std::integral_constant<int, 8>{});
    else if (pieces <= 16) go(std::integral_constant<int, 16>{});
    else go(std::integral_constant<int, 32>{});
  });
}

// ---- RMSNorm ---------------------------------------------------------------------------
// y = x * inv * w, inv = 1 / sqrt(mean(x^2) + eps); rstd (F32 [rows]) may be null.
template <class T, class P, int VEC>
__global__ void __launch_bounds__(32 * kRowsPerBlock) rmsnorm_kernel(const T* x, const P* w, T* y, float* rstd,
                                                                    int64_t rows, int64_t n, float eps) {
  const WarpRow<> wr(rows, VEC);
  if (wr.r < 0) return;
  const T* xr = x + wr.r * n;
  const float inv = 1.f / sqrtf(row_sum_squares<VEC>(xr, wr, n) / float(n) + eps);
  scale_row<VEC>(xr, w, inv, y + wr.r * n, wr, n);
  if (rstd && wr.c0 == 0) rstd[wr.r] = inv;
}

// sum = a + b (stored in T); y = RMSNorm(sum as stored) -- add then rmsnorm in one pass.
template <class T, class P, int VEC>
__global__ void __launch_bounds__(32 * kRowsPerBlock) add_rmsnorm_kernel(const T* a, const T* b, const P* w, T* sum,
                                                                        T* y, float* rstd, int64_t rows, int64_t n,
                                                                        float eps) {
  const WarpRow<> wr(rows, VEC);
  if (wr.r < 0) return;
  const int64_t base = wr.r * n;
  float ss = 0.f;
  LT2_ROW_COLUMNS(c, wr, n) {
    float av[VEC], bv[VEC];
    ld_vec<VEC>(a + base + c, av);
    ld_vec<VEC>(b + base + c, bv);
#pragma unroll
    for (int i = 0; i < VEC; ++i) {
      av[i] = ld(st<T>(av[i] + bv[i]));  // the value as stored
      ss += av[i] * av[i];
    }
    st_vec<VEC>(sum + base + c, av);
  }
  const float inv = 1.f / sqrtf(warp_sum(ss) / float(n) + eps);
  scale_row<VEC>(sum + base, w, inv, y + base, wr, n);  // each lane re-reads the columns it wrote itself
  if (rstd && wr.c0 == 0) rstd[wr.r] = inv;
}

// dx = inv (dy w - x k) [+ dres], k = inv^2 mean(dy w x); dres (the residual path's gradient) may be null.
// dw terms dy x inv go to the block's partials (see DwLaunch).
template <class T, class P, int VEC>
__global__ void __launch_bounds__(32 * kRowsPerBlock) rmsnorm_backward_kernel(const T* x, const P* w,
                                                                             const float* rstd, const T* dy,
                                                                             const T* dres, T* dx, float* dw_partial,
                                                                             int64_t rows, int64_t n) {
  float* dw_acc = dw_tile_begin(dw_partial, n);
  for (int step = 0; step < kDwRowsPerWarp; ++step) {
    const WarpRow<> wr(rows, VEC, dw_row(step));
    if (wr.r < 0) break;
    const T* xr = x + wr.r * n;
    const T* gr = dy + wr.r * n;
    float dot = 0.f;
    LT2_ROW_COLUMNS(c, wr, n) {
      float xv[VEC], gv[VEC], wv[VEC];
      ld_vec<VEC>(xr + c, xv);
      ld_vec<VEC>(gr + c, gv);
      ld_vec<VEC>(w + c, wv);
#pragma unroll
      for (int i = 0; i < VEC; ++i) dot += gv[i] * wv[i] * xv[i];
    }
    const float inv = rstd[wr.r], k = warp_sum(dot) / float(n) * inv * inv;
    LT2_ROW_COLUMNS(c, wr, n) {
      float xv[VEC], gv[VEC], wv[VEC];
      ld_vec<VEC>(xr + c, xv);
      ld_vec<VEC>(gr + c, gv);
      ld_vec<VEC>(w + c, wv);
      float rv[VEC] = {};
      if (dres) ld_vec<VEC>(dres + wr.r * n + c, rv);
#pragma unroll
      for (int i = 0; i < VEC; ++i) {
        if (dw_acc) dw_at<VEC>(dw_acc, n, c, i) += gv[i] * xv[i] * inv;
        xv[i] = inv * (gv[i] * wv[i] - xv[i] * k) + rv[i];
      }
      st_vec<VEC>(dx + wr.r * n + c, xv);
    }
  }
  dw_tile_end<VEC>(dw_partial, n);
}

// dw[c] += sum_r dy x rstd
template <class T>
struct RmsnormDw {
  const T* dy;
  const T* x;
  const float* rstd;
  int64_t n;
  __device__ float operator()(int64_t r, int64_t c) const { return ld(dy[r * n + c]) * ld(x[r * n + c]) * rstd[r]; }
};

// ---- L2 norm ----------------------------------------------------------------------------
constexpr float kL2Eps = 1e-6f;

template <class T, int VEC, int LANES>
__global__ void __launch_bounds__(32 * kRowsPerBlock) l2norm_kernel(const T* x, T* y, int64_t rows, int64_t n,
                                                                   float scale) {
  const WarpRow<LANES> wr(rows, VEC);
  if (wr.r < 0) return;
  const T* xr = x + wr.r * n;
  const float f = scale / sqrtf(row_sum_squares<VEC>(xr, wr, n) + kL2Eps);
  if (wr.store) scale_row<VEC>(xr, static_cast<const T*>(nullptr), f, y + wr.r * n, wr, n);
}

// y = s x / nrm  =>  dx = s (g / nrm - x (g.x) / nrm^3)
template <class T, int VEC, int LANES>
__global__ void __launch_bounds__(32 * kRowsPerBlock) l2norm_backward_kernel(const T* x, const T* dy, T* dx,
                                                                            int64_t rows, int64_t n, float scale) {
  const WarpRow<LANES> wr(rows, VEC);
  if (wr.r < 0) return;
  const T* xr = x + wr.r * n;
  const T* gr = dy + wr.r * n;
  float ss = 0.f, dot = 0.f;
  LT2_ROW_COLUMNS(c, wr, n) {
    float xv[VEC], gv[VEC];
    ld_vec<VEC>(xr + c, xv);
    ld_vec<VEC>(gr + c, gv);
#pragma unroll
    for (int i = 0; i < VEC; ++i) ss += xv[i] * xv[i], dot += gv[i] * xv[i];
  }
  const float nrm = sqrtf(group_sum<LANES>(ss) + kL2Eps);
  const float a = scale / nrm, b = scale * group_sum<LANES>(dot) / (nrm * nrm * nrm);
  if (!wr.store) return;
  LT2_ROW_COLUMNS(c, wr, n) {
    float xv[VEC], gv[VEC];
    ld_vec<VEC>(xr + c, xv);
    ld_vec<VEC>(gr + c, gv);
#pragma unroll
    for (int i = 0; i < VEC; ++i) xv[i] = gv[i] * a - xv[i] * b;
    st_vec<VEC>(dx + wr.r * n + c, xv);
  }
}

// ---- gated RMSNorm ------------------------------------------------------------------------
// y = o * inv * w * silu(z)
template <class T, class P, int VEC>
__global__ void __launch_bounds__(32 * kRowsPerBlock) gated_rmsnorm_kernel(const T* o, const T* z, const P* w, T* y,
                                                                          int64_t rows, int64_t n, float eps) {
  const WarpRow<> wr(rows, VEC);
  if (wr.r < 0) return;
  const int64_t base = wr.r * n;
  const float inv = 1.f / sqrtf(row_sum_squares<VEC>(o + base, wr, n) / float(n) + eps);
  LT2_ROW_COLUMNS(c, wr, n) {
    float ov[VEC], zv[VEC], wv[VEC];
    ld_vec<VEC>(o + base + c, ov);
    ld_vec<VEC>(z + base + c, zv);
    ld_vec<VEC>(w + c, wv);
#pragma unroll
    for (int i = 0; i < VEC; ++i) ov[i] *= inv * wv[i] * silu_f(zv[i]);
    st_vec<VEC>(y + base + c, ov);
  }
}

// With dn = dy w silu(z): do = inv (dn - o k), k = inv^2 mean(dn o); dz = dy o inv w silu'(z).
// dw terms dy o inv silu(z) go to the block's partials (see DwLaunch); without them, the row's
// inv goes to inv_out for the separate dw pass. y (may be null): the forward's output, rebuilt.
// dz may be a column block (a fused projection's gradient): a row's n values stay contiguous.
template <class T, class P, int VEC>
__global__ void __launch_bounds__(32 * kRowsPerBlock) gated_rmsnorm_backward_kernel(
    const T* o, const T* z, const P* w, const T* dy, T* do_, Out<T> dz, T* y, float* dw_partial, float* inv_out,
    int64_t rows, int64_t n, float eps) {
  float* dw_acc = dw_tile_begin(dw_partial, n);
  for (int step = 0; step < kDwRowsPerWarp; ++step) {
    const WarpRow<> wr(rows, VEC, dw_row(step));
    if (wr.r < 0) break;
    const int64_t base = wr.r * n;
    float ss = 0.f, dot = 0.f;
    LT2_ROW_COLUMNS(c, wr, n) {
      float ov[VEC], zv[VEC], wv[VEC], gv[VEC];
      ld_vec<VEC>(o + base + c, ov);
      ld_vec<VEC>(z + base + c, zv);
      ld_vec<VEC>(w + c, wv);
      ld_vec<VEC>(dy + base + c, gv);
#pragma unroll
      for (int i = 0; i < VEC; ++i) ss += ov[i] * ov[i], dot += gv[i] * wv[i] * silu_f(zv[i]) * ov[i];
    }
    const float inv = 1.f / sqrtf(warp_sum(ss) / float(n) + eps);
    const float k = warp_sum(dot) / float(n) * inv * inv;
    LT2_ROW_COLUMNS(c, wr, n) {
      float ov[VEC], zv[VEC], wv[VEC], gv[VEC], dov[VEC], dzv[VEC], yv[VEC];
      ld_vec<VEC>(o + base + c, ov);
      ld_vec<VEC>(z + base + c, zv);
      ld_vec<VEC>(w + c, wv);
      ld_vec<VEC>(dy + base + c, gv);
#pragma unroll
      for (int i = 0; i < VEC; ++i) {
        const float sz = silu_f(zv[i]);
        if (dw_acc) dw_at<VEC>(dw_acc, n, c, i) += gv[i] * ov[i] * inv * sz;
        dov[i] = inv * (gv[i] * wv[i] * sz - ov[i] * k);
        dzv[i] = gv[i] * ov[i] * inv * wv[i] * silu_grad_f(zv[i]);
        yv[i] = ov[i] * (inv * wv[i] * sz);  // as gated_rmsnorm_kernel computes it
      }
      st_vec<VEC>(do_ + base + c, dov);
      st_vec<VEC>(dz.at(base) + c, dzv);
      if (y) st_vec<VEC>(y + base + c, yv);
    }
    if (inv_out && wr.c0 == 0) inv_out[wr.r] = inv;
  }
  dw_tile_end<VEC>(dw_partial, n);
}

// dw[c] += sum_r dy o inv silu(z)
template <class T>
struct GatedRmsnormDw {
  const T* dy;
  const T* o;
  const T* z;
  const float* inv;
  int64_t n;
  __device__ float operator()(int64_t r, int64_t c) const {
    const int64_t i = r * n + c;
    return ld(dy[i]) * ld(o[i]) * inv[r] * silu_f(ld(z[i]));
  }
};

}  // namespace

Tensor rmsnorm(const Tensor& x, const Tensor& w, double eps, Tensor* rstd) {
  expect_cuda({&x, &w}, "rmsnorm");
  const int64_t n = x.dim(-1), rows = rows_of(x);
  check_shape(w, {n}, "rmsnorm weight");
  Tensor y = Tensor::empty_like(x);
  Tensor rs = rstd ? Tensor::empty({rows}, DType::F32, Device::CUDA) : Tensor();
  if (rows > 0 && n > 0) {
    dispatch_float(x.dtype(), [&](auto t) {
      dispatch_float(w.dtype(), [&](auto p) {
        using T = decltype(t);
        using P = decltype(p);
        launch_rows<T, P>(rows, n, {x.bytes(), y.bytes()}, w.bytes(), [&](auto vec, dim3 grid) {
          rmsnorm_kernel<T, P, vec()><<<grid, 32 * kRowsPerBlock, 0, stream()>>>(
              x.data<T>(), w.data<P>(), y.data<T>(), rstd ? rs.data<float>() : nullptr, rows, n, float(eps));
        });
      });
    });
    check_launch("rmsnorm");
  }
  if (rstd) *rstd = rs;
  return y;
}

Tensor rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, Tensor& dw,
                        const Tensor& dresidual) {
  expect_cuda({&x, &w, &rstd, &dy, &dw}, "rmsnorm_backward");
  if (dresidual.defined()) {
    expect_cuda({&dresidual}, "rmsnorm_backward");
    check_shape(dresidual, x.shape(), "rmsnorm dresidual");
    check_same_dtype(x, dresidual, "rmsnorm_backward dresidual");
  }
  const int64_t n = x.dim(-1), rows = rows_of(x);
  check_shape(w, {n}, "rmsnorm weight");
  check_shape(rstd, {rows}, "rmsnorm rstd");
  check_shape(dy, x.shape(), "rmsnorm dy");
  check_shape(dw, {n}, "rmsnorm dw");
  check_same_dtype(x, dy, "rmsnorm_backward");
  expect_f32(rstd, "rmsnorm_backward", "rstd");
  expect_f32(dw, "rmsnorm_backward", "dw");
  Tensor dx = Tensor::empty_like(x);
  if (rows == 0 || n == 0) return dx;
  DwLaunch dl(rows, n);
  dispatch_float(x.dtype(), [&](auto t) {
    dispatch_float(w.dtype(), [&](auto p) {
      using T = decltype(t);
      using P = decltype(p);
      const T* dres = dresidual.defined() ? dresidual.data<T>() : nullptr;
      launch_rows<T, P>(rows, n, {x.bytes(), dy.bytes(), dx.bytes(), dres}, w.bytes(), [&](auto vec, dim3) {
        rmsnorm_backward_kernel<T, P, vec()><<<dl.grid, 32 * kRowsPerBlock, dl.smem, stream()>>>(
            x.data<T>(), w.data<P>(), rstd.data<float>(), dy.data<T>(), dres, dx.data<T>(), dl.partials(), rows, n);
      });
    });
    check_launch("rmsnorm_backward");
    using T = decltype(t);
    dl.finish(RmsnormDw<T>{dy.data<T>(), x.data<T>(), rstd.data<float>(), n}, dw, "rmsnorm_backward");
  });
  return dx;
}

Tensor add_rmsnorm(const Tensor& a, const Tensor& b, const Tensor& w, double eps, Tensor& sum, Tensor* rstd) {
  expect_cuda({&a, &b, &w}, "add_rmsnorm");
  const int64_t n = a.dim(-1), rows = rows_of(a);
  check_shape(b, a.shape(), "add_rmsnorm b");
  check_same_dtype(a, b, "add_rmsnorm");
  check_shape(w, {n}, "add_rmsnorm weight");
  sum = Tensor::empty_like(a);
  Tensor y = Tensor::empty_like(a);
  Tensor rs = rstd ? Tensor::empty({rows}, DType::F32, Device::CUDA) : Tensor();
  if (rows > 0 && n > 0) {
    dispatch_float(a.dtype(), [&](auto t) {
      dispatch_float(w.dtype(), [&](auto p) {
        using T = decltype(t);
        using P = decltype(p);
        launch_rows<T, P>(rows, n, {a.bytes(), b.bytes(), sum.bytes(), y.bytes()}, w.bytes(), [&](auto vec, dim3 grid) {
          add_rmsnorm_kernel<T, P, vec()><<<grid, 32 * kRowsPerBlock, 0, stream()>>>(
              a.data<T>(), b.data<T>(), w.data<P>(), sum.data<T>(), y.data<T>(), rstd ? rs.data<float>() : nullptr,
              rows, n, float(eps));
        });
      });
    });
    check_launch("add_rmsnorm");
  }
  if (rstd) *rstd = rs;
  return y;
}

Tensor l2norm(const Tensor& x, double scale) {
  expect_cuda({&x}, "l2norm");
  const int64_t n = x.dim(-1), rows = rows_of(x);
  Tensor y = Tensor::empty_like(x);
  if (rows == 0 || n == 0) return y;
  dispatch_float(x.dtype(), [&](auto t) {
    using T = decltype(t);
    launch_group_rows<T>(rows, n, {x.bytes(), y.bytes()}, [&](auto vec, auto lanes, dim3 grid) {
      l2norm_kernel<T, vec(), lanes()><<<grid, 32 * kRowsPerBlock, 0, stream()>>>(x.data<T>(), y.data<T>(), rows, n,
                                                                                   float(scale));
    });
  });
  check_launch("l2norm");
  return y;
}

Tensor l2norm_backward(const Tensor& x, double scale, const Tensor& dy) {
  expect_cuda({&x, &dy}, "l2norm_backward");
  check_shape(dy, x.shape(), "l2norm dy");
  check_same_dtype(x, dy, "l2norm_backward");
  const int64_t n = x.dim(-1), rows = rows_of(x);
  Tensor dx = Tensor::empty_like(x);
  if (rows == 0 || n == 0) return dx;
  dispatch_float(x.dtype(), [&](auto t) {
    using T = decltype(t);
    launch_group_rows<T>(rows, n, {x.bytes(), dy.bytes(), dx.bytes()}, [&](auto vec, auto lanes, dim3 grid) {
      l2norm_backward_kernel<T, vec(), lanes()><<<grid, 32 * kRowsPerBlock, 0, stream()>>>(
          x.data<T>(), dy.data<T>(), dx.data<T>(), rows, n, float(scale));
    });
  });
  check_launch("l2norm_backward");
  return dx;
}

Tensor gated_rmsnorm(const Tensor& o, const Tensor& z, const Tensor& w, double eps) {
  expect_cuda({&o, &z, &w}, "gated_rmsnorm");
  const int64_t n = o.dim(-1), rows = rows_of(o);
  check_shape(z, o.shape(), "gated_rmsnorm gate");
  check_shape(w, {n}, "gated_rmsnorm weight");
  check_same_dtype(o, z, "gated_rmsnorm");
  Tensor y = Tensor::empty_like(o);
  if (rows == 0 || n == 0) return y;
  dispatch_float(o.dtype(), [&](auto t) {
    dispatch_float(w.dtype(), [&](auto p) {
      using T = decltype(t);
      using P = decltype(p);
      launch_rows<T, P>(rows, n, {o.bytes(), z.bytes(), y.bytes()}, w.bytes(), [&](auto vec, dim3 grid) {
        gated_rmsnorm_kernel<T, P, vec()><<<grid, 32 * kRowsPerBlock, 0, stream()>>>(
            o.data<T>(), z.data<T>(), w.data<P>(), y.data<T>(), rows, n, float(eps));
      });
    });
  });
  check_launch("gated_rmsnorm");
  return y;
}

void gated_rmsnorm_backward(const Tensor& o, const Tensor& z, const Tensor& w, double eps, const Tensor& dy,
                            Tensor& do_, Tensor& dz, Tensor& dw, Tensor* y, const ColBlock* dz_out) {
  expect_cuda({&o, &z, &w, &dy, &dw}, "gated_rmsnorm_backward");
  const int64_t n = o.dim(-1), rows = rows_of(o);
  check_shape(z, o.shape(), "gated_rmsnorm gate");
  check_shape(dy, o.shape(), "gated_rmsnorm dy");
  check_shape(w, {n}, "gated_rmsnorm weight");
  check_shape(dw, {n}, "gated_rmsnorm dw");
  check_same_dtype(o, z, "gated_rmsnorm_backward");
  check_same_dtype(o, dy, "gated_rmsnorm_backward");
  expect_f32(dw, "gated_rmsnorm_backward", "dw");
  do_ = Tensor::empty_like(o);
  // dz's destination: element i of z's layout goes to dzo.at(i) below (the block's rows, or dense dz).
  dz = dz_out ? Tensor() : Tensor::empty_like(z);
  const int64_t dz_w = dz_out ? col_block_width(*dz_out, z.numel(), n, z.dtype(), "gated_rmsnorm_backward dz") : n;
  if (dz_out) expect_cuda({&dz_out->t}, "gated_rmsnorm_backward dz");
  Tensor dz_t = dz_out ? dz_out->t : dz;  // a handle on dz's storage
  const int64_t dz_ld = dz_out ? dz_out->ld() : n, dz_col = dz_out ? dz_out->col : 0;
  if (y) *y = Tensor::empty_like(o);
  if (rows == 0 || n == 0) return;
  DwLaunch dl(rows, n);
  // Per-row 1/rms, only for the separate dw pass of rows too wide for the fused one.
  Tensor inv = dl.partial.defined() ? Tensor() : Tensor::empty({rows}, DType::F32, Device::CUDA);
  float* inv_out = inv.defined() ? inv.data<float>() : nullptr;
  dispatch_float(o.dtype(), [&](auto t) {
    dispatch_float(w.dtype(), [&](auto p) {
      using T = decltype(t);
      using P = decltype(p);
      T* yp = y ? y->data<T>() : nullptr;
      const Out<T> dzo{dz_t.data<T>() + dz_col, dz_w, dz_ld};
      launch_rows<T, P>(
          rows, n, {o.bytes(), z.bytes(), dy.bytes(), do_.bytes(), dzo.p, yp}, w.bytes(),
          [&](auto vec, dim3) {
            gated_rmsnorm_backward_kernel<T, P, vec()><<<dl.grid, 32 * kRowsPerBlock, dl.smem, stream()>>>(
                o.data<T>(), z.data<T>(), w.data<P>(), dy.data<T>(), do_.data<T>(), dzo, yp, dl.partials(), inv_out,
                rows, n, float(eps));
          },
          dzo.splits_into(16 / sizeof(T)));
    });
    check_launch("gated_rmsnorm_backward");
    using T = decltype(t);
    dl.finish(GatedRmsnormDw<T>{dy.data<T>(), o.data<T>(), z.data<T>(), inv_out, n}, dw, "gated_rmsnorm_backward");
  });
}

}  // namespace lt2::cuda
