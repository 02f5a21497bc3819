#pragma once
// Shared by the host and CUDA tests of the convolution epilogue (ConvEpilogue in
// convkit/ops/conv.h): one problem's inputs, and its forward and every gradient computed either
// by the fused op or by the composition relu(conv(x, w) + b + r) of separate ops.
#include <random>
#include <string>
#include <vector>

#include "backend_api/geometry.h"
#include "convkit/convkit.h"
#include "test_util.h"

namespace convkit::testing {

struct EpilogueCase {
    std::string name;
    bool transposed;
    ConvParams params;
    Shape x, w;

    // The output's shape (a transposed convolution's output is its adjoint's input).
    Shape y_shape() const {
        return transposed ? detail::conv_transpose_geometry("conv_transpose", x, w, params).input_shape()
                          : detail::conv_geometry("conv", x, w, params).output_shape();
    }
};

// Shapes the CUDA epilogue tests share: a 3x3 convolution of 16 channels and a strided
// transposed one (8 -> 16 channels: its forward is the adjoint's backward-data).
inline std::vector<EpilogueCase> cuda_epilogue_cases() {
    return {
        {"conv2d 3x3", false, ConvParams(2).set_padding(1), Shape{2, 16, 6, 5}, Shape{16, 16, 3, 3}},
        {"conv_transpose2d strided", true, ConvParams(2).set_stride(2).set_padding(1), Shape{1, 8, 3, 4},
         Shape{8, 16, 4, 4}},
    };
}

// float64 host tensors; b and r undefined when the case has none.
struct EpilogueInputs {
    Tensor x, w, b, r, dy;
};

// Each input's values exactly representable in `exact_in` (so every dtype starts from the same
// numbers).
inline EpilogueInputs random_epilogue_inputs(const EpilogueCase& c, bool bias, bool residual, DType exact_in,
                                             std::mt19937_64& rng) {
    const Shape y = c.y_shape();
    EpilogueInputs in;
    in.x = random_exact_in(exact_in, c.x, rng);
    in.w = random_exact_in(exact_in, c.w, rng);
    if (bias) in.b = random_exact_in(exact_in, Shape{y[1]}, rng);
    if (residual) in.r = random_exact_in(exact_in, y, rng);
    in.dy = random_exact_in(exact_in, y, rng);
    return in;
}

// float64 host, contiguous; a gradient is undefined where its input is.
struct EpilogueResults {
    Tensor y, dx, dw, db, dr;
};

// The forward in `dtype` on `device` with the activations (x, r, dy) in `format`, then the
// backward of <y, dy>. `fused`: one conv_forward with the epilogue; else the composition.
inline EpilogueResults run_epilogue(const EpilogueCase& c, const EpilogueInputs& in, bool relu_after, bool fused,
                                    DType dtype, Device device, MemoryFormat format) {
    const auto leaf = [&](const Tensor& t, bool activation) {
        if (!t.defined()) return Tensor();
        Tensor on = t.to(dtype).to(device);
        if (activation) on = on.to(format);
        on = on.detach();  // a new leaf: the caller's tensors stay untouched
        on.set_requires_grad();
        return on;
    };
    const Tensor x = leaf(in.x, true), w = leaf(in.w, false), b = leaf(in.b, false), r = leaf(in.r, true);
    Tensor y;
    if (fused) {
        const ConvEpilogue epilogue{r, relu_after};
        y = c.transposed ? conv_transpose_forward(x, w, b, c.params, epilogue)
                         : conv_forward(x, w, b, c.params, epilogue);
    } else {
        y = c.transposed ? conv_transpose_forward(x, w, b, c.params) : conv_forward(x, w, b, c.params);
        if (r.defined()) y = y + r;
        if (relu_after) y = relu(y);
    }
    EXPECT_EQ(y.memory_format(), format) << "the result keeps the input's format";
    y.backward(in.dy.to(dtype).to(device).to(format));
    const auto host = [](const Tensor& t) {
        return t.defined() ? t.to(Device::host()).contiguous().to(DType::Float64) : Tensor();
    };
    return {host(y), host(x.grad()), host(w.grad()), b.defined() ? host(b.grad()) : Tensor(),
            r.defined() ? host(r.grad()) : Tensor()};
}

// Every result `expected` has within `tolerance` of it by relative error, naming the result.
inline void expect_epilogue_results_close(const EpilogueResults& got, const EpilogueResults& expected,
                                          double tolerance) {
    const std::pair<const Tensor*, const Tensor*> results[] = {{&got.y, &expected.y},
                                                               {&got.dx, &expected.dx},
                                                               {&got.dw, &expected.dw},
                                                               {&got.db, &expected.db},
                                                               {&got.dr, &expected.dr}};
    const char* names[] = {"y", "dx", "dw", "db", "d residual"};
    for (std::size_t i = 0; i < 5; ++i) {
        if (!results[i].second->defined()) continue;
        ASSERT_TRUE(results[i].first->defined()) << names[i] << " missing";
        EXPECT_LT(relative_error(*results[i].first, *results[i].second), tolerance) << names[i];
    }
}

}  // namespace convkit::testing
