#pragma once
// File-system helpers whose errors name the path and the OS reason, and an atomic write
// so that a crash or a full disk never leaves a half-written checkpoint or config behind.
#include <string>
#include <string_view>

#include "core/error.h"

namespace lt2::fs {

// Whole file as bytes. Throws "cannot open <path>: <reason>" / "cannot read <path>: <reason>".
std::string read_file(const std::string& path);

// Writes <path>.tmp.<pid> next to `path`, fsyncs it, renames it over `path` and fsyncs the
// directory. On failure the temp file is removed, `path` keeps its previous contents, and
// lt2::Error names the path and the reason. An existing file's permission bits are kept.
void write_file_atomic(const std::string& path, std::string_view bytes);

// mkdir -p: creates every missing directory on the way; fine if it already exists.
void make_dirs(const std::string& path);

bool exists(const std::string& path);

}  // namespace lt2::fs
