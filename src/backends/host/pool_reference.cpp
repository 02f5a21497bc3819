#include "backends/host/pool_reference.h"

#include <cmath>
#include <limits>
#include <vector>

namespace convkit::host {

namespace {
using detail::Layout;
using detail::PlaneOffsets;
using detail::PoolGeometry;
using detail::WindowSpan;

// Calls f(plane, output position, output offset) for every output element, in the logical
// order; the offsets are in `layout`, so channels-last tensors are read and written in place.
template <typename F>
void for_each_output(const PoolGeometry& g, Layout layout, F&& f) {
    const PlaneOffsets out{g.output, g.channels, layout};
    for (std::int64_t plane = 0; plane < g.planes(); ++plane)
        for (std::int64_t od = 0; od < g.output[0]; ++od)
            for (std::int64_t oh = 0; oh < g.output[1]; ++oh)
                for (std::int64_t ow = 0; ow < g.output[2]; ++ow)
                    f(plane, std::array<std::int64_t, 3>{od, oh, ow}, out(plane, od, oh, ow));
}

// Calls f(input offset) for every element of the box spans[0] x spans[1] x spans[2].
template <typename F>
void for_each_in_box(const PoolGeometry& g, Layout layout, std::int64_t plane, const std::array<WindowSpan, 3>& spans,
                     F&& f) {
    const PlaneOffsets in{g.input, g.channels, layout};
    for (std::int64_t d = spans[0].begin; d < spans[0].end; ++d)
        for (std::int64_t h = spans[1].begin; h < spans[1].end; ++h)
            for (std::int64_t w = spans[2].begin; w < spans[2].end; ++w) f(in(plane, d, h, w));
}

template <typename SpanOf>
std::array<WindowSpan, 3> spans_of(const PoolGeometry& g, const std::array<std::int64_t, 3>& o, SpanOf span_of) {
    return {span_of(g, 0, o[0]), span_of(g, 1, o[1]), span_of(g, 2, o[2])};
}

double divisor_of(const std::array<WindowSpan, 3>& spans) {
    return static_cast<double>(spans[0].divisor_length * spans[1].divisor_length * spans[2].divisor_length);
}

template <typename T, typename SpanOf>
void mean_pool_forward(const PoolGeometry& g, Layout layout, const T* input, T* output, SpanOf span_of) {
    for_each_output(g, layout, [&](std::int64_t plane, const std::array<std::int64_t, 3>& o, std::int64_t out_index) {
        const auto spans = spans_of(g, o, span_of);
        double sum = 0.0;
        for_each_in_box(g, layout, plane, spans, [&](std::int64_t i) { sum += static_cast<double>(input[i]); });
        output[out_index] = static_cast<T>(sum / divisor_of(spans));
    });
}

template <typename T, typename SpanOf>
void mean_pool_backward(const PoolGeometry& g, Layout layout, const T* grad_output, T* grad_input, SpanOf span_of) {
    std::vector<double> acc(static_cast<std::size_t>(g.planes() * g.input_spatial()), 0.0);
    for_each_output(g, layout, [&](std::int64_t plane, const std::array<std::int64_t, 3>& o, std::int64_t out_index) {
        const auto spans = spans_of(g, o, span_of);
        const double share = static_cast<double>(grad_output[out_index]) / divisor_of(spans);
        for_each_in_box(g, layout, plane, spans, [&](std::int64_t i) { acc[static_cast<std::size_t>(i)] += share; });
    });
    for (std::size_t i = 0; i < acc.size(); ++i) grad_input[i] = static_cast<T>(acc[i]);
}
}  // namespace

template <typename T>
void max_pool_forward_reference(const PoolGeometry& g, Layout layout, const T* input, T* output) {
    for_each_output(g, layout, [&](std::int64_t plane, const std::array<std::int64_t, 3>& o, std::int64_t out_index) {
        const std::int64_t best = detail::max_pool_window_argmax(g, input, plane, o, layout);
        output[out_index] = best >= 0 ? input[best] : -std::numeric_limits<T>::infinity();
    });
}

template <typename T>
void max_pool_backward_reference(const PoolGeometry& g, Layout layout, const T* grad_output, const T* input,
                                 T* grad_input) {
    std::vector<double> acc(static_cast<std::size_t>(g.planes() * g.input_spatial()), 0.0);
    for_each_output(g, layout, [&](std::int64_t plane, const std::array<std::int64_t, 3>& o, std::int64_t out_index) {
        const std::int64_t best = detail::max_pool_window_argmax(g, input, plane, o, layout);
        if (best >= 0) acc[static_cast<std::size_t>(best)] += static_cast<double>(grad_output[out_index]);
    });
    for (std::size_t i = 0; i < acc.size(); ++i) grad_input[i] = static_cast<T>(acc[i]);
}

template <typename T>
void avg_pool_forward_reference(const PoolGeometry& g, Layout layout, const T* input, T* output) {
    mean_pool_forward(g, layout, input, output, detail::average_pool_span);
}

template <typename T>
void avg_pool_backward_reference(const PoolGeometry& g, Layout layout, const T* grad_output, T* grad_input) {
    mean_pool_backward(g, layout, grad_output, grad_input, detail::average_pool_span);
}

template <typename T>
void adaptive_avg_pool_forward_reference(const PoolGeometry& g, Layout layout, const T* input, T* output) {
    mean_pool_forward(g, layout, input, output, detail::adaptive_pool_span);
}

template <typename T>
void adaptive_avg_pool_backward_reference(const PoolGeometry& g, Layout layout, const T* grad_output, T* grad_input) {
    mean_pool_backward(g, layout, grad_output, grad_input, detail::adaptive_pool_span);
}

#define CONVKIT_INSTANTIATE_POOL_REFERENCE(T)                                                             \
    template void max_pool_forward_reference<T>(const PoolGeometry&, Layout, const T*, T*);              \
    template void max_pool_backward_reference<T>(const PoolGeometry&, Layout, const T*, const T*, T*);   \
    template void avg_pool_forward_reference<T>(const PoolGeometry&, Layout, const T*, T*);              \
    template void avg_pool_backward_reference<T>(const PoolGeometry&, Layout, const T*, T*);             \
    template void adaptive_avg_pool_forward_reference<T>(const PoolGeometry&, Layout, const T*, T*);     \
    template void adaptive_avg_pool_backward_reference<T>(const PoolGeometry&, Layout, const T*, T*);
CONVKIT_INSTANTIATE_POOL_REFERENCE(float)
CONVKIT_INSTANTIATE_POOL_REFERENCE(double)

}  // namespace convkit::host
