#pragma once
// Batch normalization's layout and per-element arithmetic, one definition for the host backend
// and the CUDA kernels (constexpr, so kernels call it too). Each backend writes only how it
// spreads the work: the host loops in double; the kernels reduce per channel in double and do
// the per-element arithmetic in the element type C.
//
// Per-channel statistics are always double (even for float32 data): a float32 mean of an input
// with a large mean (1e4 +- 1) is off by up to 5e-4, which would shift every x - mean by that
// much; the subtraction is done in double and rounded once, so only the spread is rounded.
#include <cstdint>

namespace convkit::detail {

// x viewed as [batch, channels, spatial]: [N, C] has spatial 1, [N, C, D, H, W] has D * H * W.
// channels_last: the buffer holds [batch, spatial, channels] (MemoryFormat::ChannelsLast), so a
// channel's values are `channels` apart; otherwise runs of `spatial` values, one per image.
struct BatchNormGeometry {
    std::int64_t batch = 0;
    std::int64_t channels = 0;
    std::int64_t spatial = 1;
    bool channels_last = false;
    constexpr std::int64_t count() const { return batch * channels * spatial; }
    // The values each channel's statistics are taken over.
    constexpr std::int64_t per_channel() const { return batch * spatial; }
    // How many consecutive elements of the buffer belong to one channel.
    constexpr std::int64_t channel_run() const { return channels_last ? 1 : spatial; }
};

// Where a training step's running statistics come from and go: read from `mean`/`var`, the
// updated values written to `updated_mean`/`updated_var` (arrays [channels] of the data's dtype;
// the op copies them back into the running tensors, which bumps their versions). All null when
// the running statistics are not updated.
struct RunningStatistics {
    const void* mean = nullptr;
    const void* var = nullptr;
    void* updated_mean = nullptr;
    void* updated_var = nullptr;
    double momentum = 0.1;
};

// A ReLU fused after the normalization (batch_norm_relu): the forward writes relu(y), and the
// backward passes take dy as relu's gradient does, from y recomputed out of x (the affine
// parameters, arrays [channels] of the data's dtype, null for weight 1 and bias 0) rather than
// read back. Disabled: plain batch norm.
struct FusedRelu {
    bool enabled = false;
    const void* weight = nullptr;
    const void* bias = nullptr;
};

// The offset of value t (in [0, per_channel())) of channel c.
constexpr std::int64_t batch_norm_offset(const BatchNormGeometry& g, std::int64_t c, std::int64_t t) {
    if (g.channels_last) return t * g.channels + c;
    return ((t / g.spatial) * g.channels + c) * g.spatial + t % g.spatial;
}

// The channel of the element at buffer offset `index`.
constexpr std::int64_t batch_norm_channel(const BatchNormGeometry& g, std::int64_t index) {
    return (index / g.channel_run()) % g.channels;
}

// x_hat = (x - mean) * invstd, with the subtraction in double (see above).
template <typename C>
constexpr C batch_norm_normalized(C x, double mean, C invstd) {
    return static_cast<C>(static_cast<double>(x) - mean) * invstd;
}

// y = x_hat * weight + bias (weight 1 and bias 0 when the op has no affine parameters).
template <typename C>
constexpr C batch_norm_output(C x_hat, C weight, C bias) {
    return x_hat * weight + bias;
}

// dL/dx. With batch statistics, mean and variance depend on x as well:
//   dx = w * invstd * (dy - mean(dy) - x_hat * mean(dy * x_hat))   (means over the channel);
// with running statistics (eval) the op is the affine map x -> w * invstd * (x - mean) + b.
template <typename C>
constexpr C batch_norm_input_gradient(C dy, C x_hat, C weight_invstd, C mean_dy, C mean_dy_x_hat,
                                      bool batch_statistics) {
    return batch_statistics ? weight_invstd * (dy - mean_dy - x_hat * mean_dy_x_hat) : weight_invstd * dy;
}

// running = (1 - momentum) * running + momentum * batch, as PyTorch (an exponential average).
constexpr double running_average(double running, double batch, double momentum) {
    return (1 - momentum) * running + momentum * batch;
}

// The running variance averages the unbiased batch variance (divisor count - 1), while the
// normalization uses the biased one (divisor count), as PyTorch. count > 1 (checked by the op).
constexpr double unbiased_variance(double biased, std::int64_t count) {
    return biased * static_cast<double>(count) / static_cast<double>(count - 1);
}

}  // namespace convkit::detail
