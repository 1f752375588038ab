#pragma once
// The smallest slice of the CUDA backend: is there a GPU, and what is it.
// The kernels of the op set arrive with the CUDA backend issue.
#include <string>

namespace lt2::cuda {
int device_count();  // 0 when built without CUDA or when no usable GPU is present
std::string device_name(int index);
}  // namespace lt2::cuda
