// The quantization report of a conversion: a CSV of every tensor (dtype, bytes, relative RMS error,
// why a matrix stayed float) and, beside it, an SVG bar chart of the errors layer by layer.
#pragma once

#include <string>

#include "rill/convert.hpp"

namespace rill {
namespace convert {

// Writes csv_path, and the plot at csv_path with its extension replaced by .svg. Throws ConvertError
// if a file cannot be written.
void write_report(const Report& r, const std::string& csv_path);

}  // namespace convert
}  // namespace rill
