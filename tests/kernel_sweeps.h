#pragma once
// The geometry sweeps of the convolution and pooling kernel tests, shared by the GPU suites
// (test_cuda_conv.cpp, test_cuda_pool.cpp) and the emulator's (emu/test_emu_conv_pool.cpp), so
// the kernels meet the same shapes on a GPU and on the CPU. Names come from to_string() of the
// parameters, so a failure names its shape.
#include <ostream>
#include <string>
#include <vector>

#include "test_util.h"

namespace convkit::testing {

struct ConvCase {
    ConvParams params{2};
    Shape input;
    Shape weight;
    bool transposed = false;
    std::string name() const {
        std::string text = conv_op_name(params.spatial_rank, transposed) + "_" + params.to_string() + "_x" +
                           input.to_string() + "_w" + weight.to_string();
        return testing::test_name(text);
    }
};

// gtest prints a failing case with this instead of its bytes.
inline void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name(); }

inline ConvCase conv(const ConvParams& p, Shape input, Shape weight) {
    return {p, input, weight, false};
}
inline ConvCase transposed(const ConvParams& p, Shape input, Shape weight) {
    return {p, input, weight, true};
}

// Rank, stride, padding, dilation, groups and depthwise, odd sizes, batch 1, non-square kernels,
// channel counts that are not multiples of 4 or 8, every padding mode, 'same'.
inline std::vector<ConvCase> conv_sweep() {
    using P = ConvParams;
    return {
        conv(P(1), Shape{2, 3, 17}, Shape{5, 3, 3}),
        conv(P(1).set_stride(2).set_padding(1).set_dilation(2), Shape{1, 5, 23}, Shape{7, 5, 4}),
        conv(P(1).set_groups(5), Shape{2, 5, 19}, Shape{10, 1, 5}),  // depthwise, multiplier 2
        conv(P(1).set_padding(2).set_padding_mode(PaddingMode::Reflect), Shape{1, 3, 9}, Shape{2, 3, 5}),
        conv(P(1).set_padding(3).set_padding_mode(PaddingMode::Circular), Shape{2, 2, 7}, Shape{3, 2, 4}),
        conv(P(2), Shape{1, 3, 8, 9}, Shape{4, 3, 3, 3}),
        conv(P(2).set_stride({2, 1}).set_padding({1, 2}), Shape{2, 7, 11, 13}, Shape{5, 7, 3, 5}),
        conv(P(2).set_stride(2).set_dilation({2, 3}).set_padding(2).set_groups(2), Shape{1, 6, 15, 14},
             Shape{8, 3, 3, 2}),
        conv(P(2).set_groups(6).set_padding(1), Shape{3, 6, 10, 7}, Shape{6, 1, 3, 3}),  // depthwise 3x3
        conv(P(2).set_stride(2), Shape{2, 5, 9, 9}, Shape{3, 5, 1, 1}),                  // strided 1x1
        conv(P(2).set_same_padding(), Shape{1, 3, 10, 11}, Shape{4, 3, 4, 2}),           // 'same', even kernel
        conv(P(2).set_same_padding().set_dilation(2), Shape{1, 2, 9, 8}, Shape{3, 2, 3, 3}),
        conv(P(2).set_padding({1, 2}).set_padding_mode(PaddingMode::Replicate), Shape{2, 3, 6, 5}, Shape{2, 3, 3, 4}),
        conv(P(2).set_padding(2).set_padding_mode(PaddingMode::Reflect).set_stride({1, 2}), Shape{1, 4, 7, 9},
             Shape{5, 4, 5, 3}),
        conv(P(2).set_padding(1).set_padding_mode(PaddingMode::Circular).set_groups(3), Shape{2, 9, 5, 6},
             Shape{6, 3, 3, 3}),
        conv(P(3), Shape{1, 2, 5, 6, 7}, Shape{3, 2, 3, 3, 3}),
        conv(P(3).set_stride({1, 2, 2}).set_padding(1).set_dilation({2, 1, 1}), Shape{2, 3, 7, 8, 9},
             Shape{5, 3, 2, 3, 3}),
        conv(P(3).set_groups(4).set_padding({0, 1, 2}).set_padding_mode(PaddingMode::Replicate), Shape{1, 4, 4, 5, 6},
             Shape{4, 1, 3, 3, 3}),
        // Padding-mode corners: 'same' with an even kernel under reflect and circular, circular
        // padding equal to the size, replicate padding larger than it.
        conv(P(2).set_same_padding().set_padding_mode(PaddingMode::Reflect), Shape{1, 2, 6, 7}, Shape{3, 2, 4, 2}),
        conv(P(1).set_same_padding().set_padding_mode(PaddingMode::Circular).set_dilation(2), Shape{2, 3, 8},
             Shape{2, 3, 4}),
        conv(P(1).set_padding(5).set_padding_mode(PaddingMode::Circular), Shape{1, 2, 5}, Shape{3, 2, 3}),
        conv(P(2).set_padding({4, 1}).set_padding_mode(PaddingMode::Replicate), Shape{1, 2, 3, 4}, Shape{2, 2, 3, 3}),
        // More weights (76,800; 480 emulated) than blocks in one grid: the filter kernel's loop runs
        // a second trip.
        conv(P(2), Shape{1, gpu_or_emulated(256, 16), 2, 2},
             Shape{gpu_or_emulated(300, 30), gpu_or_emulated(256, 16), 1, 1}),
        // Matrix products (is_matrix_product): a fully connected layer as a 4x4 convolution, and
        // DCGAN's first layer, 1x1 -> 4x4 transposed (the CUDA default runs them on cuda.im2col).
        conv(P(2), Shape{3, 5, 4, 4}, Shape{7, 5, 4, 4}),
        transposed(P(2), Shape{3, 6, 1, 1}, Shape{6, 5, 4, 4}),
        transposed(P(1).set_stride(2).set_padding(1).set_output_padding(1), Shape{2, 3, 9}, Shape{3, 5, 4}),
        transposed(P(2).set_stride(2).set_padding(1), Shape{1, 4, 7, 6}, Shape{4, 3, 4, 4}),  // doubling
        transposed(P(2).set_stride({2, 3}).set_dilation({1, 2}).set_output_padding({1, 1}).set_groups(2),
                   Shape{2, 4, 5, 4}, Shape{4, 3, 3, 2}),
        transposed(P(2).set_dilation(3).set_padding(1).set_output_padding(2), Shape{1, 2, 5, 5}, Shape{2, 2, 2, 2}),
        transposed(P(3).set_stride(2).set_padding(1), Shape{1, 3, 3, 4, 5}, Shape{3, 2, 3, 3, 3}),
    };
}

// Problems the tensor-core path (cuda.igemm) runs: channels per group a multiple of 8 (or
// ungrouped input channels, padded), zeros padding the same on both sides; every rank and pass,
// strides, dilation, groups, batch 1, sizes past a 64-row tile, a transposed convolution with
// output padding; and one it refuses (reflect padding), which the sweep records as not supported.
inline std::vector<ConvCase> tensor_core_conv_sweep() {
    using P = ConvParams;
    return {
        conv(P(1).set_padding(1).set_stride(2), Shape{2, 16, 37}, Shape{24, 16, 3}),
        conv(P(2).set_padding(1), Shape{2, 16, 9, 9}, Shape{32, 16, 3, 3}),
        conv(P(2).set_stride(2).set_dilation(2).set_padding(2), Shape{1, 8, 11, 10}, Shape{16, 8, 3, 3}),
        conv(P(2).set_groups(2).set_padding({0, 1}), Shape{1, 32, 7, 8}, Shape{16, 16, 3, 3}),
        conv(P(2).set_stride(2), Shape{3, 24, 6, 6}, Shape{8, 24, 1, 1}),  // strided 1x1
        // Batch 1, 64 -> 64 3x3: cuda.igemm's default splits its 18 k tiles in 2 (36 tf32 in 4).
        conv(P(2).set_padding(1), Shape{1, 64, 5, 5}, Shape{64, 64, 3, 3}),
        conv(P(3).set_padding(1), Shape{1, 8, 4, 5, 6}, Shape{8, 8, 3, 3, 3}),
        conv(P(2).set_padding(1).set_padding_mode(PaddingMode::Reflect), Shape{1, 8, 5, 5}, Shape{8, 8, 3, 3}),
        transposed(P(2).set_stride(2).set_padding(1).set_output_padding(1), Shape{2, 16, 5, 6}, Shape{16, 8, 4, 4}),
        // Ungrouped input channels off the vector, which cuda.igemm pads with zeros: a stem's 3
        // channels (7x7/2), a grayscale image's 1, 5 in 1-D, 2 in 3-D, and a transposed
        // convolution's 3 output channels (DCGAN's last layer, 4x4/2).
        conv(P(2).set_stride(2).set_padding(3), Shape{2, 3, 13, 12}, Shape{8, 3, 7, 7}),
        conv(P(2).set_padding(1), Shape{2, 1, 9, 9}, Shape{16, 1, 3, 3}),
        conv(P(1).set_padding(1), Shape{2, 5, 20}, Shape{8, 5, 3}),
        conv(P(3).set_padding(1), Shape{1, 2, 3, 4, 5}, Shape{8, 2, 3, 3, 3}),
        transposed(P(2).set_stride(2).set_padding(1), Shape{2, 16, 4, 5}, Shape{16, 3, 4, 4}),
        // A matrix product (DCGAN's first layer, 1x1 -> 4x4), which the CUDA default gives cuda.im2col.
        transposed(P(2), Shape{2, 16, 1, 1}, Shape{16, 8, 4, 4}),
    };
}

// The tensor-core shapes and, for float32 as tf32 (4 channels to a 16-byte vector), shapes
// with channels per group a multiple of 4 but not of 8: 12 -> 20 (2-D, padded), groups of 4
// (1-D, strided), 3-D with 4 channels, a transposed one with 12 -> 4.
inline std::vector<ConvCase> tf32_conv_sweep() {
    using P = ConvParams;
    std::vector<ConvCase> cases = tensor_core_conv_sweep();
    cases.push_back(conv(P(2).set_padding(1), Shape{2, 12, 7, 9}, Shape{20, 12, 3, 3}));
    cases.push_back(conv(P(1).set_groups(2).set_stride(2).set_padding(1), Shape{1, 8, 23}, Shape{8, 4, 3}));
    cases.push_back(conv(P(3).set_padding({0, 1, 1}), Shape{1, 4, 3, 5, 4}, Shape{4, 4, 2, 3, 3}));
    cases.push_back(transposed(P(2).set_stride(2).set_padding(1), Shape{1, 12, 4, 5}, Shape{12, 4, 3, 3}));
    return cases;
}

// Depthwise convolutions (groups = channels, one output channel each), which cuda.depthwise
// runs on channels-last activations in 16-byte packs of adjacent channels where the channel count
// allows (8 16-bit values, 4 floats, 2 doubles) and one channel at a time where it does not: 16,
// 24, 32 and 64 channels (packs) and 6, 12 and 20 (single channels in 16 bits; pairs of doubles,
// packs of floats for 12 and 20); kernels of 1 to 7 taps a dim and 13 along a 1-D one, strides 1 to 3, dilation,
// asymmetric 'same' padding, widths one past the 4-position runs, batch 1; 1-D, 2-D and 3-D; a
// transposed layer with output padding (its forward the backward-data kernel); rows enough for
// backward-filter to split them (64 channels, 2 x 40 rows) and for the grid-stride loops to loop;
// and one the channels-last kernels refuse (reflect padding, run contiguous by the other kernels).
inline std::vector<ConvCase> depthwise_conv_sweep() {
    using P = ConvParams;
    return {
        conv(P(2).set_padding(1).set_groups(16), Shape{2, 16, 9, 10}, Shape{16, 1, 3, 3}),
        conv(P(2).set_stride(2).set_padding(1).set_groups(24), Shape{1, 24, 11, 9}, Shape{24, 1, 3, 3}),
        conv(P(2).set_padding(3).set_groups(32), Shape{1, 32, 8, 13}, Shape{32, 1, 7, 7}),
        conv(P(2).set_dilation({2, 3}).set_padding(2).set_groups(6), Shape{2, 6, 9, 11}, Shape{6, 1, 3, 3}),
        conv(P(2).set_same_padding().set_groups(12), Shape{1, 12, 6, 7}, Shape{12, 1, 4, 2}),
        conv(P(1).set_stride(3).set_padding(2).set_groups(20), Shape{2, 20, 29}, Shape{20, 1, 5}),
        conv(P(3).set_padding(1).set_groups(16), Shape{1, 16, 4, 5, 6}, Shape{16, 1, 3, 3, 3}),
        conv(P(2).set_groups(16), Shape{1, 16, 5, 5}, Shape{16, 1, 1, 1}),
        // Many taps along W at stride 1 (the register window's steps in chunks of 4, and a last
        // chunk of 1): 13 taps over 10 positions, reaching past both ends; and a causal-style 4-tap
        // one whose output is 3 longer than its input.
        conv(P(1).set_padding(6).set_groups(16), Shape{2, 16, 10}, Shape{16, 1, 13}),
        conv(P(1).set_padding(3).set_groups(24), Shape{1, 24, 11}, Shape{24, 1, 4}),
        conv(P(2).set_padding(1).set_groups(64), Shape{2, 64, 40, 6}, Shape{64, 1, 3, 3}),
        // More rows (80) and, 1-D in float32 and float64, more of a row's items (1,125 runs of 16
        // or 32 packs) than the emulated device's 64-block grid holds: the grid-stride loops loop.
        conv(P(2).set_padding(1).set_groups(64), Shape{2, 64, 40, 40}, Shape{64, 1, 3, 3}),
        conv(P(1).set_padding(2).set_groups(64), Shape{1, 64, 4500}, Shape{64, 1, 5}),
        transposed(P(2).set_stride(2).set_padding(1).set_output_padding(1).set_groups(16), Shape{2, 16, 4, 5},
                   Shape{16, 1, 3, 3}),
        conv(P(2).set_padding(1).set_padding_mode(PaddingMode::Reflect).set_groups(8), Shape{1, 8, 5, 6},
             Shape{8, 1, 3, 3}),
    };
}

inline std::string conv_case_name(const ::testing::TestParamInfo<ConvCase>& info) {
    return info.param.name() + "_" + std::to_string(info.index);
}

struct PoolCase {
    PoolParams params{2, 2};
    Shape input;
    std::string name() const {
        std::string text = params.to_string() + "_x" + input.to_string();
        return testing::test_name(text);
    }
};

inline std::vector<PoolCase> pool_sweep() {
    using P = PoolParams;
    return {
        {P(1, 3).set_stride(2).set_padding(1), Shape{2, 3, 17}},
        {P(1, 2).set_ceil_mode(), Shape{1, 5, 9}},
        {P(1, 3).set_stride(1).set_dilation(2).set_padding(1), Shape{2, 2, 12}},
        {P(2, 2), Shape{2, 3, 8, 8}},
        {P(2, 3).set_stride(2).set_padding(1), Shape{1, 7, 11, 9}},
        {P(2, {3, 2}).set_stride({2, 1}).set_ceil_mode().set_count_include_pad(false).set_padding({1, 0}),
         Shape{2, 5, 10, 7}},
        {P(2, 3).set_stride(2).set_ceil_mode(), Shape{1, 3, 6, 7}},  // windows overhang the input
        {P(2, 3).set_stride(1).set_dilation({1, 2}), Shape{1, 4, 7, 9}},
        {P(3, 2), Shape{1, 2, 4, 6, 8}},
        {P(3, {3, 3, 2}).set_stride(2).set_padding({1, 1, 0}).set_ceil_mode(), Shape{2, 3, 5, 7, 6}},
    };
}

inline std::string pool_case_name(const ::testing::TestParamInfo<PoolCase>& info) {
    return info.param.name() + "_" + std::to_string(info.index);
}

}  // namespace convkit::testing
