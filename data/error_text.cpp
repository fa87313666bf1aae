// Implements error_message, without_backtraces and escaped_bytes.
#include "data/error_text.h"

#include <c10/util/Exception.h>

#include <cstdio>
#include <sstream>

namespace winnow::data {
namespace {

bool starts_with(std::string_view line, std::string_view prefix) {
  return line.substr(0, prefix.size()) == prefix;
}

// "frame #12: ..." (LibTorch's backtrace line), possibly indented.
bool is_frame_line(std::string_view line) {
  const size_t first = line.find_first_not_of(" \t");
  return first != std::string_view::npos && starts_with(line.substr(first), "frame #");
}

bool is_backtrace_start(std::string_view line) {
  const size_t at = line.find("Exception raised from ");
  return at != std::string_view::npos;
}

}  // namespace

std::string without_backtraces(const std::string& text) {
  std::string out;
  std::istringstream lines(text);
  std::string line;
  bool in_backtrace = false;
  bool first = true;
  while (std::getline(lines, line)) {
    if (is_backtrace_start(line)) {
      // Keep what precedes the marker on the same line (a wrapped message may continue there).
      line = line.substr(0, line.find("Exception raised from "));
      in_backtrace = true;
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
    } else if (is_frame_line(line)) {
      continue;
    } else if (in_backtrace) {
      // A backtrace ends at the first line that is not a frame; an empty line belongs to it.
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      in_backtrace = false;
    }
    if (!first) out += '\n';
    out += line;
    first = false;
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string error_message(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error))
    return without_backtraces(torch_error->what_without_backtrace());
  return without_backtraces(error.what());
}

std::string escaped_bytes(std::string_view bytes, size_t max_bytes) {
  std::string out;
  const size_t shown = std::min(bytes.size(), max_bytes);
  for (size_t i = 0; i < shown; ++i) {
    const auto byte = static_cast<unsigned char>(bytes[i]);
    if (byte == '\\') {
      out += "\\\\";
    } else if (byte == '\'') {
      out += "\\'";
    } else if (byte >= 0x20 && byte < 0x7f) {
      out += static_cast<char>(byte);
    } else {
      char code[5];
      std::snprintf(code, sizeof code, "\\x%02x", byte);
      out += code;
    }
  }
  if (shown < bytes.size()) out += "...";
  return out;
}

}  // namespace winnow::data
