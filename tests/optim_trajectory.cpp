// Prints the parameters after a scenario (tests/optim_scenario.h) whose words are the arguments,
// for tests/optim/pytorch_reference.py --compare.
#include <cstdio>
#include <exception>
#include <string>

#include "optim_scenario.h"

int main(int argc, char** argv) {
    std::string spec;
    for (int i = 1; i < argc; ++i) spec += std::string(argv[i]) + " ";
    try {
        for (const double v : convkit::testing::run_scenario(spec)) std::printf("%.17g\n", v);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "optim_trajectory: %s\n", e.what());
        return 1;
    }
    return 0;
}
