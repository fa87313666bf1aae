// Text of error messages meant for people: an exception's message without C++ backtraces (also
// when one error's text was wrapped into another's), and bytes read from a file shown escaped so
// a damaged file cannot write control characters or invalid UTF-8 to the terminal.
#pragma once

#include <cstddef>
#include <exception>
#include <string>
#include <string_view>

namespace winnow::data {

// The message of `error` for a person: for a c10::Error its message and context without the
// backtrace LibTorch appends to what(); for any exception, every backtrace block that a wrapped
// message carried ("Exception raised from ...", "frame #N: ...") is removed, and trailing blank
// lines are trimmed.
std::string error_message(const std::exception& error);

// `text` with every backtrace block removed (the lines from "Exception raised from" up to the
// last "frame #N" line that follows it, and stray "frame #N:" lines).
std::string without_backtraces(const std::string& text);

// Bytes from a file, printable: ASCII 0x20..0x7e as they are (backslash and quote doubled as
// \\ and \'), everything else as \xNN; at most `max_bytes` bytes are shown, then "...".
std::string escaped_bytes(std::string_view bytes, size_t max_bytes = 64);

}  // namespace winnow::data
