#pragma once
// Helpers for the CUDA parity tests: each test builds random float64 inputs on the CPU,
// rounds them to the dtype under test (so both sides see identical values), runs the
// CPU reference in float64 and the CUDA op in that dtype, and compares by relative L2.
#include <gtest/gtest.h>

#include <string>

#include "../gradcheck.h"
#include "../scoped_env.h"
#include "core/tensor.h"
#include "cpu/cpu_ops.h"
#include "cuda/runtime.h"
#if LT2_HAVE_CUDA
#include "cuda/cuda_ops.h"
#else
#include "ops/ops.h"
#endif

namespace lt2::test {

// The backend under test. Without CUDA the tests skip; the alias only keeps them linking.
#if LT2_HAVE_CUDA
namespace gpu = lt2::cuda;
#else
namespace gpu = lt2::ops;
#endif

// Both storage dtypes of the GPU, and a case label such as "dq (BF16)".
inline constexpr DType kDtypes[] = {DType::F32, DType::BF16};
inline std::string name(const std::string& what, DType dt) { return cat(what, " (", dtype_name(dt), ")"); }

// Tolerances of the issue: bf16 storage (fp32 arithmetic) and pure fp32 paths.
inline double parity_tol(DType dt) { return dt == DType::BF16 ? 1e-2 : 1e-5; }

#define LT2_REQUIRE_GPU() \
  if (!::lt2::cuda::available()) GTEST_SKIP() << "no CUDA GPU on this machine"

// x rounded to dtype dt, back in float64 on the CPU: the reference's input.
inline Tensor rounded(const Tensor& x, DType dt) { return x.to(dt).to(DType::F64); }
// x in dtype dt on the GPU (the same rounded values).
inline Tensor on_gpu(const Tensor& x, DType dt) { return x.to(Device::CUDA, dt); }

// Fails (with the measured distance) unless got (any device, any dtype) matches want.
inline void expect_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << ": output missing";
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const double err = rel_l2(got.to(Device::CPU, DType::F64), want);
  EXPECT_LE(err, tol) << what << ": relative L2 " << err;  // NaN/inf give +inf and fail
}

// got must be a GPU tensor of dtype `dtype` close to want (float64 on the CPU).
// Where the exact answer is zero (attention with one visible key: dq = dk = 0), a relative
// distance means nothing: the reference then holds only rounding residue (RMS below 1e-6,
// from the fp32-rounded o and lse it is given), and the GPU's values must be zero up to fp32
// rounding instead.
inline void expect_gpu(const Tensor& got, DType dtype, const Tensor& want, double tol, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << ": output missing";
  EXPECT_TRUE(got.on_cuda()) << what << ": not on the GPU";
  EXPECT_EQ(got.dtype(), dtype) << what << ": dtype " << dtype_name(got.dtype());
  double want_sq = 0;
  for (int64_t i = 0; i < want.numel(); ++i) want_sq += want.item(i) * want.item(i);
  if (std::sqrt(want_sq / double(std::max<int64_t>(1, want.numel()))) > 1e-6) {
    expect_close(got, want, tol, what);
    return;
  }
  const Tensor g = got.to(Device::CPU, DType::F64);
  double got_sq = 0;
  for (int64_t i = 0; i < g.numel(); ++i) got_sq += g.item(i) * g.item(i);
  EXPECT_LE(std::sqrt(got_sq / std::max<int64_t>(1, g.numel())), 1e-5) << what << ": should be zero";
}

}  // namespace lt2::test
