#include "common/metrics_json.h"

#include "convkit/io/atomic_file.h"

namespace convkit::samples {

void write_metrics_json(const std::string& path, const nlohmann::json& metrics) {
    // nlohmann::json dumps NaN and infinities as null already.
    write_file_atomically(path, metrics.dump(2) + "\n", "write_metrics_json");
}

}  // namespace convkit::samples
