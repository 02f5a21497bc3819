#pragma once
// The standard suites: layers of well-known networks, written in the one-line configuration
// format (bench_config.h) and parsed like a user's file. --quick keeps a subset of each suite.
#include <memory>
#include <string>
#include <vector>

#include "bench_config.h"
#include "convkit/nn/module.h"

namespace convkit::bench {

// resnet18, resnet50, unet, depthwise, conv1d, conv3d, transposed, pooling.
const std::vector<std::string>& standard_suite_names();

// The configurations of a suite (all of them, or the quick subset). Throws InvalidArgument
// naming the choices for an unknown suite.
std::vector<BenchConfig> suite_configs(const std::string& suite, bool quick);

// The networks --model times: resnet18, resnet34, resnet50, vgg11_bn, vgg16_bn (the model zoo,
// 1000 classes). Both throw InvalidArgument naming the choices for another name.
void check_bench_model_name(const std::string& name);
std::shared_ptr<nn::Module> make_bench_model(const std::string& name);

}  // namespace convkit::bench
