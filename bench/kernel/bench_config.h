#pragma once
// One benchmark configuration (an op, its shapes and parameters) and its one-line text form,
// which is also the `name` of every result row:
//
//   conv2d in=32x64x56x56 w=64x64x3x3 s1x1_p1x1_d1x1_g1
//   conv_transpose2d in=32x512x4x4 w=512x256x4x4 s2x2_p1x1_d1x1_g1
//   max_pool2d in=32x64x112x112 k3x3_s2x2_p1x1
//
// The op (conv, conv_transpose, max_pool, avg_pool with 1d/2d/3d) comes first; then `in=` (the
// input shape N x C x spatial), `w=` (the weight, convolutions only, laid out as the op takes it)
// and the parameters in ConvParams::to_string() / PoolParams::to_string() form, in any order.
// Parameters left out take their defaults (stride 1, padding 0, dilation 1, groups 1; a pool's
// stride is its kernel), and one number stands for every spatial dim ("p1" is "p1x1" in 2-D).
// A pool may add `layout=nhwc`: its activations channels-last on both sides, in every dtype
// (`layout=nchw`, contiguous, is the default and is not written out).
//
//   adaptive_avg_pool2d in=32x2048x7x7 out=1x1 layout=nhwc
//
// Adaptive average pooling takes its output's spatial extents (`out=`) instead of parameters,
// each dividing the input's: cuDNN has no adaptive pooling, so its side of the row is the
// average pooling with the same windows (kernel and stride in / out, in `pool`).
//
// The bandwidth-bound layers (issue #15's "at the copy rate" rows) take only their input and
// layout: batch norm in training (forward: the batch statistics, the normalization and the
// running averages; backward: the sums and the three gradients), ReLU, and the sum of two
// tensors of one shape (a residual connection):
//
//   batch_norm2d in=32x256x56x56 layout=nhwc
//   relu in=32x256x56x56 layout=nhwc
//   add in=32x256x56x56
//   add in=32x256x56x56 with=1x256x1x1 layout=nhwc
//
// (relu and add take any rank from 3 to 5 dims.) `with=` gives add's second addend a shape that
// broadcasts to the input's (a per-channel scale or shift, ConvNeXt's layer scale): such a row
// has a backward, the sum of dy over the broadcast dims (the addend's gradient). cuDNN has no
// side in these rows: convkit's result is checked against the host backend in float64, and its
// time is read against the copy bandwidth measured in the same run.
//
// A convolution may add the epilogue its forward applies before writing the output:
//
//   conv2d in=32x64x56x56 w=256x64x1x1 epilogue=bias+residual+relu
//
// (any of the three, joined by '+' in that order): a forward-only row, y = relu(conv(x, w) + bias
// + residual) on both sides (convkit's fused epilogue; cuDNN's own fused call or separate calls).
// docs/benchmarks.md describes the format; parse_config_line(to_line()) gives back the same config.
#include <string>
#include <vector>

#include "convkit/conv_params.h"
#include "convkit/dtype.h"
#include "convkit/memory_format.h"
#include "convkit/shape.h"

namespace convkit::bench {

enum class BenchOp { Conv, ConvTranspose, MaxPool, AvgPool, AdaptiveAvgPool, BatchNorm, Relu, Add };
// What the result format calls the op family: "conv", "conv_transpose", "pool", "layer".
const char* op_family_name(BenchOp op);
constexpr bool is_pool(BenchOp op) {
    return op == BenchOp::MaxPool || op == BenchOp::AvgPool || op == BenchOp::AdaptiveAvgPool;
}
// The bandwidth-bound layers: no cuDNN side, timed against the copy bandwidth.
constexpr bool is_layer(BenchOp op) {
    return op == BenchOp::BatchNorm || op == BenchOp::Relu || op == BenchOp::Add;
}
constexpr bool is_conv(BenchOp op) {
    return op == BenchOp::Conv || op == BenchOp::ConvTranspose;
}

// The tensors a row of `dtype` ("f32", "tf32", "bf16", "fp16") gives both sides: their element
// type and the activations' format. Convolutions in bf16, fp16 and tf32 take channels-last
// activations (the tensor cores' layout: cuda.igemm's, cuDNN's NHWC); strict f32 contiguous
// ones (cuda.tiled's). Pooling and the layer rows take their line's layout (`layout`) in every
// dtype.
struct RowOperands {
    DType element;
    MemoryFormat activations;
};
struct BenchConfig;
RowOperands row_operands(const std::string& dtype, const BenchConfig& config);

// Pooling has no filter: its backward is BackwardData.
enum class Direction { Forward, BackwardData, BackwardFilter };
const char* direction_name(Direction direction);  // "fwd", "bwd_data", "bwd_filter"
Direction parse_direction(const std::string& name);

// What a convolution row's forward applies after the convolution (ConvEpilogue, and the bias).
struct BenchEpilogue {
    bool bias = false;
    bool residual = false;
    bool relu = false;

    bool any() const { return bias || residual || relu; }
    std::string text() const;  // "bias+residual+relu", the parts present in that order; "" for none
};

struct BenchConfig {
    BenchOp op = BenchOp::Conv;
    Shape input;
    Shape weight;  // convolutions only
    ConvParams conv{2};
    // Pooling's parameters; for adaptive pooling, the average pooling with its windows (cuDNN's side).
    PoolParams pool{2, 1};
    std::vector<std::int64_t> adaptive_output;       // adaptive pooling's output extents (out=)
    MemoryFormat layout = MemoryFormat::Contiguous;  // pooling's and the layers' activations (layout=nchw|nhwc)
    BenchEpilogue epilogue;                          // convolutions only (epilogue=)
    Shape addend;  // add's second addend (with=), broadcast to `input`; rank 0: the input's shape

    // add's second addend's shape: `addend`, or the input's.
    Shape addend_shape() const { return addend.rank() == 0 ? input : addend; }
    bool broadcasts_addend() const { return op == BenchOp::Add && !(addend_shape() == input); }

    int spatial_rank() const {
        return is_pool(op) ? pool.spatial_rank : is_layer(op) ? input.rank() - 2 : conv.spatial_rank;
    }
    // "conv2d", "conv_transpose3d", "max_pool1d", "adaptive_avg_pool2d", "batch_norm2d", "relu", "add"
    std::string op_name() const;
    std::string to_line() const;
    // The directions this row has: all three for convolutions (fwd alone with an epilogue), fwd
    // and bwd_data for pooling, batch norm and ReLU (bwd_data: the gradient of the input, with
    // batch norm's weight and bias gradients), fwd alone for add unless its addend broadcasts
    // (bwd_data: then the addend's gradient, dy summed over the broadcast dims).
    std::vector<Direction> directions() const;
    // The output's shape (the gradient of the output has it too); checks the whole geometry.
    Shape output_shape() const;

    friend bool operator==(const BenchConfig& a, const BenchConfig& b);
};

// "32x64x56x56" (and back). Dims must be positive.
std::string shape_text(const Shape& shape);

// Parses one line; `where` ("configs.txt:3", "--config") starts every error message, which
// then names the field ("in", "w", "stride", ...) and what was expected. The geometry is checked
// too (a kernel larger than the padded input is an error here, not in the middle of a run).
// Throws InvalidArgument.
BenchConfig parse_config_line(const std::string& line, const std::string& where);

// One configuration per line; blank lines and text after '#' are ignored. Errors name
// `source`:line.
std::vector<BenchConfig> parse_config_text(const std::string& text, const std::string& source);
// The same, from a file; throws InvalidArgument if it cannot be read.
std::vector<BenchConfig> read_config_file(const std::string& path);

}  // namespace convkit::bench
