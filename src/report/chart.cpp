#include "report/chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace lt2::report {

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '\'') o += "&apos;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

namespace {
const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

std::string num(double v) {
  char b[32];
  const double a = std::abs(v);
  if (a != 0 && (a >= 1e5 || a < 1e-2)) std::snprintf(b, sizeof b, "%.0e", v);
  else if (a >= 100 || v == std::floor(v)) std::snprintf(b, sizeof b, "%.0f", v);
  else std::snprintf(b, sizeof b, "%.2g", v);
  return b;
}

struct Axis {
  double lo, hi;
  bool log;
  double step = 1;  // linear axes: tick spacing
  double map(double v, double a, double b) const {
    const double t = log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : (v - lo) / (hi - lo);
    return a + t * (b - a);
  }
  std::vector<double> ticks() const {
    std::vector<double> t;
    if (log) {
      for (double p = std::floor(std::log10(lo)); p <= std::ceil(std::log10(hi)); ++p) {
        const double v = std::pow(10.0, p);
        if (v >= lo * 0.999 && v <= hi * 1.001) t.push_back(v);
      }
      if (t.size() < 2) t = {lo, hi};
      return t;
    }
    for (double v = lo; v <= hi * (1 + 1e-9); v += step) t.push_back(v);
    return t;
  }
};

Axis make_axis(std::vector<double> v, bool log) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double x : v)
    if (std::isfinite(x) && (!log || x > 0)) lo = std::min(lo, x), hi = std::max(hi, x);
  if (!std::isfinite(lo)) lo = 1, hi = 10;
  if (log) {
    lo = std::pow(10.0, std::floor(std::log10(lo)));
    hi = std::pow(10.0, std::ceil(std::log10(hi)));
    if (hi <= lo) hi = lo * 10;
    return {lo, hi, log};
  }
  // Linear: ticks at a "nice" spacing (1, 2 or 5 times a power of ten), about four of them.
  lo = std::min(lo, 0.0);
  if (hi <= lo) hi = lo + 1;
  const double raw = (hi - lo) / 4, mag = std::pow(10.0, std::floor(std::log10(raw))), r = raw / mag;
  const double step = (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
  return {std::floor(lo / step) * step, std::ceil(hi / step) * step, false, step};
}
}  // namespace

std::string chart_group(const Chart& c, double W, double H) {
  const double left = 70, right = 130, top = 30, bottom = 45;
  const double x0 = left, x1 = W - right, y0 = H - bottom, y1 = top;
  std::vector<double> xs, ys;
  for (const auto& s : c.series)
    for (const auto& [x, y] : s.points) xs.push_back(x), ys.push_back(y);
  const Axis ax = make_axis(xs, c.log_x), ay = make_axis(ys, c.log_y);
  std::string g;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='#999'/>\n"
                "<text x='%.1f' y='18' font-size='14' font-weight='bold'>%s</text>\n"
                "<text x='%.1f' y='%.1f' font-size='12' text-anchor='middle'>%s</text>\n"
                "<text transform='translate(14,%.1f) rotate(-90)' font-size='12' text-anchor='middle'>%s</text>\n",
                x0, y1, x1 - x0, y0 - y1, x0, xml_escape(c.title).c_str(), (x0 + x1) / 2, H - 8, xml_escape(c.x_label).c_str(),
                (y0 + y1) / 2, xml_escape(c.y_label).c_str());
  g += buf;
  for (double t : ax.ticks()) {
    const double px = ax.map(t, x0, x1);
    std::snprintf(buf, sizeof buf,
                  "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#eee'/>"
                  "<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>%s</text>\n",
                  px, y0, px, y1, px, y0 + 15, num(t).c_str());
    g += buf;
  }
  for (double t : ay.ticks()) {
    const double py = ay.map(t, y0, y1);
    std::snprintf(buf, sizeof buf,
                  "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#eee'/>"
                  "<text x='%.1f' y='%.1f' font-size='11' text-anchor='end'>%s</text>\n",
                  x0, py, x1, py, x0 - 5, py + 4, num(t).c_str());
    g += buf;
  }
  for (size_t i = 0; i < c.series.size(); ++i) {
    const auto& s = c.series[i];
    const char* col = kColors[i % 8];
    std::string pts;
    auto sorted = s.points;
    std::sort(sorted.begin(), sorted.end());
    for (const auto& [x, y] : sorted) {
      if (!std::isfinite(x) || !std::isfinite(y) || (c.log_x && x <= 0) || (c.log_y && y <= 0)) continue;
      std::snprintf(buf, sizeof buf, "%.1f,%.1f ", ax.map(x, x0, x1), ay.map(y, y0, y1));
      pts += buf;
      std::snprintf(buf, sizeof buf, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n", ax.map(x, x0, x1),
                    ay.map(y, y0, y1), col);
      g += buf;
    }
    g += "<polyline fill='none' stroke-width='2' stroke='" + std::string(col) + "' points='" + pts + "'/>\n";
    std::snprintf(buf, sizeof buf,
                  "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='%s' stroke-width='3'/>"
                  "<text x='%.1f' y='%.1f' font-size='12'>%s</text>\n",
                  x1 + 10, y1 + 12 + 18.0 * i, x1 + 28, y1 + 12 + 18.0 * i, col, x1 + 33, y1 + 16 + 18.0 * i,
                  xml_escape(s.name).c_str());
    g += buf;
  }
  return g;
}

std::string svg_document(const std::string& title, const std::vector<Chart>& charts, int cols, double W, double H) {
  const int rows = int((charts.size() + cols - 1) / cols);
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' font-family='sans-serif'>\n"
                "<rect width='100%%' height='100%%' fill='white'/>\n",
                W * cols, H * rows + 30);
  std::string s = buf;
  s += "<text x='10' y='22' font-size='16' font-weight='bold'>" + xml_escape(title) + "</text>\n";
  for (size_t i = 0; i < charts.size(); ++i) {
    std::snprintf(buf, sizeof buf, "<g transform='translate(%.0f,%.0f)'>\n", W * double(i % cols),
                  30 + H * double(i / cols));
    s += buf + chart_group(charts[i], W, H) + "</g>\n";
  }
  return s + "</svg>\n";
}

}  // namespace lt2::report
