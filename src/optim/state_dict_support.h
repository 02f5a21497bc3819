#pragma once
// Writing and reading the optimizers' and schedulers' state dicts: key names, rank-0 float64
// scalars, and a reader that checks every key it is asked for and, at the end, that no key was
// left over, so a wrong checkpoint fails naming the key instead of loading half.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "convkit/tensor.h"

namespace convkit::detail {

std::string hyperparameter_key(const std::string& name);            // "param_groups.0.<name>"
std::string state_key(std::size_t index, const std::string& name);  // "state.<index>.<name>"
Tensor scalar_tensor(double value);                                 // rank-0 float64, host

// The dtype an optimizer keeps a parameter's state in: its own, or float32 for a bfloat16/float16
// parameter (whose master weights and moments are float32).
inline DType optimizer_state_dtype(DType parameter) {
    return is_reduced_precision(parameter) ? DType::Float32 : parameter;
}

class StateDictReader {
public:
    // `op` prefixes the messages ("SGD::load_state_dict"). With `scalar_dtype`, scalar(), flag()
    // and count() refuse a tensor of another dtype (GradScaler: a narrower one could have
    // rounded the scale); without it they take any dtype.
    StateDictReader(const std::map<std::string, Tensor>& state, std::string op,
                    std::optional<DType> scalar_dtype = std::nullopt);

    // A rank-0 tensor (of any dtype, or of scalar_dtype), as a double.
    double scalar(const std::string& key);
    // A rank-0 tensor holding 0 or 1.
    bool flag(const std::string& key);
    // A rank-0 tensor holding a non-negative integer.
    std::int64_t count(const std::string& key);
    // A floating-point tensor of the shape of `parameter` (parameters()[index]), copied to the
    // parameter's state dtype (optimizer_state_dtype) and device: never sharing storage with the
    // map's tensor.
    Tensor buffer(std::size_t index, const std::string& name, const Tensor& parameter);
    // Whether the map has any "state.<index>." key: a parameter with no state yet has none.
    bool has_state(std::size_t index) const;
    // Whether the map has `key` (for state that a parameter may or may not have yet).
    bool has(const std::string& key) const { return state_.count(key) == 1; }
    // Throws on the first key that no call above asked for.
    void finish() const;

private:
    const Tensor& find(const std::string& key);
    const Tensor& find_scalar(const std::string& key);

    const std::map<std::string, Tensor>& state_;
    std::string op_;
    std::optional<DType> scalar_dtype_;
    std::set<std::string> used_;
};

}  // namespace convkit::detail
