#include "backends/host/conv_reference.h"

#include <vector>

namespace convkit::host {

namespace {
using detail::ConvGeometry;

// Row-major offset into a contiguous [*, C, D, H, W] tensor.
struct Layout5 {
    std::int64_t channels;
    SpatialDims size;
    std::int64_t operator()(std::int64_t n, std::int64_t c, std::int64_t d, std::int64_t h, std::int64_t w) const {
        return (((n * channels + c) * size[0] + d) * size[1] + h) * size[2] + w;
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
void conv_forward_reference(const ConvGeometry& g, const T* input, const T* weight, const T* bias, T* output) {
    const Layout5 x{g.in_channels, g.input};
    const Layout5 y{g.out_channels, g.output};
    const Layout5 w{g.in_channels_per_group(), g.kernel};
    std::vector<double> acc(static_cast<std::size_t>(g.output_spatial()));
    for (std::int64_t n = 0; n < g.batch; ++n) {
        for (std::int64_t co = 0; co < g.out_channels; ++co) {
            const std::int64_t first_ci = co / g.out_channels_per_group() * g.in_channels_per_group();
            std::fill(acc.begin(), acc.end(), bias != nullptr ? static_cast<double>(bias[co]) : 0.0);
            for (std::int64_t ci = 0; ci < g.in_channels_per_group(); ++ci) {
                for_each_tap(g, [&](auto od, auto oh, auto ow, auto kd, auto kh, auto kw, auto id, auto ih, auto iw) {
                    acc[static_cast<std::size_t>(y(0, 0, od, oh, ow))] +=
                        static_cast<double>(input[x(n, first_ci + ci, id, ih, iw)]) *
                        static_cast<double>(weight[w(co, ci, kd, kh, kw)]);
                });
            }
            for (std::int64_t o = 0; o < g.output_spatial(); ++o)
                output[y(n, co, 0, 0, 0) + o] = static_cast<T>(acc[static_cast<std::size_t>(o)]);
        }
    }
}

template <typename T>
void conv_backward_data_reference(const ConvGeometry& g, const T* grad_output, const T* weight, const T* bias,
                                  T* grad_input) {
    const Layout5 x{g.in_channels, g.input};
    const Layout5 y{g.out_channels, g.output};
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
    const auto per_channel = static_cast<std::size_t>(g.input_spatial());
    for (std::size_t i = 0; i < acc.size(); ++i) {
        const std::size_t channel = i / per_channel % static_cast<std::size_t>(g.in_channels);
        grad_input[i] = static_cast<T>(acc[i] + (bias != nullptr ? static_cast<double>(bias[channel]) : 0.0));
    }
}

template <typename T>
void conv_backward_filter_reference(const ConvGeometry& g, const T* grad_output, const T* input, T* grad_weight) {
    const Layout5 x{g.in_channels, g.input};
    const Layout5 y{g.out_channels, g.output};
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
void conv_backward_bias_reference(std::int64_t batch, std::int64_t channels, std::int64_t spatial,
                                  const T* grad_output, T* grad_bias) {
    for (std::int64_t c = 0; c < channels; ++c) {
        double acc = 0.0;
        for (std::int64_t n = 0; n < batch; ++n)
            for (std::int64_t i = 0; i < spatial; ++i) acc += static_cast<double>(grad_output[(n * channels + c) * spatial + i]);
        grad_bias[c] = static_cast<T>(acc);
    }
}

#define CONVKIT_INSTANTIATE_CONV_REFERENCE(T)                                                                    \
    template void conv_forward_reference<T>(const ConvGeometry&, const T*, const T*, const T*, T*);            \
    template void conv_backward_data_reference<T>(const ConvGeometry&, const T*, const T*, const T*, T*);      \
    template void conv_backward_filter_reference<T>(const ConvGeometry&, const T*, const T*, T*);              \
    template void conv_backward_bias_reference<T>(std::int64_t, std::int64_t, std::int64_t, const T*, T*);
CONVKIT_INSTANTIATE_CONV_REFERENCE(float)
CONVKIT_INSTANTIATE_CONV_REFERENCE(double)

}  // namespace convkit::host
