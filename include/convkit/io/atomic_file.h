#pragma once
// Files written whole or not at all: a reader, or a crash, never sees a half-written file in the
// target's place. The checkpoints use the same mechanism (docs/checkpoints.md).
#include <string>
#include <string_view>

namespace convkit {

// Writes `contents` to a new temporary file beside `path`, syncs it to the disk, renames it over
// `path` (atomic on POSIX) and syncs the directory. On any failure the target is untouched, no
// temporary file is left, and an IoError names `op`, the path and the reason.
void write_file_atomically(const std::string& path, std::string_view contents,
                           const std::string& op = "write_file_atomically");

}  // namespace convkit
