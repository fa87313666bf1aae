// Option table: the text form of option values.
#include "launch/option_table.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <locale>
#include <sstream>

namespace winnow::launch {

namespace {

std::string with_digits(double value, int digits) {
  std::ostringstream out;
  out.imbue(std::locale::classic());
  out.precision(digits);
  out << value;
  return out.str();
}

}  // namespace

std::string real_text(double value) {
  int digits = 1;
  while (digits < 17 && std::strtod(with_digits(value, digits).c_str(), nullptr) != value) ++digits;
  // Whole digits are written out (30, 600) rather than in exponent form (3e+01), as one types them.
  const double magnitude = std::fabs(value);
  if (magnitude >= 1.0 && magnitude < 1e17)
    digits = std::max(digits, static_cast<int>(std::floor(std::log10(magnitude))) + 1);
  return with_digits(value, digits);
}

}  // namespace winnow::launch
