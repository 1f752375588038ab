// Built when no CUDA compiler is found: the engine reports that no GPU backend exists.
#include "cuda/runtime.h"

namespace lt2::cuda {
int device_count() { return 0; }
std::string device_name(int) { return "none (built without CUDA)"; }
}  // namespace lt2::cuda
