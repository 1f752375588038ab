// OpenBLAS threading policy. Our kernels call GEMM from inside their own OpenMP loops
// (GDN chunks, attention tiles). The OpenMP build of OpenBLAS runs single-threaded there by
// itself; the pthreads build would start its own threads under every OpenMP thread and
// oversubscribe the cores (measured: 10x slower GDN kernels, 4.8 s instead of ~0.3 s per
// default training step on a 16-core machine). With that build we keep BLAS single-threaded
// and let OpenMP do the parallel work.
#include <cblas.h>

namespace {
struct BlasThreading {
  BlasThreading() {
    if (openblas_get_parallel() == 1) openblas_set_num_threads(1);  // 1 = pthreads build
  }
} const blas_threading;
}  // namespace
