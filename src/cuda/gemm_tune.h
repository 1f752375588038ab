#pragma once
// Which cuBLASLt algorithm a GEMM shape runs. The heuristic's first choice is often not the
// fastest for the model's shapes (measured on an H100, bench/gpu/bench_gemm_algos_h100.txt:
// GDN's o_proj dW 0.119 ms with the first, 0.085 with the second), so the first time a large
// shape is planned its candidates are timed once and the fastest kept. The choice is written to
// a cache file and read back by later runs, so that a run's results do not depend on timing
// noise: the same card, cuBLASLt and shape always get the same algorithm, hence the same bits.
//   LT2_GEMM_TUNE=0     keep the heuristic's first choice (no timing)
//   LT2_GEMM_CACHE=FILE the cache file (default $XDG_CACHE_HOME/lt2/gemm-algos.txt, else
//                       ~/.cache/lt2/gemm-algos.txt); "off" keeps choices in memory only
#include <cublasLt.h>

#include <functional>
#include <string>
#include <vector>

namespace lt2::cuda {

// Timing pays only for GEMMs of at least this many FLOPs; smaller ones keep the first choice.
constexpr double kTuneMinFlops = 1e9;

// The algorithm for `shape` (a text naming everything the plan depends on): the cached choice
// when `valid` accepts it, else the fastest of `candidates` (the heuristic's order, first
// preferred unless another is at least 3 % faster) by `time_ms_of`, then cached. With one
// candidate, or tuning off, the first.
cublasLtMatmulAlgo_t choose_algo(const std::string& shape, const std::vector<cublasLtMatmulAlgo_t>& candidates,
                                 const std::function<double(const cublasLtMatmulAlgo_t&)>& time_ms_of,
                                 const std::function<bool(const cublasLtMatmulAlgo_t&)>& valid);

// The cache file in use ("" when off), from the environment.
std::string gemm_cache_path();

}  // namespace lt2::cuda
