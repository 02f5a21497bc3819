// Max pooling of the host-blas backend: the reference's arithmetic (the same window scan,
// detail::max_pool_window_argmax, so the same element wins ties and NaNs), run by OpenMP over
// (image, channel) planes, with a loop of its own for the common 2x2 window of stride 2 without
// padding. A max is a selection, not a sum, and each plane's gradient is summed in the
// reference's order, so the results are bit for bit the reference's (tests/test_pool_parallel.cpp).
// Average and adaptive pooling run the reference: the training paths of the samples do not use them.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backends/host/thread_pool.h"
#include "backend_api/variant.h"
#include "backend_api/dtype_dispatch.h"

namespace convkit::host {

namespace {
using detail::PoolGeometry;

// A 2-D (or 1-deep 3-D) window of 2x2, stride 2, no padding, no dilation, every window inside
// the input (no ceil-mode overhang): the pooling of nearly every CNN, worth a loop of its own.
bool is_plain_2x2(const PoolGeometry& g) {
    return g.kernel[0] == 1 && g.stride[0] == 1 && g.padding[0] == 0 && g.kernel[1] == 2 && g.kernel[2] == 2 &&
           g.stride[1] == 2 && g.stride[2] == 2 && g.padding[1] == 0 && g.padding[2] == 0 && g.dilation[1] == 1 &&
           g.dilation[2] == 1 && 2 * g.output[1] <= g.input[1] && 2 * g.output[2] <= g.input[2] &&
           g.output[0] == g.input[0];
}

// The maxima of the 2x2 windows of one output line, by the reference's scan (the first maximum;
// a NaN wins, the last one if several), written as selects so the loop vectorises. `top` is the
// line's first input row, `row` the input's width.
template <typename T>
void max_2x2_line(const T* top, std::int64_t row, std::int64_t outputs, T* y) {
#pragma omp simd
    for (std::int64_t ow = 0; ow < outputs; ++ow) {
        const T* at = top + 2 * ow;
        T best = at[0];
        best = (at[1] > best) | (at[1] != at[1]) ? at[1] : best;
        best = (at[row] > best) | (at[row] != at[row]) ? at[row] : best;
        best = (at[row + 1] > best) | (at[row + 1] != at[row + 1]) ? at[row + 1] : best;
        y[ow] = best;
    }
}

// The gradient of the 2x2 windows of one output line: each window's four elements written, the
// winner of the reference's scan getting dy and the others 0. The winner is found from the
// window's maximum without a data-dependent branch (random data mispredicts half of them): the
// last NaN if there is one, else the first element equal to the maximum.
template <typename T>
void max_2x2_line_backward(const T* top, std::int64_t row, std::int64_t outputs, const T* dy, T* dx_top) {
#pragma omp simd
    for (std::int64_t ow = 0; ow < outputs; ++ow) {
        const T* at = top + 2 * ow;
        const T a0 = at[0], a1 = at[1], a2 = at[row], a3 = at[row + 1];
        T best = a0;
        best = (a1 > best) | (a1 != a1) ? a1 : best;
        best = (a2 > best) | (a2 != a2) ? a2 : best;
        best = (a3 > best) | (a3 != a3) ? a3 : best;
        const bool n0 = a0 != a0, n1 = a1 != a1, n2 = a2 != a2, n3 = a3 != a3;
        const bool e0 = a0 == best, e1 = a1 == best, e2 = a2 == best, e3 = a3 == best;
        const bool any_nan = n0 | n1 | n2 | n3;
        const bool w0 = any_nan ? n0 & !(n1 | n2 | n3) : e0;
        const bool w1 = any_nan ? n1 & !(n2 | n3) : e1 & !e0;
        const bool w2 = any_nan ? n2 & !n3 : e2 & !(e0 | e1);
        const bool w3 = any_nan ? n3 : e3 & !(e0 | e1 | e2);
        const T g = dy[ow];
        T* out = dx_top + 2 * ow;
        out[0] = w0 ? g : T(0);
        out[1] = w1 ? g : T(0);
        out[row] = w2 ? g : T(0);
        out[row + 1] = w3 ? g : T(0);
    }
}

// Calls line(input offset of the line's top row, output offset of the line) for each output
// line of one plane of the 2x2 case, in the reference's order.
template <typename Line>
void for_each_2x2_line(const PoolGeometry& g, std::int64_t plane, Line&& line) {
    for (std::int64_t d = 0; d < g.output[0]; ++d) {
        const std::int64_t in_base = (plane * g.input[0] + d) * g.input[1] * g.input[2];
        const std::int64_t out_base = (plane * g.output[0] + d) * g.output[1] * g.output[2];
        for (std::int64_t oh = 0; oh < g.output[1]; ++oh) line(in_base + 2 * oh * g.input[2], out_base + oh * g.output[2]);
    }
}

template <typename F>
void for_each_output_of_plane(const PoolGeometry& g, std::int64_t plane, F&& f) {
    for (std::int64_t od = 0; od < g.output[0]; ++od)
        for (std::int64_t oh = 0; oh < g.output[1]; ++oh)
            for (std::int64_t ow = 0; ow < g.output[2]; ++ow) {
                const std::int64_t out_index = ((plane * g.output[0] + od) * g.output[1] + oh) * g.output[2] + ow;
                f(std::array<std::int64_t, 3>{od, oh, ow}, out_index);
            }
}

// Whether no two windows share an input element along any dim: then each input element gets at
// most one gradient and can be written instead of summed.
bool windows_disjoint(const PoolGeometry& g) {
    for (int s = 0; s < 3; ++s)
        if (g.output[s] > 1 && g.stride[s] < (g.kernel[s] - 1) * g.dilation[s] + 1) return false;
    return true;
}
}  // namespace

template <typename T>
void max_pool_forward_parallel(const PoolGeometry& g, const T* input, T* output) {
    const bool plain = is_plain_2x2(g);
    parallel_for(g.planes(), [&](std::int64_t plane, int) {
        if (plain) {
            for_each_2x2_line(g, plane, [&](std::int64_t in, std::int64_t out) {
                max_2x2_line(input + in, g.input[2], g.output[2], output + out);
            });
            return;
        }
        for_each_output_of_plane(g, plane, [&](const std::array<std::int64_t, 3>& o, std::int64_t out) {
            const std::int64_t best = detail::max_pool_window_argmax(g, input, plane, o);
            output[out] = best >= 0 ? input[best] : -std::numeric_limits<T>::infinity();
        });
    });
}

template <typename T>
void max_pool_backward_parallel(const PoolGeometry& g, const T* grad_output, const T* input, T* grad_input) {
    const bool plain = is_plain_2x2(g);
    const bool disjoint = windows_disjoint(g);
    // Overlapping windows sum in double per plane, in the reference's order; the scratch is
    // allocated before the parallel region so running out is OutOfMemory, not a throw inside it.
    const int threads = host_threads();
    std::vector<double> scratch(disjoint ? 0 : static_cast<std::size_t>(threads * g.input_spatial()));
    parallel_for(g.planes(), threads, [&](std::int64_t plane, int thread) {
        T* dx = grad_input + plane * g.input_spatial();
        if (disjoint) {
            // A single term: double(dy) rounded back to T is dy itself, as in the reference.
            if (plain) {
                // Every element of a window is written (the winner dy, the others 0), so only the
                // rows and columns no window covers (odd sizes) need the fill.
                if (2 * g.output[1] != g.input[1] || 2 * g.output[2] != g.input[2]) {
                    std::fill_n(dx, g.input_spatial(), T(0));
                }
                for_each_2x2_line(g, plane, [&](std::int64_t in, std::int64_t out) {
                    max_2x2_line_backward(input + in, g.input[2], g.output[2], grad_output + out, grad_input + in);
                });
                return;
            }
            std::fill_n(dx, g.input_spatial(), T(0));
            for_each_output_of_plane(g, plane, [&](const std::array<std::int64_t, 3>& o, std::int64_t out) {
                const std::int64_t best = detail::max_pool_window_argmax(g, input, plane, o);
                if (best >= 0) grad_input[best] = grad_output[out];
            });
            return;
        }
        double* acc = scratch.data() + static_cast<std::int64_t>(thread) * g.input_spatial();
        std::fill_n(acc, g.input_spatial(), 0.0);
        const std::int64_t base = plane * g.input_spatial();
        for_each_output_of_plane(g, plane, [&](const std::array<std::int64_t, 3>& o, std::int64_t out) {
            const std::int64_t best = detail::max_pool_window_argmax(g, input, plane, o);
            if (best >= 0) acc[best - base] += static_cast<double>(grad_output[out]);
        });
        for (std::int64_t i = 0; i < g.input_spatial(); ++i) dx[i] = static_cast<T>(acc[i]);
    });
}

template void max_pool_forward_parallel<float>(const PoolGeometry&, const float*, float*);
template void max_pool_forward_parallel<double>(const PoolGeometry&, const double*, double*);
template void max_pool_backward_parallel<float>(const PoolGeometry&, const float*, const float*, float*);
template void max_pool_backward_parallel<double>(const PoolGeometry&, const double*, const double*, double*);

}  // namespace convkit::host

namespace convkit::detail {

namespace {
// `host.blas` pooling: max pooling in parallel over planes; average pooling has no faster
// host path and runs the reference variant.
class HostBlasPool final : public PoolVariant {
public:
    const char* name() const override { return "host.blas"; }
    DeviceType device_type() const override { return DeviceType::Host; }
    std::string unsupported_reason(const PoolProblem& p, PoolPass pass) const override {
        // The parallel max pooling indexes contiguous planes; the rest is the reference's.
        if (p.op == PoolOp::Max && !p.all_contiguous()) return "runs max pooling in contiguous layouts only";
        return reference().unsupported_reason(p, pass);
    }
    void run(const PoolProblem& p, PoolPass pass, const PoolOperands& o, WorkspaceView workspace,
             Stream stream) const override {
        if (p.op != PoolOp::Max) {
            reference().run(p, pass, o, workspace, stream);
            return;
        }
        dispatch_dtype(p.dtype(), [&](auto tag) {
            using T = decltype(tag);
            const auto in = [](const void* q) { return static_cast<const T*>(q); };
            if (pass == PoolPass::Forward) {
                host::max_pool_forward_parallel<T>(p.geometry, in(o.x), static_cast<T*>(o.out));
            } else {
                host::max_pool_backward_parallel<T>(p.geometry, in(o.dy), in(o.x), static_cast<T*>(o.out));
            }
        });
    }

private:
    // Looked up on first use, once every file has registered (their order is unspecified).
    static const PoolVariant& reference() {
        static const PoolVariant& variant = *find_pool_variant("host.reference");
        return variant;
    }
};
}  // namespace

CONVKIT_REGISTER_POOL_VARIANT(HostBlasPool);

}  // namespace convkit::detail
