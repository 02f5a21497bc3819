#include "convkit/nn/sequential.h"

#include "core/check.h"

namespace convkit::nn {

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) {
    for (auto& m : modules) push_back(std::move(m));
}

Sequential& Sequential::push_back(std::shared_ptr<Module> module) {
    register_child(std::to_string(modules_.size()), module);
    modules_.push_back(std::move(module));
    return *this;
}

const std::shared_ptr<Module>& Sequential::operator[](std::size_t index) const {
    CONVKIT_REQUIRE(index < modules_.size(), "Sequential", "index ", index, " is out of range for ", modules_.size(),
                    " modules");
    return modules_[index];
}

Tensor Sequential::forward(const Tensor& input) {
    Tensor x = input;
    for (auto& m : modules_) x = (*m)(x);
    return x;
}

}  // namespace convkit::nn
