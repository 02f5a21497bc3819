// Functional convolution, transposed convolution and pooling ops, as PyTorch's torch.nn.functional
// calls them: conv2d(input, weight, bias, stride, padding, dilation, groups) and so on.
#include "torch_diff/torch_diff.h"

namespace torch_diff {

namespace {
using convkit::ConvParams;
using convkit::PaddingMode;
using convkit::PoolParams;

void assign(convkit::SpatialDims& dims, const std::vector<std::int64_t>& values) {
    for (std::size_t i = 0; i < values.size(); ++i) dims[i] = values[i];
}

// The per-dim values of `key`, or `fallback` when the case does not set it.
std::vector<std::int64_t> dims_or(const Case& c, const std::string& key, std::vector<std::int64_t> fallback,
                                  int rank) {
    return per_dim(key, c.has(key) ? c.integers(key) : std::move(fallback), rank);
}

PaddingMode padding_mode_from(const std::string& name) {
    if (name == "zeros") return PaddingMode::Zeros;
    if (name == "reflect") return PaddingMode::Reflect;
    if (name == "replicate") return PaddingMode::Replicate;
    if (name == "circular") return PaddingMode::Circular;
    throw CaseError("unknown padding_mode '" + name + "'");
}
}  // namespace

ConvParams conv_params_from(const Case& c, const std::string& prefix, int rank) {
    ConvParams params(rank);
    auto dims = [&](const char* key, std::int64_t fallback) { return dims_or(c, prefix + key, {fallback}, rank); };
    assign(params.stride, dims("stride", 1));
    assign(params.dilation, dims("dilation", 1));
    assign(params.output_padding, dims("output_padding", 0));
    if (c.text_or(prefix + "padding", "0") == "same") {
        params.same_padding = true;
    } else {
        assign(params.padding, dims("padding", 0));
    }
    params.groups = c.integer_or(prefix + "groups", 1);
    params.padding_mode = padding_mode_from(c.text_or(prefix + "padding_mode", "zeros"));
    return params;
}

PoolParams pool_params_from(const Case& c, const std::string& prefix, int rank) {
    const auto kernel = per_dim(prefix + "kernel_size", c.integers(prefix + "kernel_size"), rank);
    PoolParams params(rank, kernel[0]);
    assign(params.kernel, kernel);
    // PyTorch: stride=None (or an empty list) means the kernel size.
    assign(params.stride, dims_or(c, prefix + "stride", kernel, rank));
    assign(params.padding, dims_or(c, prefix + "padding", {0}, rank));
    assign(params.dilation, dims_or(c, prefix + "dilation", {1}, rank));
    params.ceil_mode = c.flag(prefix + "ceil_mode", false);
    params.count_include_pad = c.flag(prefix + "count_include_pad", true);
    return params;
}

namespace {
Run conv(Case& c, int rank, bool transposed) {
    const ConvParams params = conv_params_from(c, "", rank);
    const Tensor input = c.input("input");
    const Tensor weight = c.input("weight");
    const Tensor bias = c.optional_input("bias");
    return {transposed ? convkit::conv_transpose_forward(input, weight, bias, params)
                       : convkit::conv_forward(input, weight, bias, params),
            {}};
}

Run max_pool(Case& c, int rank) {
    return {convkit::max_pool_forward(c.input("input"), pool_params_from(c, "", rank)), {}};
}

Run avg_pool(Case& c, int rank) {
    return {convkit::avg_pool_forward(c.input("input"), pool_params_from(c, "", rank)), {}};
}

Run adaptive_avg_pool(Case& c, int rank) {
    const auto size = per_dim("output_size", c.integers("output_size"), rank);
    return {convkit::adaptive_avg_pool_forward(c.input("input"), size), {}};
}
}  // namespace

void register_conv_pool_ops(OpTable& table) {
    for (int rank = 1; rank <= 3; ++rank) {
        const std::string d = std::to_string(rank) + "d";
        table["conv" + d] = [rank](Case& c) { return conv(c, rank, false); };
        table["conv_transpose" + d] = [rank](Case& c) { return conv(c, rank, true); };
        table["max_pool" + d] = [rank](Case& c) { return max_pool(c, rank); };
        table["avg_pool" + d] = [rank](Case& c) { return avg_pool(c, rank); };
        table["adaptive_avg_pool" + d] = [rank](Case& c) { return adaptive_avg_pool(c, rank); };
    }
}

}  // namespace torch_diff
