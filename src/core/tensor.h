#pragma once
// A dense, contiguous, row-major tensor on the CPU or the GPU. Storage is shared between a
// tensor and its reshaped views; copies are explicit (clone, to). data<T>() of a CUDA
// tensor is a device pointer; item/set/fill work on both (one copy each on CUDA: for tests
// and setup, not for hot loops).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"

namespace lt2 {

enum class DType { F32, F64, BF16, I32 };
enum class Device { CPU, CUDA };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // safetensors spelling: F32, F64, BF16, I32
const char* device_name(Device d);  // "cpu" or "cuda"

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::CPU);
  // Same shape, dtype and device as t.
  static Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }
  static Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }

  bool defined() const { return buf_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool on_cuda() const { return device_ == Device::CUDA; }
  size_t nbytes() const { return numel() * dtype_size(dtype_); }

  template <class T> T* data() { return reinterpret_cast<T*>(bytes()); }
  template <class T> const T* data() const { return reinterpret_cast<const T*>(bytes()); }
  std::byte* bytes() { return buf_.get() + offset_; }
  const std::byte* bytes() const { return buf_.get() + offset_; }

  // Same storage, new shape (numel must match).
  Tensor reshape(const Shape& shape) const;
  // View of index i along dim 0 (same storage), e.g. row tau of rho [T, d].
  Tensor select(int64_t i) const;
  // View of rows [start, start + len) along dim 0 (same storage).
  Tensor narrow(int64_t start, int64_t len) const;
  // Deep copy, optionally converting dtype (F32 <-> F64 <-> BF16) or moving to a device.
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor to(Device device, DType dtype) const;
  // Copies src (same shape, any dtype, any device) into this tensor's storage.
  void copy_from(const Tensor& src);
  // Element as double (any float dtype / I32), for tests and reductions.
  double item(int64_t i) const;
  void set(int64_t i, double v);
  void fill(double v);
  void zero();
  // this += other (same shape and dtype).
  void add_(const Tensor& other);

 private:
  Tensor select_element(int64_t i) const;  // [1] view of element i
  std::shared_ptr<std::byte[]> buf_;
  size_t offset_ = 0;
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
};

// bf16 <-> f32 (round to nearest even).
uint16_t f32_to_bf16(float f);
float bf16_to_f32(uint16_t b);

void check_shape(const Tensor& t, const Shape& expected, const char* what);
void check_same_dtype(const Tensor& a, const Tensor& b, const char* what);
// Token ids (host I32) inside the vocabulary [0, V); the error names the first one outside.
void check_token_ids(const Tensor& ids, int64_t V);

}  // namespace lt2

namespace lt2 {
// Calls f(float{}) or f(double{}) according to dtype; kernels are templates on that type:
//   dispatch_real(x.dtype(), [&](auto tag) { using R = decltype(tag); ... });
template <class F>
void dispatch_real(DType dt, F&& f) {
  if (dt == DType::F32) f(float{});
  else if (dt == DType::F64) f(double{});
  else fail(cat("op needs an F32 or F64 tensor, got ", dtype_name(dt)));
}
}  // namespace lt2
