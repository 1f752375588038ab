#pragma once
// Self-contained SVG line charts (no scripts, no external fonts) for benchmark reports.
#include <string>
#include <utility>
#include <vector>

namespace lt2::report {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in x order
};

struct Chart {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  std::vector<Series> series;
};

// Escapes text for SVG content and single- or double-quoted attributes.
std::string xml_escape(const std::string& s);

// One chart as an SVG group of the given size (for composing), or a whole document.
std::string chart_group(const Chart& c, double width, double height);
// Charts laid out in a grid with `cols` columns, each cell width x height, under a title.
std::string svg_document(const std::string& title, const std::vector<Chart>& charts, int cols, double width,
                         double height);

}  // namespace lt2::report
