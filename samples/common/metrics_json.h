#pragma once
// A sample's metrics as a JSON file in its --out folder, for scripts and CI to read.
#include <nlohmann/json.hpp>
#include <string>

namespace convkit::samples {

// Writes `metrics` pretty-printed (2-space indent, trailing newline) to `path`, atomically
// (convkit/io/atomic_file.h). Non-finite numbers, which JSON cannot hold, are written as null.
void write_metrics_json(const std::string& path, const nlohmann::json& metrics);

}  // namespace convkit::samples
