#pragma once
// Runs the passes of one registered variant directly (no op layer, no selection) on given
// float64 inputs converted to a dtype and device, into NaN-filled outputs brought back to the
// host: how the variant tests compare any variant with the host reference.
#include <random>
#include <stdexcept>
#include <utility>
#include <string>

#include "backend_api/variant.h"
#include "test_util.h"

namespace convkit::testing {

// The inputs of the four convolution passes in the geometry's terms (float64, host).
struct ConvPassInputs {
    Tensor x, w, dy, bias_out, bias_in;
};
// forward y = conv(x, w) + bias_out; backward data dx = conv^T(dy, w) + bias_in (a transposed
// convolution's bias); backward filter dw; bias gradient db. Undefined for a pass the variant
// does not implement.
struct ConvPassResults {
    Tensor y, dx, dw, db;
};

// Each result of `got` that is defined (a pass that ran) within `tolerance` of `expected`'s, by
// relative error; the failure names the pass.
inline void expect_conv_passes_close(const ConvPassResults& got, const ConvPassResults& expected, double tolerance) {
    const std::pair<const Tensor*, const Tensor*> results[] = {
        {&got.y, &expected.y}, {&got.dx, &expected.dx}, {&got.dw, &expected.dw}, {&got.db, &expected.db}};
    const char* names[] = {"forward", "backward data", "backward filter", "backward bias"};
    for (std::size_t i = 0; i < 4; ++i) {
        if (results[i].first->defined()) {
            EXPECT_LT(relative_error(*results[i].first, *results[i].second), tolerance) << names[i];
        }
    }
}

inline const detail::ConvVariant& conv_variant_named(const std::string& name) {
    const detail::ConvVariant* v = detail::find_conv_variant(name);
    if (v == nullptr) throw std::runtime_error("no conv variant " + name);
    return *v;
}

// Random inputs of every pass of `g` (random_exact_in `dtype`).
inline ConvPassInputs random_pass_inputs(const detail::ConvGeometry& g, DType dtype, std::mt19937_64& rng) {
    return {random_exact_in(dtype, g.input_shape(), rng), random_exact_in(dtype, g.weight_shape(), rng),
            random_exact_in(dtype, g.output_shape(), rng), random_exact_in(dtype, Shape{g.out_channels}, rng),
            random_exact_in(dtype, Shape{g.in_channels}, rng)};
}

inline Stream stream_for(Device device) { return device.is_host() ? Stream{} : current_stream(device.index); }

// The activations (x, dy and the results y, dx) in `layout`; the weight and bias contiguous.
// The results come back contiguous. With `only_supported`, a pass the variant implements but
// refuses for this problem is left out like one it does not implement (the caller records the
// refusal); otherwise running it throws, as a refused pass must.
inline ConvPassResults run_conv_passes(const detail::ConvVariant& variant, const detail::ConvGeometry& g,
                                       const ConvPassInputs& in, DType dtype, Device device = Device::host(),
                                       detail::Layout layout = detail::Layout::Contiguous,
                                       bool only_supported = false) {
    const auto on = [&](const Tensor& t) { return t.to(dtype).to(device); };
    const auto activation = [&](const Tensor& t) { return on(t).to(layout); };
    const Tensor x = activation(in.x), w = on(in.w), dy = activation(in.dy), bias_out = on(in.bias_out),
                 bias_in = on(in.bias_in);
    ConvPassResults r{nan_tensor(g.output_shape(), dtype, device).to(layout),
                      nan_tensor(g.input_shape(), dtype, device).to(layout),
                      nan_tensor(g.weight_shape(), dtype, device), nan_tensor(Shape{g.out_channels}, dtype, device)};
    detail::ConvProblem problem = detail::conv_problem(g, dtype, device);
    problem.x_layout = problem.y_layout = layout;
    problem.bias_grad = {g.batch, g.out_channels, g.output_spatial()};
    const Stream stream = stream_for(device);
    const auto runs = [&](ConvPass pass) {
        return variant.implements(pass) && (!only_supported || variant.supports(problem, pass));
    };
    const auto run = [&](ConvPass pass, const detail::ConvOperands& operands) {
        if (!runs(pass)) return;
        // The workspace the variant asks for, poisoned (NaN bytes) so that a variant reading
        // scratch it did not write fails.
        const std::size_t bytes = variant.workspace(problem, pass);
        const Tensor scratch = nan_tensor(Shape{static_cast<std::int64_t>((bytes + 7) / 8)}, DType::Float64, device);
        variant.run(problem, pass, operands, {bytes == 0 ? nullptr : scratch.raw_data(), bytes}, stream);
    };
    const auto buffer = [](const Tensor& t) { return t.raw_physical_data(); };
    run(ConvPass::Forward, {.x = buffer(x), .w = w.raw_data(), .bias = bias_out.raw_data(), .out = buffer(r.y)});
    run(ConvPass::BackwardData,
        {.w = w.raw_data(), .dy = buffer(dy), .bias = bias_in.raw_data(), .out = buffer(r.dx)});
    run(ConvPass::BackwardFilter, {.x = buffer(x), .dy = buffer(dy), .out = r.dw.raw_data()});
    run(ConvPass::BackwardBias, {.dy = buffer(dy), .out = r.db.raw_data()});
    // A pass the variant does not run gives an undefined result.
    const auto back = [&](const Tensor& t, ConvPass pass) {
        return runs(pass) ? t.to(Device::host()).contiguous() : Tensor();
    };
    return {back(r.y, ConvPass::Forward), back(r.dx, ConvPass::BackwardData), back(r.dw, ConvPass::BackwardFilter),
            back(r.db, ConvPass::BackwardBias)};
}

// The host reference's passes on the inputs' absolute values, in float64: for each element of
// each pass the sum of the magnitudes of the terms behind it, which summation_error judges it
// against.
inline ConvPassResults conv_pass_magnitudes(const detail::ConvGeometry& g, const ConvPassInputs& in) {
    return run_conv_passes(conv_variant_named("host.reference"), g,
                           {abs(in.x), abs(in.w), abs(in.dy), abs(in.bias_out), abs(in.bias_in)}, DType::Float64);
}

// Each result of `got` that is defined within `tolerance` of `expected`'s, per element against
// the sum of its terms' magnitudes (summation_error, `magnitudes` from conv_pass_magnitudes):
// for problems where a pass has so few elements (a bias gradient of one or two channels) that
// random terms cancelling in all of them, which relative_error cannot judge, come by chance.
inline void expect_conv_passes_close(const ConvPassResults& got, const ConvPassResults& expected,
                                     const ConvPassResults& magnitudes, double tolerance) {
    const Tensor* results[][3] = {{&got.y, &expected.y, &magnitudes.y},
                                  {&got.dx, &expected.dx, &magnitudes.dx},
                                  {&got.dw, &expected.dw, &magnitudes.dw},
                                  {&got.db, &expected.db, &magnitudes.db}};
    const char* names[] = {"forward", "backward data", "backward filter", "backward bias"};
    for (std::size_t i = 0; i < 4; ++i) {
        if (results[i][0]->defined()) {
            EXPECT_LT(summation_error(*results[i][0], *results[i][1], *results[i][2]), tolerance) << names[i];
        }
    }
}

}  // namespace convkit::testing
