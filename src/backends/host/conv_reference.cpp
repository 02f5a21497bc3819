#include "backends/host/conv_reference.h"

#include <vector>

#include "backend_api/layout_math.h"

namespace convkit::host {

namespace {
using detail::ConvGeometry;
using detail::Layout;

// Offset of element (n, c, d, h, w) of a [*, C, D, H, W] tensor in `layout`: the reference reads
// and writes channels-last tensors in place, through the same definition.
struct Layout5 {
    std::int64_t channels;
    SpatialDims size;
    Layout layout = Layout::Contiguous;

    std::int64_t spatial(std::int64_t d, std::int64_t h, std::int64_t w) const {
        return (d * size[1] + h) * size[2] + w;
    }
    detail::ChannelsGeometry geometry() const { return {0, channels, size[0] * size[1] * size[2]}; }
    // Element (n, c) at flattened spatial position s.
    std::int64_t at(std::int64_t n, std::int64_t c, std::int64_t s) const {
        return layout == Layout::Contiguous ? geometry().contiguous_offset(n, c, s)
                                            : geometry().channels_last_offset(n, c, s);
    }
    std::int64_t operator()(std::int64_t n, std::int64_t c, std::int64_t d, std::int64_t h, std::int64_t w) const {
        return at(n, c, spatial(d, h, w));
    }
    // The channel of the element at offset i.
    std::int64_t channel_of(std::int64_t i) const {
        return layout == Layout::Contiguous ? i / geometry().spatial % channels : i % channels;
    }
};

// Calls f(od, oh, ow, kd, kh, kw, id, ih, iw) for every output position and kernel tap that
// reads an input element (taps that fall on zero padding are skipped).
template <typename F>
void for_each_tap(const ConvGeometry& g, F&& f) {
    for (std::int64_t od = 0; od < g.output[0]; ++od)
        for (std::int64_t oh = 0; oh < g.output[1]; ++oh)
            for (std::int64_t ow = 0; ow < g.output[2]; ++ow)
                for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd) {
                    const std::int64_t id = detail::conv_tap_source(g, 0, od, kd);
                    if (id < 0) continue;
                    for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh) {
                        const std::int64_t ih = detail::conv_tap_source(g, 1, oh, kh);
                        if (ih < 0) continue;
                        for (std::int64_t kw = 0; kw < g.kernel[2]; ++kw) {
                            const std::int64_t iw = detail::conv_tap_source(g, 2, ow, kw);
                            if (iw < 0) continue;
                            f(od, oh, ow, kd, kh, kw, id, ih, iw);
                        }
                    }
                }
}
}  // namespace

template <typename T>
void conv_forward_reference(const ConvGeometry& g, Layout layout, const T* input, const T* weight, const T* bias,
                            T* output) {
    const Layout5 x{g.in_channels, g.input, layout};
    const Layout5 y{g.out_channels, g.output, layout};
    const Layout5 w{g.in_channels_per_group(), g.kernel};
    std::vector<double> acc(static_cast<std::size_t>(g.output_spatial()));
    for (std::int64_t n = 0; n < g.batch; ++n) {
        for (std::int64_t co = 0; co < g.out_channels; ++co) {
            const std::int64_t first_ci = co / g.out_channels_per_group() * g.in_channels_per_group();
            std::fill(acc.begin(), acc.end(), bias != nullptr ? static_cast<double>(bias[co]) : 0.0);
            for (std::int64_t ci = 0; ci < g.in_channels_per_group(); ++ci) {
                for_each_tap(g, [&](auto od, auto oh, auto ow, auto kd, auto kh, auto kw, auto id, auto ih, auto iw) {
                    acc[static_cast<std::size_t>(y.spatial(od, oh, ow))] +=
                        static_cast<double>(input[x(n, first_ci + ci, id, ih, iw)]) *
                        static_cast<double>(weight[w(co, ci, kd, kh, kw)]);
                });
            }
            for (std::int64_t o = 0; o < g.output_spatial(); ++o)
                output[y.at(n, co, o)] = static_cast<T>(acc[static_cast<std::size_t>(o)]);
        }
    }
}

template <typename T>
void conv_backward_data_reference(const ConvGeometry& g, Layout layout, const T* grad_output, const T* weight,
                                  const T* bias, T* grad_input) {
    const Layout5 x{g.in_channels, g.input, layout};
    const Layout5 y{g.out_channels, g.output, layout};
    const Layout5 w{g.in_channels_per_group(), g.kernel};
    std::vector<double> acc(static_cast<std::size_t>(g.batch * g.in_channels * g.input_spatial()), 0.0);
    for (std::int64_t n = 0; n < g.batch; ++n) {
        for (std::int64_t co = 0; co < g.out_channels; ++co) {
            const std::int64_t first_ci = co / g.out_channels_per_group() * g.in_channels_per_group();
            for (std::int64_t ci = 0; ci < g.in_channels_per_group(); ++ci) {
                for_each_tap(g, [&](auto od, auto oh, auto ow, auto kd, auto kh, auto kw, auto id, auto ih, auto iw) {
                    acc[static_cast<std::size_t>(x(n, first_ci + ci, id, ih, iw))] +=
                        static_cast<double>(grad_output[y(n, co, od, oh, ow)]) *
                        static_cast<double>(weight[w(co, ci, kd, kh, kw)]);
                });
            }
        }
    }
    for (std::size_t i = 0; i < acc.size(); ++i) {
        const auto channel = static_cast<std::size_t>(x.channel_of(static_cast<std::int64_t>(i)));
        grad_input[i] = static_cast<T>(acc[i] + (bias != nullptr ? static_cast<double>(bias[channel]) : 0.0));
    }
}

template <typename T>
void conv_backward_filter_reference(const ConvGeometry& g, Layout layout, const T* grad_output, const T* input,
                                    T* grad_weight) {
    const Layout5 x{g.in_channels, g.input, layout};
    const Layout5 y{g.out_channels, g.output, layout};
    const Layout5 w{g.in_channels_per_group(), g.kernel};
    std::vector<double> acc(static_cast<std::size_t>(g.kernel_spatial()));
    for (std::int64_t co = 0; co < g.out_channels; ++co) {
        const std::int64_t first_ci = co / g.out_channels_per_group() * g.in_channels_per_group();
        for (std::int64_t ci = 0; ci < g.in_channels_per_group(); ++ci) {
            std::fill(acc.begin(), acc.end(), 0.0);
            for (std::int64_t n = 0; n < g.batch; ++n) {
                for_each_tap(g, [&](auto od, auto oh, auto ow, auto kd, auto kh, auto kw, auto id, auto ih, auto iw) {
                    acc[static_cast<std::size_t>(w(0, 0, kd, kh, kw))] +=
                        static_cast<double>(grad_output[y(n, co, od, oh, ow)]) *
                        static_cast<double>(input[x(n, first_ci + ci, id, ih, iw)]);
                });
            }
            for (std::int64_t k = 0; k < g.kernel_spatial(); ++k)
                grad_weight[w(co, ci, 0, 0, 0) + k] = static_cast<T>(acc[static_cast<std::size_t>(k)]);
        }
    }
}

template <typename T>
void conv_backward_bias_reference(std::int64_t batch, std::int64_t channels, std::int64_t spatial, Layout layout,
                                  const T* grad_output, T* grad_bias) {
    const detail::ChannelsGeometry dy{batch, channels, spatial};
    for (std::int64_t c = 0; c < channels; ++c) {
        double acc = 0.0;
        for (std::int64_t n = 0; n < batch; ++n)
            for (std::int64_t i = 0; i < spatial; ++i) {
                const std::int64_t at =
                    layout == Layout::Contiguous ? dy.contiguous_offset(n, c, i) : dy.channels_last_offset(n, c, i);
                acc += static_cast<double>(grad_output[at]);
            }
        grad_bias[c] = static_cast<T>(acc);
    }
}

#define CONVKIT_INSTANTIATE_CONV_REFERENCE(T)                                                                    \
    template void conv_forward_reference<T>(const ConvGeometry&, Layout, const T*, const T*, const T*, T*);    \
    template void conv_backward_data_reference<T>(const ConvGeometry&, Layout, const T*, const T*, const T*, T*); \
    template void conv_backward_filter_reference<T>(const ConvGeometry&, Layout, const T*, const T*, T*);      \
    template void conv_backward_bias_reference<T>(std::int64_t, std::int64_t, std::int64_t, Layout, const T*, T*);
CONVKIT_INSTANTIATE_CONV_REFERENCE(float)
CONVKIT_INSTANTIATE_CONV_REFERENCE(double)

}  // namespace convkit::host
