// The timed choice of a cuBLASLt algorithm per GEMM shape, and its cache file (gemm_tune.h).
#include "cuda/gemm_tune.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "core/fs.h"
#include "cuda/common.cuh"

namespace lt2::cuda {

namespace {

bool tuning_on() {
  const char* s = std::getenv("LT2_GEMM_TUNE");
  return !(s && std::string(s) == "0");
}

// Entries are tied to the card and the library: "<card>|<cuBLASLt version>|<shape>".
std::string entry_key(const std::string& shape) {
  static const std::string prefix = [] {
    int dev = 0;
    LT2_CUDA_CHECK(cudaGetDevice(&dev));
    std::string name = device_name(dev);
    for (char& c : name)
      if (c == '|' || c == ' ') c = '_';
    return cat(name, "|", cublasLtGetVersion(), "|");
  }();
  return prefix + shape;
}

// One line per entry: key, then the algorithm's 8 words in hex. A line that does not parse
// (say, cut short by a crash) is skipped.
bool find_cached(const std::string& path, const std::string& key, cublasLtMatmulAlgo_t& algo) {
  std::ifstream in(path);
  std::string line;
  bool found = false;
  while (std::getline(in, line)) {
    const size_t bar = line.rfind('|');
    if (bar == std::string::npos || line.compare(0, bar, key) != 0 || bar != key.size()) continue;
    std::istringstream words(line.substr(bar + 1));
    cublasLtMatmulAlgo_t a{};
    int n = 0;
    for (std::string w; n < 8 && words >> w; ++n) a.data[n] = std::strtoull(w.c_str(), nullptr, 16);
    if (n == 8) algo = a, found = true;  // the last complete entry wins
  }
  return found;
}

// Rewrites the file with the entry added (fs::write_file_atomic: never a half-written line).
void append_cached(const std::string& path, const std::string& key, const cublasLtMatmulAlgo_t& algo) {
  std::string line = key + "|";
  for (int i = 0; i < 8; ++i) {
    char w[24];
    std::snprintf(w, sizeof w, "%s%016" PRIx64, i ? " " : "", uint64_t(algo.data[i]));
    line += w;
  }
  try {
    const size_t slash = path.rfind('/');
    if (slash != std::string::npos && slash > 0) fs::make_dirs(path.substr(0, slash));
    fs::write_file_atomic(path, (fs::exists(path) ? fs::read_file(path) : std::string()) + line + "\n");
  } catch (const Error&) {
    // An unwritable cache costs the next run a re-tune, nothing else.
  }
}

}  // namespace

std::string gemm_cache_path() {
  if (const char* s = std::getenv("LT2_GEMM_CACHE")) return std::string(s) == "off" ? std::string() : std::string(s);
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return cat(x, "/lt2/gemm-algos.txt");
  if (const char* h = std::getenv("HOME"); h && *h) return cat(h, "/.cache/lt2/gemm-algos.txt");
  return "";
}

cublasLtMatmulAlgo_t choose_algo(const std::string& shape, const std::vector<cublasLtMatmulAlgo_t>& candidates,
                                 const std::function<double(const cublasLtMatmulAlgo_t&)>& time_ms_of,
                                 const std::function<bool(const cublasLtMatmulAlgo_t&)>& valid) {
  LT2_CHECK(!candidates.empty(), "GEMM tuning without candidates");
  if (candidates.size() == 1 || !tuning_on()) return candidates.front();
  const std::string path = gemm_cache_path(), key = entry_key(shape);
  cublasLtMatmulAlgo_t algo{};
  if (!path.empty() && find_cached(path, key, algo) && valid(algo)) return algo;
  size_t best = 0;
  std::vector<double> ms;
  for (const auto& c : candidates) ms.push_back(time_ms_of(c));
  for (size_t i = 1; i < ms.size(); ++i)
    if (ms[i] < ms[best] && ms[i] < 0.97 * ms[0]) best = i;
  if (!path.empty()) append_cached(path, key, candidates[best]);
  return candidates[best];
}

}  // namespace lt2::cuda
