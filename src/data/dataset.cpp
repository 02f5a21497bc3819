#include "convkit/data/dataset.h"

#include <cstring>
#include <utility>

#include "core/check.h"
#include "data/random_draws.h"

namespace convkit::data {

namespace {

// Shape without its first dim: a row's shape.
Shape row_shape(const Shape& shape) {
    const std::vector<std::int64_t> dims = shape.to_vector();
    return Shape(std::vector<std::int64_t>(dims.begin() + 1, dims.end()));
}

Tensor copy_row(const Tensor& all, std::int64_t index) {
    Tensor row = Tensor::empty(row_shape(all.shape()), all.dtype());
    const std::size_t bytes = row.nbytes();
    std::memcpy(row.raw_data(), static_cast<const char*>(all.raw_data()) + static_cast<std::size_t>(index) * bytes, bytes);
    return row;
}

void check_index(std::int64_t index, std::int64_t size, const char* op) {
    CONVKIT_REQUIRE(index >= 0 && index < size, op, "index ", index, " is out of range for a dataset of ", size,
                    " examples");
}

}  // namespace

TensorDataset::TensorDataset(Tensor inputs, Tensor targets) {
    CONVKIT_REQUIRE(inputs.defined() && targets.defined(), "TensorDataset", "inputs and targets must be defined");
    CONVKIT_REQUIRE(inputs.rank() >= 1 && targets.rank() >= 1, "TensorDataset",
                    "inputs and targets need a first dim that counts the examples, got shapes ",
                    inputs.shape().to_string(), " and ", targets.shape().to_string());
    CONVKIT_REQUIRE(inputs.size(0) == targets.size(0), "TensorDataset", "inputs hold ", inputs.size(0),
                    " examples (shape ", inputs.shape().to_string(), ") but targets hold ", targets.size(0),
                    " (shape ", targets.shape().to_string(), ")");
    // Detached: a dataset is data, never part of a graph.
    inputs_ = inputs.detach().to(Device::host());
    targets_ = targets.detach().to(Device::host());
}

std::int64_t TensorDataset::size() const { return inputs_.size(0); }

Example TensorDataset::get(std::int64_t index) const {
    check_index(index, size(), "TensorDataset::get");
    return {copy_row(inputs_, index), copy_row(targets_, index)};
}

SubsetDataset::SubsetDataset(std::shared_ptr<const Dataset> base, std::vector<std::int64_t> indices)
    : base_(std::move(base)), indices_(std::move(indices)) {
    CONVKIT_REQUIRE(base_ != nullptr, "SubsetDataset", "the base dataset is null");
    const std::int64_t base_size = base_->size();
    for (std::size_t i = 0; i < indices_.size(); ++i) {
        CONVKIT_REQUIRE(indices_[i] >= 0 && indices_[i] < base_size, "SubsetDataset", "indices[", i, "] = ",
                        indices_[i], " is out of range for a base dataset of ", base_size, " examples");
    }
}

Example SubsetDataset::get(std::int64_t index) const {
    check_index(index, size(), "SubsetDataset::get");
    return base_->get(indices_[static_cast<std::size_t>(index)]);
}

std::pair<std::shared_ptr<SubsetDataset>, std::shared_ptr<SubsetDataset>> random_split(
    std::shared_ptr<const Dataset> base, std::int64_t first_size, std::uint64_t seed) {
    CONVKIT_REQUIRE(base != nullptr, "random_split", "the base dataset is null");
    const std::int64_t n = base->size();
    CONVKIT_REQUIRE(first_size >= 0 && first_size <= n, "random_split", "first_size ", first_size,
                    " must be in 0..", n, " (the dataset's size)");
    std::mt19937_64 rng(sampling::derive_seed(seed, sampling::SeedPurpose::Split, 0));
    const std::vector<std::int64_t> order = sampling::random_permutation(n, rng);
    const auto middle = order.begin() + first_size;
    return {std::make_shared<SubsetDataset>(base, std::vector<std::int64_t>(order.begin(), middle)),
            std::make_shared<SubsetDataset>(base, std::vector<std::int64_t>(middle, order.end()))};
}

}  // namespace convkit::data
