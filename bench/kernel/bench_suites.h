#pragma once
// The standard suites: layers of well-known networks, written in the one-line configuration
// format (bench_config.h) and parsed like a user's file. --quick keeps a subset of each suite.
#include <string>
#include <vector>

#include "bench_config.h"

namespace convkit::bench {

// resnet18, resnet50, unet, depthwise, conv1d, conv3d, transposed, pooling.
const std::vector<std::string>& standard_suite_names();

// The configurations of a suite (all of them, or the quick subset). Throws InvalidArgument
// naming the choices for an unknown suite.
std::vector<BenchConfig> suite_configs(const std::string& suite, bool quick);

}  // namespace convkit::bench
