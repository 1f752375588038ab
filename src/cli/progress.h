#pragma once
// A progress bar for long work on stderr: redrawn in place on a terminal, one line per
// update otherwise (logs and CI stay readable).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace lt2::cli {

class Progress {
 public:
  Progress(int64_t total, int64_t start) : total_(total), start_(start), t0_(clock::now()), tty_(isatty(2)) {}

  // Returns seconds since start.
  double elapsed() const { return std::chrono::duration<double>(clock::now() - t0_).count(); }

  void update(int64_t done, const std::string& stats, bool force_line = false) {
    // Not a terminal: about 40 lines per run, plus the forced ones (logs stay short).
    if (!tty_ && !force_line && done != total_ && done % std::max<int64_t>(1, total_ / 40) != 0) return;
    const double secs = elapsed();
    const double rate = (done - start_) / std::max(secs, 1e-9);
    const double eta = rate > 0 ? (total_ - done) / rate : 0;
    const int width = 24, filled = int(width * double(done) / double(std::max<int64_t>(total_, 1)));
    std::string bar(filled, '#');
    bar.resize(width, '.');
    char line[512];
    std::snprintf(line, sizeof line, "[%s] %lld/%lld %s | ETA %s", bar.c_str(), (long long)done, (long long)total_,
                  stats.c_str(), fmt_time(eta).c_str());
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s", line);
      if (force_line) std::fputc('\n', stderr);
    } else {
      std::fprintf(stderr, "%s\n", line);
    }
    std::fflush(stderr);
  }
  void finish() {
    if (tty_) std::fputc('\n', stderr);
  }
  static std::string fmt_time(double s) {
    char b[32];
    if (s >= 3600) std::snprintf(b, sizeof b, "%dh%02dm", int(s / 3600), int(s / 60) % 60);
    else std::snprintf(b, sizeof b, "%dm%02ds", int(s / 60), int(s) % 60);
    return b;
  }

 private:
  using clock = std::chrono::steady_clock;
  int64_t total_, start_;
  clock::time_point t0_;
  bool tty_;
};

}  // namespace lt2::cli
