// The quantization report (report.h): the CSV, and the SVG plot of each matrix's error.
#include "report.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "safetensors.h"

namespace rill {
namespace convert {

namespace {

// An SVG bar chart of each matrix's relative RMS quantization error, grouped by layer (x) and
// coloured by tensor name, beside the CSV: REPORT.svg.
void write_error_plot(const Report& r, const std::string& csv_path) {
  std::vector<const TensorReport*> rows;
  std::vector<std::string> names;
  double ymax = 0;
  for (const TensorReport& t : r.tensors) {
    if (t.shape.size() != 2 || t.rel_rms <= 0) continue;
    rows.push_back(&t);
    const std::string base = t.name.substr(t.name.find_last_of('.') + 1);
    if (std::find(names.begin(), names.end(), base) == names.end()) names.push_back(base);
    ymax = std::max(ymax, t.rel_rms);
  }
  if (rows.empty()) return;
  const std::string path = csv_path.substr(0, csv_path.rfind('.') == std::string::npos ? csv_path.size() : csv_path.rfind('.')) + ".svg";
  std::ofstream f(path);
  if (!f) throw ConvertError("cannot write " + path + " (the model was written)");
  const double W = 980, H = 420, left = 70, right = 180, top = 40, bottom = 60;
  const double pw = W - left - right, ph = H - top - bottom, bw = pw / static_cast<double>(rows.size());
  static const char* colors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                                 "#9c755f", "#bab0ac"};
  f << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='12'>\n"
    << "<rect width='100%' height='100%' fill='white'/>\n"
    << "<text x='" << left << "' y='22' font-size='15'>Relative RMS error of quantized weights, " << r.arch
    << " (left to right: file order, layer by layer)</text>\n";
  for (int k = 0; k <= 4; ++k) {
    const double y = top + ph - ph * k / 4.0;
    char tick[32];
    std::snprintf(tick, sizeof tick, "%.3g", ymax * k / 4.0);
    f << "<line x1='" << left << "' x2='" << left + pw << "' y1='" << y << "' y2='" << y << "' stroke='#ddd'/>"
      << "<text x='" << left - 6 << "' y='" << y + 4 << "' text-anchor='end'>" << tick << "</text>\n";
  }
  int last_layer = -2;
  for (size_t i = 0; i < rows.size(); ++i) {
    const TensorReport& t = *rows[i];
    const std::string base = t.name.substr(t.name.find_last_of('.') + 1);
    const size_t ci = static_cast<size_t>(std::find(names.begin(), names.end(), base) - names.begin()) % 10;
    const double h = ph * t.rel_rms / ymax, x = left + bw * static_cast<double>(i);
    f << "<rect x='" << x + 0.1 * bw << "' y='" << top + ph - h << "' width='" << 0.8 * bw << "' height='" << h
      << "' fill='" << colors[ci] << "'><title>" << t.name << " " << t.dtype << " " << t.rel_rms << "</title></rect>\n";
    const int layer = t.name.rfind("layers.", 0) == 0 ? std::atoi(t.name.c_str() + 7) : -1;
    if (layer != last_layer) {
      f << "<text x='" << x + 2 << "' y='" << top + ph + 16 << "'>";
      if (layer < 0) f << "top";
      else f << 'L' << layer;
      f << "</text>\n";
      last_layer = layer;
    }
  }
  f << "<text x='" << left + pw / 2 << "' y='" << H - 14 << "' text-anchor='middle'>tensor (grouped by layer)</text>\n";
  for (size_t k = 0; k < names.size(); ++k)
    f << "<rect x='" << left + pw + 20 << "' y='" << top + 18 * k << "' width='12' height='12' fill='" << colors[k % 10]
      << "'/><text x='" << left + pw + 38 << "' y='" << top + 18 * k + 11 << "'>" << names[k] << "</text>\n";
  f << "</svg>\n";
}

}  // namespace

void write_report(const Report& r, const std::string& csv_path) {
  std::ofstream csv(csv_path);
  if (!csv) throw ConvertError("cannot write " + csv_path + " (the model was written)");
  csv << "tensor,source,dtype,shape,bytes,rel_rms_error,note\n";
  for (const TensorReport& t : r.tensors) {
    std::string shape;
    for (uint64_t d : t.shape) {
      if (!shape.empty()) shape += 'x';
      shape += std::to_string(d);
    }
    csv << t.name << "," << t.source << "," << t.dtype << "," << shape << "," << t.bytes << "," << t.rel_rms << ","
        << t.note << "\n";
  }
  write_error_plot(r, csv_path);
}

}  // namespace convert
}  // namespace rill
