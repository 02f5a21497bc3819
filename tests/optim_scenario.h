#pragma once
// The fixed problem on which the optimizers are compared with PyTorch, defined exactly as in
// tests/optim/pytorch_reference.py (which documents it): a scenario is a line of key=value words
// such as "optimizer=sgd lr=0.1 momentum=0.9 nesterov=1 dtype=float64 steps=6 skip=1
// scheduler=onecycle", and run_scenario returns the parameters after its steps, flattened.
#include <string>
#include <vector>

namespace convkit::testing {

std::vector<double> run_scenario(const std::string& spec);

}  // namespace convkit::testing
