// Initialisation (SPEC §1, §3): linear / embedding / conv N(0, std); norms 1; rho and the
// output gate 0; GDN A_log = log U(0, 16); dt_bias = inverse softplus of dt ~ logU[1e-3, 1e-1].
#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "nn/param.h"

namespace lt2 {

void init_params(const ParamList& params, uint64_t seed, double std) {
  for (Param* p : params) {
    const CounterRng rng{seed, stream_id(p->name.c_str())};
    Tensor& t = p->value;
    for (int64_t i = 0; i < t.numel(); ++i) {
      double v = 0;
      switch (p->init) {
        case Init::Normal: v = std * rng.normal(i); break;
        case Init::Zeros: v = 0; break;
        case Init::Ones: v = 1; break;
        case Init::ALog: v = std::log(16.0 * rng.uniform(i)); break;
        case Init::DtBias: {
          const double lo = std::log(1e-3), hi = std::log(1e-1);
          const double dt = std::max(1e-4, std::exp(lo + (hi - lo) * rng.uniform(i)));
          v = dt + std::log(-std::expm1(-dt));  // softplus(v) == dt
          break;
        }
      }
      t.set(i, v);
    }
    p->grad.zero();
  }
}

}  // namespace lt2
