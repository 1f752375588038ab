#pragma once
// Helpers for tests of error paths: the message of the lt2::Error a call throws.
#include <gtest/gtest.h>

#include <exception>
#include <string>

#include "core/error.h"

namespace lt2::test {

// Runs fn, which must throw lt2::Error; returns the message ("" and a failure otherwise).
template <class F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const lt2::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected lt2::Error, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected lt2::Error, nothing was thrown";
  return "";
}

inline ::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

}  // namespace lt2::test
