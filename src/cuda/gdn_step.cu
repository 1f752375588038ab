// One Gated DeltaNet decode step (SPEC §3, L = 1) that updates the fp32 state in place:
//
//     S <- α S;   u = β (v − Sᵀ k);   S <- S + k uᵀ;   o = Sᵀ q        (α = e^g)
//
// A decode step does 4·K·V flops on 8·K·V bytes of state (read + write), so it is bound by
// memory bandwidth: the kernel's one job is to stream every state element through registers
// exactly once. The two reductions over K are folded into one, before anything is written:
//     Sᵀk and Sᵀq of the OLD state, and q·k, give
//     u = β (v − α Sᵀk)   and   o = (α S + k uᵀ)ᵀ q = α Sᵀq + (q·k) u,
// so each thread loads its slice, the block reduces three partial sums once, and each thread
// then updates its slice and stores it. (Same values as cpu::gdn_recurrent_forward up to fp32
// rounding order.)
//
// Layout. One block of 8 warps per (batch, value head, tile of 8·VEC value columns). Inside a
// warp, lane = 8·r + c: c picks a group of VEC consecutive columns (a 16-byte float4 when
// VEC = 4) and r one of 4 row lanes; with the 8 warps that gives 32 row lanes, and row lane rl
// holds rows rl, rl + 32, .. (E = ceil(K/32) of them). A warp's load of one register row thus
// reads four whole 128-byte row segments. Sums over K: two xor-shuffles over the warp's row
// lanes, then the 8 warps' partials through shared memory, added in a fixed order (the result
// does not depend on timing). Value head hv reads key head hv / (HV/H), as on the CPU.
#include <cstdint>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"

namespace lt2::cuda {

namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kColGroups = 8;                      // column groups per warp (and per tile)
constexpr int kRowLanesPerWarp = 32 / kColGroups;  // 4
constexpr int kRowLanes = kWarps * kRowLanesPerWarp;  // 32
constexpr int64_t kMaxK = kRowLanes * 8;              // E <= 8: 256

template <class T>
struct StepArgs {
  const T* q;  // [B, 1, H, K]
  const T* k;
  const T* v;  // [B, 1, HV, V]
  const float* beta;  // [B, 1, HV]
  const float* g;
  float* state;  // [B, HV, K, V], read and written in place
  T* o;          // [B, 1, HV, V]
  int64_t H, HV, K, V;
};

template <int VEC>
__device__ __forceinline__ void load_cols(const float* p, float (&x)[VEC]) {
  if constexpr (VEC == 4) {
    const float4 f = *reinterpret_cast<const float4*>(p);
    x[0] = f.x, x[1] = f.y, x[2] = f.z, x[3] = f.w;
  } else {
#pragma unroll
    for (int j = 0; j < VEC; ++j) x[j] = p[j];
  }
}
template <int VEC>
__device__ __forceinline__ void store_cols(float* p, const float (&x)[VEC]) {
  if constexpr (VEC == 4) {
    // The intrinsic keeps the 16-byte store: a plain float4 assignment came out as 4 scalar stores.
    __stwb(reinterpret_cast<float4*>(p), make_float4(x[0], x[1], x[2], x[3]));
  } else {
#pragma unroll
    for (int j = 0; j < VEC; ++j) p[j] = x[j];
  }
}

// Sum over the warp's 4 row lanes (lanes c, c+8, c+16, c+24 hold the same columns).
__device__ __forceinline__ float row_lane_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 8);
  x += __shfl_xor_sync(0xffffffffu, x, 16);
  return x;
}

template <class T, int E, int VEC>
__global__ void __launch_bounds__(kThreads) gdn_step_kernel(StepArgs<T> a) {
  constexpr int kCols = kColGroups * VEC;
  __shared__ float part_k[kWarps][kCols], part_q[kWarps][kCols], part_qk[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int cg = lane % kColGroups, rl = warp * kRowLanesPerWarp + lane / kColGroups;
  const int64_t hv = blockIdx.y, b = blockIdx.z, h = hv / (a.HV / a.H);
  const int64_t c0 = int64_t(blockIdx.x) * kCols + cg * VEC;
  const bool col_ok = c0 < a.V;  // V % VEC == 0: a column group is wholly inside or outside
  float* S = a.state + (b * a.HV + hv) * a.K * a.V + c0;

  // Every state load first, so they are all in flight together.
  float s[E][VEC];
#pragma unroll
  for (int i = 0; i < E; ++i) {
    const int64_t row = rl + kRowLanes * i;
    if (col_ok && row < a.K) {
      load_cols<VEC>(S + row * a.V, s[i]);
    } else {
#pragma unroll
      for (int j = 0; j < VEC; ++j) s[i][j] = 0.f;
    }
  }
  const T* qh = a.q + (b * a.H + h) * a.K;
  const T* kh = a.k + (b * a.H + h) * a.K;
  float qr[E], kr[E];
#pragma unroll
  for (int i = 0; i < E; ++i) {
    const int64_t row = rl + kRowLanes * i;
    qr[i] = row < a.K ? ld(qh[row]) : 0.f;
    kr[i] = row < a.K ? ld(kh[row]) : 0.f;
  }
  // The gates and v too, before the barrier, so their latency overlaps the state loads.
  const int64_t gate = b * a.HV + hv;
  const float alpha = expf(a.g[gate]), beta = a.beta[gate];
  float vc[VEC];
#pragma unroll
  for (int j = 0; j < VEC; ++j) vc[j] = col_ok ? ld(a.v[gate * a.V + c0 + j]) : 0.f;

  // Partial Sᵀk, Sᵀq over this thread's rows, and q·k.
  float pk[VEC], pq[VEC], qk = 0.f;
#pragma unroll
  for (int j = 0; j < VEC; ++j) pk[j] = pq[j] = 0.f;
#pragma unroll
  for (int i = 0; i < E; ++i) {
    qk += qr[i] * kr[i];
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      pk[j] += s[i][j] * kr[i];
      pq[j] += s[i][j] * qr[i];
    }
  }
  qk = row_lane_sum(qk);
#pragma unroll
  for (int j = 0; j < VEC; ++j) {
    pk[j] = row_lane_sum(pk[j]);
    pq[j] = row_lane_sum(pq[j]);
  }
  if (lane < kColGroups) {
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      part_k[warp][cg * VEC + j] = pk[j];
      part_q[warp][cg * VEC + j] = pq[j];
    }
    if (lane == 0) part_qk[warp] = qk;
  }
  __syncthreads();
  float Sk[VEC], Sq[VEC], QK = 0.f;
#pragma unroll
  for (int j = 0; j < VEC; ++j) Sk[j] = Sq[j] = 0.f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    QK += part_qk[w];
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      Sk[j] += part_k[w][cg * VEC + j];
      Sq[j] += part_q[w][cg * VEC + j];
    }
  }

  float u[VEC], o[VEC];
#pragma unroll
  for (int j = 0; j < VEC; ++j) {
    u[j] = beta * (vc[j] - alpha * Sk[j]);
    o[j] = alpha * Sq[j] + QK * u[j];
  }
  // S <- α S + k uᵀ, written back over the slice it came from.
#pragma unroll
  for (int i = 0; i < E; ++i) {
    const int64_t row = rl + kRowLanes * i;
    if (col_ok && row < a.K) {
#pragma unroll
      for (int j = 0; j < VEC; ++j) s[i][j] = alpha * s[i][j] + kr[i] * u[j];
      store_cols<VEC>(S + row * a.V, s[i]);
    }
  }
  if (rl == 0 && col_ok) {
    T* oh = a.o + gate * a.V + c0;
#pragma unroll
    for (int j = 0; j < VEC; ++j) oh[j] = st<T>(o[j]);
  }
}

// Calls f(integral_constant<int, E>) with E = ceil(K / 32) rounded up to 1, 2, 4 or 8.
template <class F>
void with_rows_per_thread(int64_t K, F&& f) {
  if (K <= kRowLanes) f(std::integral_constant<int, 1>{});
  else if (K <= 2 * kRowLanes) f(std::integral_constant<int, 2>{});
  else if (K <= 4 * kRowLanes) f(std::integral_constant<int, 4>{});
  else f(std::integral_constant<int, 8>{});
}

}  // namespace

Tensor gdn_step(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g, Tensor& state) {
  const char* op = "gdn_step";
  expect_cuda({&q, &k, &v, &beta, &g, &state}, op);
  LT2_CHECK(q.defined() && k.defined() && v.defined() && beta.defined() && g.defined() && state.defined(), op,
            ": every input is required");
  LT2_CHECK(q.ndim() == 4 && v.ndim() == 4 && q.dim(1) == 1, op, ": q, k, v must be [B, 1, heads, dim], got q ",
            shape_str(q.shape()), " v ", shape_str(v.shape()));
  const int64_t B = q.dim(0), H = q.dim(2), K = q.dim(3), HV = v.dim(2), V = v.dim(3);
  LT2_CHECK(B >= 1 && H >= 1 && K >= 1 && HV >= 1 && V >= 1, op, ": all dims must be >= 1, got q ",
            shape_str(q.shape()), " v ", shape_str(v.shape()));
  LT2_CHECK(HV % H == 0, op, ": value heads ", HV, " must be a multiple of key heads ", H);
  LT2_CHECK(K <= kMaxK, op, ": key head dim ", K, " must be at most ", kMaxK, " on CUDA");
  LT2_CHECK(B <= 65535 && HV <= 65535, op, ": too many value heads or batch rows for the launch grid");
  check_shape(k, q.shape(), "gdn_step k");
  check_shape(v, {B, 1, HV, V}, "gdn_step v");
  check_same_dtype(q, k, "gdn_step k");
  check_same_dtype(q, v, "gdn_step v");
  check_shape(beta, {B, 1, HV}, "gdn_step beta");
  check_shape(g, {B, 1, HV}, "gdn_step g");
  check_shape(state, {B, HV, K, V}, "gdn_step state");
  expect_f32(beta, op, "beta");
  expect_f32(g, op, "g");
  expect_f32(state, op, "state");

  Tensor o = Tensor::empty({B, 1, HV, V}, q.dtype(), Device::CUDA);
  // 16-byte state accesses need whole float4s in every row and an aligned base.
  const bool vec4 = V % 4 == 0 && reinterpret_cast<uintptr_t>(state.data<float>()) % 16 == 0;
  dispatch_float(q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const StepArgs<T> args{q.data<T>(), k.data<T>(),     v.data<T>(), beta.data<float>(), g.data<float>(),
                           state.data<float>(), o.data<T>(), H, HV, K, V};
    with_rows_per_thread(K, [&](auto e) {
      constexpr int E = decltype(e)::value;
      auto launch = [&](auto vec) {
        constexpr int VEC = decltype(vec)::value;
        const int64_t tiles = (V + kColGroups * VEC - 1) / (kColGroups * VEC);
        gdn_step_kernel<T, E, VEC><<<dim3(unsigned(tiles), unsigned(HV), unsigned(B)), kThreads, 0, stream()>>>(args);
      };
      if (vec4) launch(std::integral_constant<int, 4>{});
      else launch(std::integral_constant<int, 1>{});
    });
  });
  check_launch(op);
  return o;
}

}  // namespace lt2::cuda
