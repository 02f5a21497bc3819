#include "optim/state_dict_support.h"

#include <cmath>

#include "convkit/autograd.h"
#include "core/check.h"

namespace convkit::detail {

std::string hyperparameter_key(const std::string& name) {
    return "param_groups.0." + name;
}

std::string state_key(std::size_t index, const std::string& name) {
    return "state." + std::to_string(index) + "." + name;
}

Tensor scalar_tensor(double value) {
    return Tensor::full(Shape{}, value, DType::Float64);
}

StateDictReader::StateDictReader(const std::map<std::string, Tensor>& state, std::string op,
                                 std::optional<DType> scalar_dtype)
    : state_(state), op_(std::move(op)), scalar_dtype_(scalar_dtype) {}

const Tensor& StateDictReader::find(const std::string& key) {
    const auto it = state_.find(key);
    CONVKIT_REQUIRE(it != state_.end(), op_, "missing key '", key, "'");
    CONVKIT_REQUIRE(it->second.defined(), op_, "key '", key, "' holds an undefined tensor");
    used_.insert(key);
    return it->second;
}

const Tensor& StateDictReader::find_scalar(const std::string& key) {
    const Tensor& t = find(key);
    CONVKIT_REQUIRE(t.rank() == 0, op_, "key '", key, "' must be a scalar (shape []), got shape ",
                    t.shape().to_string());
    CONVKIT_REQUIRE(!scalar_dtype_ || t.dtype() == *scalar_dtype_, op_, "key '", key, "' must be a ",
                    dtype_name(scalar_dtype_.value_or(t.dtype())), " scalar, got ", dtype_name(t.dtype()));
    return t;
}

double StateDictReader::scalar(const std::string& key) {
    return find_scalar(key).to(Device::host()).item(0);
}

bool StateDictReader::flag(const std::string& key) {
    const double value = scalar(key);
    CONVKIT_REQUIRE(value == 0 || value == 1, op_, "key '", key, "' must be 0 or 1, got ", value);
    return value == 1;
}

std::int64_t StateDictReader::count(const std::string& key) {
    const double value = scalar(key);
    // 2^53: every integer below is exact in the float64 it was saved as.
    CONVKIT_REQUIRE(value >= 0 && value <= 9007199254740992.0 && std::floor(value) == value, op_, "key '", key,
                    "' must be a non-negative integer, got ", value);
    return static_cast<std::int64_t>(value);
}

Tensor StateDictReader::buffer(std::size_t index, const std::string& name, const Tensor& parameter) {
    const std::string key = state_key(index, name);
    const Tensor& source = find(key);
    CONVKIT_REQUIRE(source.shape() == parameter.shape(), op_, "key '", key, "' has shape ", source.shape().to_string(),
                    " but parameter ", index, " has shape ", parameter.shape().to_string());
    CONVKIT_REQUIRE(is_floating_point(source.dtype()), op_, "key '", key, "' must be a floating-point tensor, got ",
                    dtype_name(source.dtype()));
    NoGradGuard no_grad;
    const DType dtype = optimizer_state_dtype(parameter.dtype());
    Tensor copy = Tensor::empty(parameter.shape(), dtype, parameter.device());
    copy.copy_(source.detach().to(dtype));
    return copy;
}

bool StateDictReader::has_state(std::size_t index) const {
    const std::string prefix = "state." + std::to_string(index) + ".";
    const auto it = state_.lower_bound(prefix);
    return it != state_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

void StateDictReader::finish() const {
    for (const auto& [key, value] : state_) {
        CONVKIT_REQUIRE(used_.count(key) == 1, op_, "unexpected key '", key, "'");
    }
}

}  // namespace convkit::detail
