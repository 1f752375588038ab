#include "core/tensor.h"

#include <cstring>
#include <sstream>

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

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  int64_t bytes = int64_t(dtype_size(dtype));
  for (int64_t d : shape) {
    LT2_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
    LT2_CHECK(!__builtin_mul_overflow(bytes, d, &bytes), "tensor of shape ", shape_str(shape), " is too large");
  }
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  size_t n = std::max<size_t>(1, shape_numel(shape) * dtype_size(dtype));
  // 64-byte aligned for vector loads.
  t.buf_ = std::shared_ptr<std::byte[]>(static_cast<std::byte*>(::operator new[](n, std::align_val_t(64))),
                                        [](std::byte* p) { ::operator delete[](p, std::align_val_t(64)); });
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.bytes(), 0, t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
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

Tensor Tensor::clone() const { return to(dtype_); }

Tensor Tensor::to(DType dtype) const {
  Tensor t = empty(shape_, dtype);
  if (dtype == dtype_) {
    std::memcpy(t.bytes(), bytes(), nbytes());
    return t;
  }
  const int64_t n = numel();
  for (int64_t i = 0; i < n; ++i) t.set(i, item(i));
  return t;
}

double Tensor::item(int64_t i) const {
  switch (dtype_) {
    case DType::F32: return data<float>()[i];
    case DType::F64: return data<double>()[i];
    case DType::BF16: return bf16_to_f32(data<uint16_t>()[i]);
    case DType::I32: return data<int32_t>()[i];
  }
  return 0;
}

void Tensor::set(int64_t i, double v) {
  switch (dtype_) {
    case DType::F32: data<float>()[i] = static_cast<float>(v); break;
    case DType::F64: data<double>()[i] = v; break;
    case DType::BF16: data<uint16_t>()[i] = f32_to_bf16(static_cast<float>(v)); break;
    case DType::I32: data<int32_t>()[i] = static_cast<int32_t>(v); break;
  }
}

void Tensor::fill(double v) {
  const int64_t n = numel();
  for (int64_t i = 0; i < n; ++i) set(i, v);
}

void Tensor::zero() { std::memset(bytes(), 0, nbytes()); }

void Tensor::add_(const Tensor& other) {
  LT2_CHECK(other.shape_ == shape_, "add_: shape ", shape_str(other.shape_), " != ", shape_str(shape_));
  check_same_dtype(*this, other, "add_");
  const int64_t n = numel();
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

}  // namespace lt2
