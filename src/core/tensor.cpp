#include "core/tensor.h"

#include <cstring>
#include <sstream>

#include "cuda/runtime.h"

namespace lt2 {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::BF16: return 2;
    case DType::I32: return 4;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
  }
  return "?";
}

const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  int64_t bytes = int64_t(dtype_size(dtype));
  for (int64_t d : shape) {
    LT2_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
    LT2_CHECK(!__builtin_mul_overflow(bytes, d, &bytes), "tensor of shape ", shape_str(shape), " is too large");
  }
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  size_t n = std::max<size_t>(1, shape_numel(shape) * dtype_size(dtype));
  if (device == Device::CUDA) {
    t.buf_ = std::shared_ptr<std::byte[]>(static_cast<std::byte*>(cuda::alloc(n)), [](std::byte* p) { cuda::release(p); });
    return t;
  }
  // 64-byte aligned for vector loads.
  t.buf_ = std::shared_ptr<std::byte[]>(static_cast<std::byte*>(::operator new[](n, std::align_val_t(64))),
                                        [](std::byte* p) { ::operator delete[](p, std::align_val_t(64)); });
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero();
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill(value);
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  LT2_CHECK(shape_numel(shape) == numel(), "cannot reshape ", shape_str(shape_), " to ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::select(int64_t i) const {
  LT2_CHECK(ndim() >= 1 && i >= 0 && i < shape_[0], "select: index ", i, " outside ", shape_str(shape_));
  Tensor t = *this;
  t.shape_ = Shape(shape_.begin() + 1, shape_.end());
  t.offset_ += i * t.nbytes();
  return t;
}

Tensor Tensor::narrow(int64_t start, int64_t len) const {
  LT2_CHECK(ndim() >= 1 && start >= 0 && len >= 0 && start + len <= shape_[0], "narrow: rows [", start, ", ",
            start + len, ") outside ", shape_str(shape_));
  Tensor t = *this;
  t.shape_[0] = len;
  t.offset_ += size_t(start) * (shape_[0] ? nbytes() / size_t(shape_[0]) : 0);
  return t;
}

Tensor Tensor::clone() const { return to(device_, dtype_); }
Tensor Tensor::to(DType dtype) const { return to(device_, dtype); }
Tensor Tensor::to(Device device) const { return to(device, dtype_); }

Tensor Tensor::to(Device device, DType dtype) const {
  Tensor t = empty(shape_, dtype, device);
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  LT2_CHECK(src.shape_ == shape_, "copy: shape ", shape_str(src.shape_), " != ", shape_str(shape_));
  if (src.dtype_ != dtype_) {
    // Convert on the device that holds the source, then move (the GPU converts F32 <-> BF16 only).
    const bool gpu_cast = (on_cuda() || src.on_cuda()) && dtype_ != DType::F64 && src.dtype_ != DType::F64 &&
                          dtype_ != DType::I32 && src.dtype_ != DType::I32;
    if (gpu_cast) {
      const Tensor s = src.on_cuda() ? src : src.to(Device::CUDA);
      Tensor d = on_cuda() ? *this : empty(shape_, dtype_, Device::CUDA);
      cuda::cast(s.bytes(), int(s.dtype_), d.bytes(), int(dtype_), numel());
      if (!on_cuda()) copy_from(d);
      return;
    }
    const Tensor s = src.on_cuda() ? src.to(Device::CPU) : src;
    Tensor d = on_cuda() ? empty(shape_, dtype_) : *this;
    const int64_t n = numel();
    for (int64_t i = 0; i < n; ++i) d.set(i, s.item(i));
    if (on_cuda()) copy_from(d);
    return;
  }
  if (on_cuda() && src.on_cuda()) cuda::copy_on_device(bytes(), src.bytes(), nbytes());
  else if (on_cuda()) cuda::copy_to_device(bytes(), src.bytes(), nbytes());
  else if (src.on_cuda()) cuda::copy_to_host(bytes(), src.bytes(), nbytes());
  else std::memcpy(bytes(), src.bytes(), nbytes());
}

double Tensor::item(int64_t i) const {
  if (on_cuda()) return select_element(i).to(Device::CPU).item(0);
  switch (dtype_) {
    case DType::F32: return data<float>()[i];
    case DType::F64: return data<double>()[i];
    case DType::BF16: return bf16_to_f32(data<uint16_t>()[i]);
    case DType::I32: return data<int32_t>()[i];
  }
  return 0;
}

void Tensor::set(int64_t i, double v) {
  if (on_cuda()) {
    select_element(i).copy_from(Tensor::full({1}, v, dtype_));
    return;
  }
  switch (dtype_) {
    case DType::F32: data<float>()[i] = static_cast<float>(v); break;
    case DType::F64: data<double>()[i] = v; break;
    case DType::BF16: data<uint16_t>()[i] = f32_to_bf16(static_cast<float>(v)); break;
    case DType::I32: data<int32_t>()[i] = static_cast<int32_t>(v); break;
  }
}

void Tensor::fill(double v) {
  if (on_cuda()) {
    copy_from(Tensor::full(shape_, v, dtype_));
    return;
  }
  const int64_t n = numel();
  for (int64_t i = 0; i < n; ++i) set(i, v);
}

void Tensor::zero() {
  if (on_cuda()) cuda::memset_zero(bytes(), nbytes());
  else std::memset(bytes(), 0, nbytes());
}

Tensor Tensor::select_element(int64_t i) const {
  LT2_CHECK(i >= 0 && i < numel(), "element ", i, " outside ", shape_str(shape_));
  Tensor t = *this;
  t.shape_ = {1};
  t.offset_ += size_t(i) * dtype_size(dtype_);
  return t;
}

void Tensor::add_(const Tensor& other) {
  LT2_CHECK(other.shape_ == shape_, "add_: shape ", shape_str(other.shape_), " != ", shape_str(shape_));
  check_same_dtype(*this, other, "add_");
  LT2_CHECK(other.device_ == device_, "add_: tensors on different devices");
  const int64_t n = numel();
  if (on_cuda()) {
    cuda::add_inplace(bytes(), other.bytes(), int(dtype_), n);
    return;
  }
  dispatch_real(dtype_, [&](auto r_tag_) {
    using R = decltype(r_tag_);
    R* a = data<R>();
    const R* b = other.data<R>();
    for (int64_t i = 0; i < n; ++i) a[i] += b[i];
  });
}

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float bf16_to_f32(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void check_shape(const Tensor& t, const Shape& expected, const char* what) {
  LT2_CHECK(t.shape() == expected, what, ": expected shape ", shape_str(expected), ", got ", shape_str(t.shape()));
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* what) {
  LT2_CHECK(a.dtype() == b.dtype(), what, ": dtype mismatch ", dtype_name(a.dtype()), " vs ", dtype_name(b.dtype()));
}

void check_token_ids(const Tensor& ids, int64_t V) {
  LT2_CHECK(ids.dtype() == DType::I32 && !ids.on_cuda(), "token ids must be host I32");
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < ids.numel(); ++i)
    LT2_CHECK(id[i] >= 0 && id[i] < V, "token id ", id[i], " at position ", i, " is outside the vocabulary [0, ", V, ")");
}

}  // namespace lt2
