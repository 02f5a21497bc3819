#pragma once
// Output files written whole or not at all: a reader (or a crash) never sees half a PNG or a
// truncated metrics.json.
#include <string>
#include <string_view>

namespace convkit::samples {

// Writes `contents` to a temporary file beside `path`, then renames it over `path` (atomic on
// POSIX). Throws convkit::IoError naming the path and the reason; no temporary file is left.
void write_file_atomically(const std::string& path, std::string_view contents);

}  // namespace convkit::samples
