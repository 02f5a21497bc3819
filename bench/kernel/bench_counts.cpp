#include "bench_counts.h"

#include <algorithm>

#include "backend_api/geometry.h"

namespace convkit::bench {

namespace {
double elements(const Shape& shape) {
    return static_cast<double>(shape.numel());
}

// How many tensors of the input's size a layer row's pass reads and writes (bench_counts.h).
double layer_tensor_passes(BenchOp op, Direction direction) {
    const bool forward = direction == Direction::Forward;
    switch (op) {
        case BenchOp::BatchNorm:
            return forward ? 3 : 5;
        default:  // ReLU
            return forward ? 2 : 3;
    }
}
}  // namespace

WorkCounts work_counts(const BenchConfig& config, Direction direction, std::size_t element_size) {
    const double size = static_cast<double>(element_size);
    const Shape out = config.output_shape();
    WorkCounts work;
    if (config.op == BenchOp::Add) {
        // fwd x, addend -> y; bwd (a broadcast addend's gradient) dy -> the addend's sum.
        const double addend = elements(config.addend_shape());
        work.bytes =
            (direction == Direction::Forward ? 2 * elements(config.input) + addend : elements(config.input) + addend) *
            size;
        return work;
    }
    if (is_layer(config.op)) {
        work.bytes = layer_tensor_passes(config.op, direction) * elements(config.input) * size;
        return work;
    }
    if (is_pool(config.op)) {
        if (direction == Direction::Forward) {
            work.bytes = (elements(config.input) + elements(out)) * size;
        } else {
            const double reads_input = config.op == BenchOp::MaxPool ? elements(config.input) : 0;
            work.bytes = (elements(out) + reads_input + elements(config.input)) * size;
        }
        return work;
    }
    // A transposed convolution is described by the library as the convolution it is the adjoint
    // of, so one formula counts both: 2 N C_out out_spatial (C_in / groups) kernel_spatial.
    const detail::ConvGeometry g =
        config.op == BenchOp::Conv
            ? detail::conv_geometry(config.op_name(), config.input, config.weight, config.conv)
            : detail::conv_transpose_geometry(config.op_name(), config.input, config.weight, config.conv);
    work.flops = 2.0 * static_cast<double>(g.batch) * static_cast<double>(g.out_channels) *
                 static_cast<double>(g.output_spatial()) * static_cast<double>(g.in_channels_per_group()) *
                 static_cast<double>(g.kernel_spatial());
    const double x = elements(config.input), w = elements(config.weight), y = elements(out);
    switch (direction) {
        case Direction::Forward:
            work.bytes = (x + w + y + (config.epilogue.residual ? y : 0) +
                          (config.epilogue.bias ? static_cast<double>(out[1]) : 0)) *
                         size;
            break;
        case Direction::BackwardData:
            work.bytes = (y + w + x) * size;
            break;
        case Direction::BackwardFilter:
            work.bytes = (y + x + w) * size;
            break;
    }
    return work;
}

double floor_ms(const WorkCounts& work, double peak_tflops, double peak_gbps) {
    double seconds = 0;
    if (peak_tflops > 0) seconds = std::max(seconds, work.flops / (peak_tflops * 1e12));
    if (peak_gbps > 0) seconds = std::max(seconds, work.bytes / (peak_gbps * 1e9));
    return seconds * 1e3;
}

}  // namespace convkit::bench
