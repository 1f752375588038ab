#include "cli/device_flag.h"

#include <cstdlib>

#include "cuda/runtime.h"
#include "model/looped_model.h"

namespace lt2::cli {

FlagSpec device_flag() {
  return {"device", true, "cuda or cpu (default: cuda when a GPU is present; env LT2_DEVICE overrides the default)"};
}

Device chosen_device(const Args& a) {
  const char* env = std::getenv("LT2_DEVICE");
  const std::string def = env && *env ? env : (cuda::available() ? "cuda" : "cpu");
  const std::string d = a.str("device", def);
  if (d == "cpu") return Device::CPU;
  LT2_CHECK(d == "cuda", "--device must be cuda or cpu, got '", d, "'", a.has("device") ? "" : " (from LT2_DEVICE)");
#if LT2_HAVE_CUDA
  LT2_CHECK(cuda::available(), "--device cuda: no CUDA GPU is available");
#else
  fail("--device cuda: this lt2 was built without CUDA (no nvcc was found at build time)");
#endif
  return Device::CUDA;
}

std::string device_label(Device device) {
  return device == Device::CUDA ? "cuda (" + cuda::device_name(0) + ")" : "cpu";
}

void place_model(LoopedModel& model, Device device) {
  if (device == Device::CUDA) model.to(Device::CUDA, DType::BF16);
}

}  // namespace lt2::cli
