#include "core/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace lt2::fs {

namespace {

// strerror, but thread-safe.
std::string reason(int err) { return std::system_category().message(err); }

// Closes a descriptor on scope exit (errors from close on read-only fds carry no information).
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::string read_file(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) fail(cat("cannot open ", path, ": ", reason(errno)));
  struct stat st {};
  if (::fstat(f.fd, &st) == 0 && S_ISDIR(st.st_mode)) fail(cat("cannot read ", path, ": ", reason(EISDIR)));
  std::string out;
  if (st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  // Read to EOF rather than trusting st_size (pipes, /proc files, concurrent appends).
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(cat("cannot read ", path, ": ", reason(errno)));
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  // Same directory as the target so that rename() is atomic (same file system); the pid
  // keeps concurrent writers from clobbering each other's temp files.
  const std::string tmp = cat(path, ".tmp.", ::getpid());
  auto failure = [&](const std::string& step, int err) {
    return Error(cat("cannot write ", path, ": ", step, ": ", reason(err)));
  };

  Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)};
  if (f.fd < 0) throw failure(cat("cannot create ", tmp), errno);  // nothing of ours to remove

  // From here on, any exit other than the successful rename removes the temp file.
  bool renamed = false;
  struct Cleanup {
    const std::string& tmp;
    bool& renamed;
    ~Cleanup() {
      if (!renamed) ::unlink(tmp.c_str());
    }
  } cleanup{tmp, renamed};

  struct stat old {};
  if (::stat(path.c_str(), &old) == 0) ::fchmod(f.fd, old.st_mode & 07777);  // best effort

  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(f.fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw failure("write failed", errno);
    done += static_cast<size_t>(n);
  }
  // fsync before rename: otherwise a crash can leave the new name pointing at empty data.
  if (::fsync(f.fd) != 0) throw failure("fsync failed", errno);
  const int fd = f.fd;
  f.fd = -1;
  if (::close(fd) != 0) throw failure("close failed", errno);  // NFS reports write errors here

  if (::rename(tmp.c_str(), path.c_str()) != 0) throw failure(cat("cannot rename ", tmp), errno);
  renamed = true;

  // Make the rename itself durable. Some file systems cannot fsync a directory (EINVAL);
  // the data is already safe there, so only real I/O errors are reported.
  Fd dir{::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir.fd >= 0 && ::fsync(dir.fd) != 0 && errno != EINVAL && errno != ENOTSUP)
    throw failure("fsync of the directory failed", errno);
}

void make_dirs(const std::string& path) {
  if (path.empty()) fail("cannot create directory: empty path");
  // Create each prefix ending before a '/', then the full path.
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    if (path[i - 1] == '/') continue;  // repeated or trailing slashes
    const std::string prefix = path.substr(0, i);
    if (::mkdir(prefix.c_str(), 0777) == 0) continue;
    const int err = errno;
    struct stat st {};
    if (err == EEXIST && ::stat(prefix.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    fail(cat("cannot create directory ", path, ": ", err == EEXIST ? cat(prefix, " exists and is not a directory")
                                                                   : reason(err)));
  }
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace lt2::fs
