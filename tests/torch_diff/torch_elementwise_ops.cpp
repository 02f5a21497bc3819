// Elementwise arithmetic (with broadcasting), unary ops, activations, reductions and dropout.
//   "unary":  input; "function" (exp, relu, gelu, ...) and its scalar arguments
//   "binary": a, b (broadcast); "function" add, sub, mul, div
//   "sum", "mean": input; "dims" (absent: every element), "keepdim"
//   "max": input; "dim" (absent: every element), "keepdim"; "argmax": input, "dim", "keepdim"
//   "dropout": input; p, training, seed
#include "convkit/ops/activation.h"
#include "convkit/ops/dropout.h"
#include "convkit/ops/elementwise.h"
#include "convkit/ops/reduce.h"
#include "torch_diff/torch_diff.h"

namespace torch_diff {

namespace {

Run unary(Case& c) {
    const Tensor x = c.input("input");
    const std::string& f = c.text("function");
    if (f == "neg") return {convkit::neg(x), {}};
    if (f == "exp") return {convkit::exp(x), {}};
    if (f == "log") return {convkit::log(x), {}};
    if (f == "sqrt") return {convkit::sqrt(x), {}};
    if (f == "square") return {convkit::square(x), {}};
    if (f == "abs") return {convkit::abs(x), {}};
    if (f == "add_scalar") return {convkit::add_scalar(x, c.number("value")), {}};
    if (f == "mul_scalar") return {convkit::mul_scalar(x, c.number("value")), {}};
    if (f == "div_scalar") return {convkit::div_scalar(x, c.number("value")), {}};
    if (f == "pow_scalar") return {convkit::pow_scalar(x, c.number("exponent")), {}};
    if (f == "clamp") return {convkit::clamp(x, c.number("min"), c.number("max")), {}};
    if (f == "relu") return {convkit::relu(x), {}};
    if (f == "leaky_relu") return {convkit::leaky_relu(x, c.number("negative_slope")), {}};
    if (f == "sigmoid") return {convkit::sigmoid(x), {}};
    if (f == "tanh") return {convkit::tanh(x), {}};
    if (f == "gelu") {
        const std::string approximate = c.text("approximate");
        if (approximate != "none" && approximate != "tanh") throw CaseError("unknown approximate '" + approximate + "'");
        return {convkit::gelu(x, approximate == "tanh" ? convkit::GeluApproximation::Tanh
                                                       : convkit::GeluApproximation::None),
                {}};
    }
    throw CaseError("unknown unary function '" + f + "'");
}

Run binary(Case& c) {
    const Tensor a = c.input("a");
    const Tensor b = c.input("b");
    const std::string& f = c.text("function");
    if (f == "add") return {convkit::add(a, b), {}};
    if (f == "sub") return {convkit::sub(a, b), {}};
    if (f == "mul") return {convkit::mul(a, b), {}};
    if (f == "div") return {convkit::div(a, b), {}};
    throw CaseError("unknown binary function '" + f + "'");
}

std::vector<int> int_dims(const Case& c, const std::string& key) {
    std::vector<int> dims;
    for (std::int64_t d : c.integers(key)) dims.push_back(static_cast<int>(d));
    return dims;
}

template <Tensor (*All)(const Tensor&), Tensor (*Over)(const Tensor&, const std::vector<int>&, bool)>
Run reduction(Case& c) {
    const Tensor x = c.input("input");
    if (!c.has("dims")) return {All(x), {}};
    // "dims": "" is not expressible as integers; "all" asks for the empty list (every dim).
    const std::vector<int> dims = c.text("dims") == "all" ? std::vector<int>{} : int_dims(c, "dims");
    return {Over(x, dims, c.flag("keepdim", false)), {}};
}

Run max(Case& c) {
    const Tensor x = c.input("input");
    if (!c.has("dim")) return {convkit::max(x), {}};
    return {convkit::max(x, static_cast<int>(c.integer("dim")), c.flag("keepdim", false)), {}};
}

Run argmax(Case& c) {
    return {convkit::argmax(c.input("input"), static_cast<int>(c.integer("dim")), c.flag("keepdim", false)), {}};
}

Run dropout(Case& c) {
    return {convkit::dropout(c.input("input"), c.number("p"), c.flag("training", true),
                             static_cast<std::uint64_t>(c.integer("seed"))),
            {}};
}

Tensor sum_all(const Tensor& t) { return convkit::sum(t); }
Tensor mean_all(const Tensor& t) { return convkit::mean(t); }
Tensor sum_over(const Tensor& t, const std::vector<int>& dims, bool keepdim) { return convkit::sum(t, dims, keepdim); }
Tensor mean_over(const Tensor& t, const std::vector<int>& dims, bool keepdim) {
    return convkit::mean(t, dims, keepdim);
}

}  // namespace

void register_elementwise_ops(OpTable& table) {
    table["unary"] = unary;
    table["binary"] = binary;
    table["sum"] = reduction<sum_all, sum_over>;
    table["mean"] = reduction<mean_all, mean_over>;
    table["max"] = max;
    table["argmax"] = argmax;
    table["dropout"] = dropout;
}

}  // namespace torch_diff
