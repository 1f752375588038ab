#include "report/heatmap.h"

#include "report/chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace lt2::report {

namespace {

struct Rgb {
  double r, g, b;
};
// Stops of the scale: red, yellow, green.
constexpr Rgb kStops[] = {{215, 48, 39}, {254, 224, 139}, {26, 152, 80}};

Rgb scale(double v) {
  v = std::clamp(v, 0.0, 1.0);
  const double t = v * 2;
  const int i = std::min(1, int(t));
  const double f = t - i;
  const Rgb a = kStops[i], b = kStops[i + 1];
  return {a.r + (b.r - a.r) * f, a.g + (b.g - a.g) * f, a.b + (b.b - a.b) * f};
}

std::string hex(Rgb c) {
  char b[16];
  std::snprintf(b, sizeof b, "#%02x%02x%02x", int(std::lround(c.r)), int(std::lround(c.g)), int(std::lround(c.b)));
  return b;
}
}  // namespace

std::string heat_colour(double v) { return hex(scale(v)); }

std::string heatmap_svg(const std::string& title, const std::vector<std::string>& row_labels,
                        const std::vector<std::string>& col_labels, const std::vector<double>& values,
                        const std::string& x_title, const std::string& y_title) {
  const size_t R = row_labels.size(), C = col_labels.size();
  LT2_CHECK(R > 0 && C > 0, "heatmap: needs at least one row and one column, got ", R, " x ", C);
  LT2_CHECK(values.size() == R * C, "heatmap: ", values.size(), " values for ", R, " rows x ", C, " columns");
  const double cw = 64, ch = 36, left = 90, top = 50, legend_w = 90;
  const double gx = left, gy = top, gw = cw * double(C), gh = ch * double(R);
  const double W = std::max(left + gw + legend_w + 20, 20 + 9.0 * double(title.size())), H = top + std::max(gh, 100.0) + 60;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' font-family='sans-serif'>\n"
                "<rect width='100%%' height='100%%' fill='white'/>\n",
                W, H);
  std::string s = buf;
  s += "<title>" + xml_escape(title) + "</title>\n";
  s += "<text x='10' y='22' font-size='16' font-weight='bold'>" + xml_escape(title) + "</text>\n";
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < C; ++c) {
      const double v = values[r * C + c];
      const double x = gx + cw * double(c), y = gy + ch * double(r);
      const bool missing = !std::isfinite(v);
      const std::string fill = missing ? "#cccccc" : heat_colour(v);
      std::string label = "n/a";
      if (!missing) {
        std::snprintf(buf, sizeof buf, "%.0f%%", 100.0 * std::clamp(v, 0.0, 1.0));
        label = buf;
      }
      std::snprintf(buf, sizeof buf,
                    "<rect class='cell' x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s' stroke='white'/>"
                    "<text x='%.1f' y='%.1f' font-size='12' text-anchor='middle'>%s</text>\n",
                    x, y, cw, ch, fill.c_str(), x + cw / 2, y + ch / 2 + 4, label.c_str());
      s += buf;
    }
  for (size_t c = 0; c < C; ++c) {
    std::snprintf(buf, sizeof buf, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>",
                  gx + cw * (double(c) + 0.5), gy + gh + 15);
    s += buf + xml_escape(col_labels[c]) + "</text>\n";
  }
  for (size_t r = 0; r < R; ++r) {
    std::snprintf(buf, sizeof buf, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='end'>", gx - 6,
                  gy + ch * (double(r) + 0.5) + 4);
    s += buf + xml_escape(row_labels[r]) + "</text>\n";
  }
  std::snprintf(buf, sizeof buf, "<text x='%.1f' y='%.1f' font-size='12' text-anchor='middle'>", gx + gw / 2,
                gy + gh + 36);
  s += buf + xml_escape(x_title) + "</text>\n";
  std::snprintf(buf, sizeof buf,
                "<text transform='translate(16,%.1f) rotate(-90)' font-size='12' text-anchor='middle'>", gy + gh / 2);
  s += buf + xml_escape(y_title) + "</text>\n";
  // Legend: a vertical bar of 10 bands from 100% (top) to 0% (bottom), ticks at 0, 50, 100.
  const double lx = gx + gw + 24, lw = 16, lh = std::max(gh, 100.0), band = lh / 10;
  s += "<g class='legend'>\n";
  for (int i = 0; i < 10; ++i) {
    std::snprintf(buf, sizeof buf, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s'/>\n", lx,
                  gy + band * i, lw, band + 0.5, heat_colour(1.0 - (i + 0.5) / 10).c_str());
    s += buf;
  }
  std::snprintf(buf, sizeof buf, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='#999'/>\n",
                lx, gy, lw, lh);
  s += buf;
  for (int p : {100, 50, 0}) {
    std::snprintf(buf, sizeof buf, "<text x='%.1f' y='%.1f' font-size='11'>%d%%</text>\n", lx + lw + 4,
                  gy + lh * (1 - p / 100.0) + 4, p);
    s += buf;
  }
  s += "</g>\n";
  return s + "</svg>\n";
}

}  // namespace lt2::report
