#pragma once
// What any DeepSeek-sparse-attention kernel must move, measured on the card, for `lt2 bench attn`:
// each query attends over its own index set, so a kernel that gathers reads every selected key's
// K and V rows once per pass (forward, and again in the backward, whose dP = dO V^T and
// dQ = dS K need them). These helpers time that data movement alone, with no math on it.
#include "core/tensor.h"

namespace lt2::cuda {

// out[b, t, :] = sum over the used slots s = idx[b, t, j] >= 0 of k[b, s, :, :] + v[b, s, :, :]
// (rows of Hkv * D elements, summed in fp32) -> F32 [B, L, Hkv * D]. k, v: [B, L, Hkv, D] in
// F32 or BF16 with Hkv * D a multiple of 16 bytes' worth of elements; idx: I32 [B, L, k].
Tensor gather_rows_sum(const Tensor& k, const Tensor& v, const Tensor& idx);

// dst[b, s, :] += src[b, t, :] for every used slot s = idx[b, t, j] >= 0, by fp32 atomics: the
// reduction a gathering backward does into dK and dV, each pair's row added where its key is
// (the alternatives move more: each key re-reading the q and dO rows of the queries that chose
// it, or every pair's row written out and summed by key). src, dst: F32 [B, L, W], W a
// multiple of 4; idx: I32 [B, L, k].
void scatter_rows_add(const Tensor& src, const Tensor& idx, Tensor& dst);

// Read bandwidth of a buffer that stays in L2 (16 MiB read repeatedly, past L1), in TB/s. Rows
// that come from L2 or memory come no faster, so for index sets whose rows an SM seldom reuses
// while they sit in its L1 (random sets), bytes / this bounds a gathering kernel from below.
double measure_l2_read_tbps();

}  // namespace lt2::cuda
