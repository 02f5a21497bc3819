// Reading a case's parameters from its metadata, and its input tensors.
#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <sstream>

#include "torch_diff/torch_diff.h"

namespace torch_diff {

namespace {
std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream in(text);
    while (std::getline(in, part, separator)) {
        if (!part.empty()) parts.push_back(part);
    }
    return parts;
}

std::int64_t parse_integer(const std::string& key, const std::string& text) {
    std::int64_t value = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, error] = std::from_chars(text.data(), end, value);
    if (error != std::errc() || ptr != end) throw CaseError("'" + key + "' is not an integer: '" + text + "'");
    return value;
}
}  // namespace

std::vector<std::int64_t> parse_integers(const std::string& key, const std::string& text) {
    std::vector<std::int64_t> values;
    for (const auto& part : split(text, ',')) values.push_back(parse_integer(key, part));
    if (values.empty()) throw CaseError("'" + key + "' holds no integers: '" + text + "'");
    return values;
}

std::vector<std::int64_t> per_dim(const std::string& key, std::vector<std::int64_t> values, int rank) {
    if (values.size() == 1) values.assign(static_cast<std::size_t>(rank), values[0]);
    if (static_cast<int>(values.size()) != rank) {
        throw CaseError("'" + key + "' needs 1 or " + std::to_string(rank) + " values, got " +
                        std::to_string(values.size()));
    }
    return values;
}

Case::Case(std::string name, Metadata metadata, convkit::TensorMap tensors)
    : name_(std::move(name)), metadata_(std::move(metadata)), tensors_(std::move(tensors)) {
    if (has("requires_grad")) requires_grad_ = split(text("requires_grad"), ',');
}

bool Case::has(const std::string& key) const {
    read_keys_.insert(key);
    return metadata_.count(key) != 0;
}

std::vector<std::string> Case::unused_keys() const {
    std::vector<std::string> unused;
    for (const auto& [key, value] : metadata_) {
        // "note" describes the case for people; "requires_grad" is read at construction.
        if (!read_keys_.count(key) && key != "note" && key != "requires_grad") unused.push_back(key);
    }
    return unused;
}

const std::string& Case::text(const std::string& key) const {
    read_keys_.insert(key);
    const auto it = metadata_.find(key);
    if (it == metadata_.end()) throw CaseError("metadata has no '" + key + "'");
    return it->second;
}

std::string Case::text_or(const std::string& key, const std::string& fallback) const {
    return has(key) ? text(key) : fallback;
}

std::int64_t Case::integer(const std::string& key) const { return parse_integer(key, text(key)); }

std::int64_t Case::integer_or(const std::string& key, std::int64_t fallback) const {
    return has(key) ? integer(key) : fallback;
}

double Case::number(const std::string& key) const {
    const std::string& value = text(key);
    // strtod reads what Python's repr(float) writes, "inf" and "nan" included.
    char* end = nullptr;
    const double result = std::strtod(value.c_str(), &end);
    if (value.empty() || end != value.c_str() + value.size()) {
        throw CaseError("'" + key + "' is not a number: '" + value + "'");
    }
    return result;
}

double Case::number_or(const std::string& key, double fallback) const { return has(key) ? number(key) : fallback; }

bool Case::flag(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    const std::string& value = text(key);
    if (value == "true") return true;
    if (value == "false") return false;
    throw CaseError("'" + key + "' must be 'true' or 'false', got '" + value + "'");
}

std::vector<std::int64_t> Case::integers(const std::string& key) const { return parse_integers(key, text(key)); }

Tensor Case::input(const std::string& name) {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) throw CaseError("the case has no tensor '" + name + "'");
    Tensor t = it->second;
    if (std::find(requires_grad_.begin(), requires_grad_.end(), name) != requires_grad_.end() && !t.requires_grad()) {
        t.set_requires_grad();
        add_differentiable(name, t);
    }
    return t;
}

Tensor Case::optional_input(const std::string& name) { return has_tensor(name) ? input(name) : Tensor(); }

void Case::add_differentiable(const std::string& name, const Tensor& tensor) {
    differentiable_.emplace_back(name, tensor);
}

}  // namespace torch_diff
