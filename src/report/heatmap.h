#pragma once
// Self-contained SVG heatmaps (no scripts, no external fonts), e.g. NIAH accuracy per
// (context length, needle depth): one coloured cell per value with the value written in it,
// and a colour-scale legend.
#include <string>
#include <vector>

namespace lt2::report {

// values: rows x cols, row-major, each in [0, 1] (clamped; NaN = missing, drawn grey "n/a").
// Cells are written as percentages. Each cell is one <rect class='cell'>. Throws lt2::Error
// when values.size() != rows * cols or there are no rows / columns.
std::string heatmap_svg(const std::string& title, const std::vector<std::string>& row_labels,
                        const std::vector<std::string>& col_labels, const std::vector<double>& values,
                        const std::string& x_title, const std::string& y_title);

// The colour of a value in [0, 1] on the scale (red 0 -> yellow 0.5 -> green 1), "#rrggbb".
std::string heat_colour(double v);

}  // namespace lt2::report
