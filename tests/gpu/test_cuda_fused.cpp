// CUDA parity of the fused-projection ops against the CPU reference in float64: linear_split
// (one strided-batched GEMM) and the backward ops writing into a column block (ColBlock) of a
// packed gradient, at aligned offsets (the vectorised and flash paths) and at odd ones (the
// one-element and copy fallbacks). Every column outside the block must stay untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "cuda_util.h"

using namespace lt2;
using namespace lt2::test;

namespace {

constexpr double kSentinel = 7.25;

// A [rows, ld] packed gradient on the GPU, every element the sentinel.
Tensor sentinel_gpu(int64_t rows, int64_t ld, DType dt) {
  return Tensor::full({rows, ld}, kSentinel, DType::F64).to(Device::CUDA, dt);
}

// Checks the block [.., col, col + want's width) of the GPU tensor t against the CPU reference
// and that every other column still holds the sentinel.
void expect_block(const Tensor& t, int64_t col, const Tensor& want, DType dt, const std::string& what) {
  const Tensor h = t.to(Device::CPU, DType::F64);
  const int64_t rows = h.dim(0), ld = h.dim(1), w = want.numel() / rows;
  Tensor got = Tensor::empty({rows, w}, DType::F64);
  int outside = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < ld; ++c) {
      const double x = h.item(r * ld + c);
      if (c >= col && c < col + w) got.set(r * w + c - col, x);
      else if (x != kSentinel && outside++ < 3) ADD_FAILURE() << what << ": column " << c << " of row " << r << " was written";
    }
  expect_close(got, want.reshape({rows, w}), parity_tol(dt), what);
}

}  // namespace

TEST(CudaFused, LinearSplit) {
  LT2_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    for (int64_t parts : {2, 4}) {
      for (int64_t N : {96, 37}) {
        const std::string what = cat("linear_split parts=", parts, " N=", N);
        Tensor x = randn({3, 37, 130}, 1), w = randn({parts * N, 130}, 2, 0.1);
        expect_gpu(gpu::linear_split(on_gpu(x, dt), on_gpu(w, dt), parts), dt,
                   cpu::linear_split(rounded(x, dt), rounded(w, dt), parts), parity_tol(dt), name(what, dt));
      }
    }
  }
}

TEST(CudaFused, RopeInPlaceAndBackwardIntoBlocks) {
  LT2_REQUIRE_GPU();
  const int64_t B = 2, L = 37, H = 3;
  for (int64_t D : {64, 6}) {
    const int64_t w = H * D, ld = 3 * w + 2;
    Tensor x = randn({B, L, H, D}, 1), dy = randn({B, L, H, D}, 2);
    for (DType dt : kDtypes) {
      const std::string what = cat("rope D=", D);
      Tensor xg = on_gpu(x, dt);
      const ColBlock self{xg.reshape({B * L, w}), 0};
      EXPECT_FALSE(gpu::rope(xg, 10000.0, 5, &self).defined());
      expect_gpu(xg, dt, cpu::rope(rounded(x, dt), 10000.0, 5), parity_tol(dt), name(what + " in place", dt));
      for (int64_t col : {w, int64_t(1)}) {  // 1: rows of the block are not 16-byte aligned
        Tensor dY = sentinel_gpu(B * L, ld, dt);
        const ColBlock out{dY, col};
        EXPECT_FALSE(gpu::rope_backward(on_gpu(dy, dt), 10000.0, 5, &out).defined());
        expect_block(dY, col, cpu::rope_backward(rounded(dy, dt), 10000.0, 5), dt,
                     name(cat(what, " backward col=", col), dt));
      }
    }
  }
}

TEST(CudaFused, SigmoidGateDzIntoBlock) {
  LT2_REQUIRE_GPU();
  const int64_t B = 2, L = 19, H = 3, D = 64;
  for (bool per_head : {false, true}) {
    const int64_t w = per_head ? H : H * D, ld = 4 * w + 2;
    Tensor a = randn({B, L, H, D}, 1), dy = randn({B, L, H, D}, 2);
    Tensor z = per_head ? randn({B, L, H}, 3, 2.0) : randn({B, L, H * D}, 3, 2.0);
    for (DType dt : kDtypes) {
      Tensor da_ref, dz_ref;
      cpu::sigmoid_gate_backward(rounded(a, dt), rounded(z, dt), rounded(dy, dt), da_ref, dz_ref);
      for (int64_t col : {3 * w, int64_t(1)}) {
        const std::string what = cat(per_head ? "per head" : "per channel", " col=", col);
        Tensor dY = sentinel_gpu(B * L, ld, dt), da, dz, y;
        const ColBlock out{dY, col};
        gpu::sigmoid_gate_backward(on_gpu(a, dt), on_gpu(z, dt), on_gpu(dy, dt), da, dz, &y, &out);
        EXPECT_FALSE(dz.defined());
        expect_gpu(da, dt, da_ref, parity_tol(dt), name("sigmoid_gate da " + what, dt));
        expect_block(dY, col, dz_ref, dt, name("sigmoid_gate dz " + what, dt));
      }
    }
  }
}

TEST(CudaFused, SwigluIntoBlocks) {
  LT2_REQUIRE_GPU();
  const int64_t rows = 37, N = 136;
  Tensor g = randn({rows, N}, 1, 2.0), u = randn({rows, N}, 2), dh = randn({rows, N}, 3);
  for (DType dt : kDtypes) {
    Tensor dg_ref, du_ref;
    cpu::swiglu_backward(rounded(g, dt), rounded(u, dt), rounded(dh, dt), dg_ref, du_ref);
    for (int64_t gap : {0, 1}) {  // 1: du's block starts off the 16-byte grid
      const int64_t ld = 2 * N + gap;
      Tensor dY = sentinel_gpu(rows, ld, dt), dg, du, h;
      const ColBlock dg_out{dY, 0}, du_out{dY, N + gap};
      gpu::swiglu_backward(on_gpu(g, dt), on_gpu(u, dt), on_gpu(dh, dt), dg, du, &h, &dg_out, &du_out);
      EXPECT_FALSE(dg.defined() || du.defined());
      expect_gpu(h, dt, cpu::swiglu(rounded(g, dt), rounded(u, dt)), parity_tol(dt), name(cat("swiglu h gap=", gap), dt));
      // Each block checked with the other block's columns masked as sentinel.
      Tensor host = dY.to(Device::CPU, DType::F64);
      Tensor only_dg = host.clone(), only_du = host.clone();
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < N; ++c) only_dg.set(r * ld + N + gap + c, kSentinel), only_du.set(r * ld + c, kSentinel);
      expect_block(only_dg.to(Device::CUDA, dt), 0, dg_ref, dt, name(cat("swiglu dg gap=", gap), dt));
      expect_block(only_du.to(Device::CUDA, dt), N + gap, du_ref, dt, name(cat("swiglu du gap=", gap), dt));
    }
  }
}

// dv into a block: BF16 with D 64 (mma.sync backward) and 128 (wgmma on Hopper) stores it
// directly; an odd column start takes the copy; F32 runs the SIMT kernels and the copy.
TEST(CudaFused, AttentionDvIntoBlock) {
  LT2_REQUIRE_GPU();
  const int64_t B = 2, L = 150, H = 4;
  for (int64_t Hkv : {4, 2}) {
    for (int64_t D : {64, 128}) {
      const int64_t w = Hkv * D, ld = 4 * w;
      Tensor q = randn({B, L, H, D}, 1), k = randn({B, L, Hkv, D}, 2), v = randn({B, L, Hkv, D}, 3);
      Tensor dout = randn({B, L, H, D}, 4);
      const double scale = 1.0 / std::sqrt(double(D));
      for (DType dt : kDtypes) {
        const Tensor qr = rounded(q, dt), kr = rounded(k, dt), vr = rounded(v, dt), dr = rounded(dout, dt);
        Tensor lse_ref, dq_ref, dk_ref, dv_ref;
        const Tensor o_ref = cpu::attention(qr, kr, vr, 0, scale, &lse_ref);
        cpu::attention_backward(qr, kr, vr, o_ref, lse_ref, dr, 0, scale, dq_ref, dk_ref, dv_ref);
        Tensor lse;
        const Tensor o = gpu::attention(on_gpu(q, dt), on_gpu(k, dt), on_gpu(v, dt), 0, scale, &lse);
        for (int64_t col : {2 * w, int64_t(1)}) {
          const std::string what = cat("attention Hkv=", Hkv, " D=", D, " col=", col);
          Tensor dY = sentinel_gpu(B * L, ld, dt), dq, dk, dv;
          const ColBlock out{dY, col};
          gpu::attention_backward(on_gpu(q, dt), on_gpu(k, dt), on_gpu(v, dt), o, lse, on_gpu(dout, dt), 0, scale, dq,
                                  dk, dv, &out);
          EXPECT_FALSE(dv.defined()) << what;
          expect_gpu(dq, dt, dq_ref, parity_tol(dt), name(what + " dq", dt));
          expect_gpu(dk, dt, dk_ref, parity_tol(dt), name(what + " dk", dt));
          expect_block(dY, col, dv_ref, dt, name(what + " dv", dt));
        }
      }
    }
  }
}

// GDN's pairs: the short conv's dx (plain, and with the per-head L2 norm) into the q, k or v
// block of a packed gradient. Aligned blocks take the 4-channel kernels (C 512 with heads of
// 128: the fused conv + norm kernels), an odd column start the one-channel kernels (and, with
// the norm, the composed ops); dw is accumulated as without a block.
TEST(CudaFused, ConvSiluDxIntoBlock) {
  LT2_REQUIRE_GPU();
  const int64_t B = 2, L = 75, C = 512, ld = 2 * C + 4, head = 128;  // ld: 16-byte rows
  Tensor x = randn({B, L, C}, 1), w = randn({C, 4}, 2, 0.5), dy = randn({B, L, C}, 3), dw0 = randn({C, 4}, 4, 0.5);
  for (bool norm : {false, true}) {
    for (DType dt : kDtypes) {
      const Tensor xr = rounded(x, dt), wr = rounded(w, DType::F32), dyr = rounded(dy, dt);
      Tensor dw_ref = rounded(dw0, DType::F32);
      const Tensor dx_ref = norm ? cpu::conv_silu_l2norm_backward(xr, wr, head, 0.3, dyr, dw_ref)
                                 : cpu::conv_silu_backward(xr, wr, dyr, dw_ref);
      const Tensor xg = on_gpu(x, dt), wg = on_gpu(w, DType::F32), dyg = on_gpu(dy, dt);
      for (int64_t col : {C, int64_t(0), int64_t(1)}) {
        const std::string what = cat(norm ? "conv_silu_l2norm" : "conv_silu", " dx col=", col);
        Tensor dY = sentinel_gpu(B * L, ld, dt), dw = on_gpu(dw0, DType::F32);
        const ColBlock out{dY, col};
        const Tensor dx = norm ? gpu::conv_silu_l2norm_backward(xg, wg, head, 0.3, dyg, dw, &out)
                               : gpu::conv_silu_backward(xg, wg, dyg, dw, &out);
        EXPECT_FALSE(dx.defined()) << what;
        expect_block(dY, col, dx_ref, dt, name(what, dt));
        expect_gpu(dw, DType::F32, dw_ref, parity_tol(dt), name(what + " dw", dt));
      }
    }
  }
}

// The gated RMSNorm's dz (z [B, L, H, V], rows of V) into the g block of GDN's packed [dv | dz]
// gradient, H·V columns a row: V 256 as GDN's (16-byte accesses at an aligned column) and an
// odd column start (one element at a time); do, y and dw as without a block.
TEST(CudaFused, GatedRmsnormDzIntoBlock) {
  LT2_REQUIRE_GPU();
  const int64_t B = 2, L = 19, H = 3;
  for (int64_t V : {256, 6}) {
    const int64_t w = H * V, ld = 2 * w + 8;  // 16-byte rows
    Tensor o = randn({B, L, H, V}, 1), z = randn({B, L, H, V}, 2, 2.0), nw = randn({V}, 3), dy = randn({B, L, H, V}, 4);
    for (DType dt : kDtypes) {
      const Tensor orr = rounded(o, dt), zr = rounded(z, dt), dyr = rounded(dy, dt);
      Tensor do_ref, dz_ref, y_ref, dw_ref = Tensor::zeros({V}, DType::F64);
      cpu::gated_rmsnorm_backward(orr, zr, rounded(nw, DType::F32), 1e-6, dyr, do_ref, dz_ref, dw_ref, &y_ref);
      for (int64_t col : {w, int64_t(1)}) {
        const std::string what = cat("gated_rmsnorm V=", V, " col=", col);
        Tensor dY = sentinel_gpu(B * L, ld, dt), d_o, dz, y, dw = Tensor::zeros({V}, DType::F32, Device::CUDA);
        const ColBlock out{dY, col};
        gpu::gated_rmsnorm_backward(on_gpu(o, dt), on_gpu(z, dt), on_gpu(nw, DType::F32), 1e-6, on_gpu(dy, dt), d_o, dz,
                                    dw, &y, &out);
        EXPECT_FALSE(dz.defined()) << what;
        expect_block(dY, col, dz_ref, dt, name(what + " dz", dt));
        expect_gpu(d_o, dt, do_ref, parity_tol(dt), name(what + " do", dt));
        expect_gpu(y, dt, y_ref, parity_tol(dt), name(what + " y", dt));
        expect_gpu(dw, DType::F32, dw_ref, parity_tol(dt), name(what + " dw", dt));
      }
    }
  }
}
