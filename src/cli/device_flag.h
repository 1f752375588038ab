#pragma once
// --device for the commands that run a model: where it runs and in what precision.
// The default is CUDA when a GPU is present, unless LT2_DEVICE (cpu|cuda) says otherwise.
#include "cli/args.h"
#include "core/tensor.h"

namespace lt2 {
class LoopedModel;
}

namespace lt2::cli {

FlagSpec device_flag();
Device chosen_device(const Args& a);
// Moves a freshly built or loaded model to the device: F32 on the CPU; on CUDA F32 master
// weights with BF16 compute copies (mixed precision).
void place_model(LoopedModel& model, Device device);
// "cpu" or "cuda (NVIDIA H100 ...)" for logs and benchmark records.
std::string device_label(Device device);

}  // namespace lt2::cli
