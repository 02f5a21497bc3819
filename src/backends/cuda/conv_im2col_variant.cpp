// The variant `cuda.im2col`: every convolution as unfolded columns times a matrix product
// (Caffe's approach), the robust baseline that runs every problem the geometry accepts: 1-D to
// 3-D, stride, dilation, groups, every padding mode, contiguous and channels-last activations,
// bfloat16/float16 (float32 accumulation), float32 (TF32 where the math mode allows, on a GPU)
// and float64; all four passes. Transposed convolutions come free: the op layer runs their
// forward as this variant's backward-data.
//
// Per block of whole images (as many as fit im2col_column_budget() of column matrix, at least one):
//   forward          im2col(x) [rows, C_in taps], then per group y_g = columns_g w_g^T
//   backward-data    per group dcolumns_g = dy_g w_g (float32 for 16-bit), then col2im's gather
//   backward-filter  im2col(x), then per group dw_g += dy_g^T columns_g, summed over the blocks in
//                    order (a float32 accumulator for 16-bit, rounded once at the end)
// The column matrix's columns are (input channel, tap), the weight's own order, so the weight is
// multiplied as stored. A channels-last 1x1 convolution with stride 1 and no padding has x as its
// column matrix: the forward and backward-filter read it in place, one block, no unfolding; so
// does a convolution that is one matrix product (is_matrix_product: a fully connected layer as a
// convolution, DCGAN's first transposed layer), contiguous, which the CUDA backend's default
// runs here (backend_api/selection.cpp). Channels-last activations, and those of one output
// position, are [rows, channels] matrices already: one product per block, batched over the
// groups. Other contiguous ones are [channels, positions] per image: one product per image,
// batched over the groups. The products are
// backends/cuda/strided_batched_gemm.h: cuBLAS on a GPU, convkit's own kernel on the emulated
// device. The bias starts the output (forward: filled, then the product added; backward-data:
// the gather's first term); the bias gradient is the channels-last reduction kernel, or on
// contiguous activations the direct kernel (float32/float64) or a product with ones (16-bit).
// The epilogue (residual, ReLU) is the op layer's (fuses_epilogue() is false).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>

#include "backend_api/unfold_blocks.h"
#include "backend_api/variant.h"
#include "backend_api/workspace_pieces.h"
#include "backends/cuda/conv_im2col_budget.h"
#include "backends/cuda/strided_batched_gemm.h"
#include "core/check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/conv_bias_grad.h"
#include "kernels/conv_direct.h"
#include "kernels/conv_im2col.h"
#include "kernels/tensor_fill.h"

namespace convkit::detail {

namespace {

// Column matrix per block (kDefaultIm2colColumnBudgetBytes): large enough that the products are
// GEMMs of thousands of rows (a ResNet-50 3x3 layer at 56x56, bfloat16: 18 images), small beside
// a GPU's memory.
std::atomic<std::size_t> column_budget{kDefaultIm2colColumnBudgetBytes};

// cuBLAS multiplies bfloat16 from Ampere on.
constexpr int kBfloat16ComputeCapability = 80;

bool is_sixteen_bit(DType dtype) { return dtype == DType::BFloat16 || dtype == DType::Float16; }

// The dtype products on `dtype` operands sum into when their result is summed again (col2im's
// gather, backward-filter over blocks, the bias gradient): float32 for 16-bit, else the dtype.
DType accumulator_dtype(DType dtype) { return is_sixteen_bit(dtype) ? DType::Float32 : dtype; }

const void* at(const void* base, std::int64_t elements, DType dtype) {
    return static_cast<const char*>(base) + elements * static_cast<std::int64_t>(dtype_size(dtype));
}
void* at(void* base, std::int64_t elements, DType dtype) {
    return static_cast<char*>(base) + elements * static_cast<std::int64_t>(dtype_size(dtype));
}

// Whether x is its own column matrix, whose products read it in place: channels-last 1x1
// convolutions with stride 1 and no padding (row (n, p) of x is its C_in channels, one tap each),
// and convolutions that are one matrix product (is_matrix_product: row n of x is its (c, tap)
// elements, the column order, when x is contiguous or has one position).
bool columns_are_input(const ConvGeometry& g, Layout layout) {
    if (is_matrix_product(g)) return layout == Layout::Contiguous || g.input_spatial() == 1;
    if (layout != Layout::ChannelsLast) return false;
    for (std::size_t s = 0; s < 3; ++s) {
        if (g.kernel[s] != 1 || g.stride[s] != 1 || g.pad_begin[s] != 0 || g.output[s] != g.input[s]) return false;
    }
    return true;
}

// Whether an activation matrix (y, dy) is [rows of the block, C_out] as stored: channels-last, or
// one output position, where [N, C_out, 1] is both layouts (one product a block, not one an image).
bool rows_are_positions(const ConvGeometry& g, Layout layout) {
    return layout == Layout::ChannelsLast || g.output_spatial() == 1;
}

// The blocks of one pass: whole images, their column matrix of `column_dtype` (none when the
// pass reads x in place: then one block of every image).
struct Blocks {
    const ConvGeometry& g;
    DType column_dtype;
    bool in_place = false;

    std::int64_t row_length() const { return g.in_channels * g.kernel_spatial(); }
    std::size_t image_bytes() const {
        return static_cast<std::size_t>(g.output_spatial() * row_length()) * dtype_size(column_dtype);
    }
    std::int64_t images_per_block() const {
        return in_place ? g.batch : units_within_budget(image_bytes(), im2col_column_budget(), g.batch);
    }
    std::size_t column_bytes() const {
        return in_place ? 0 : static_cast<std::size_t>(images_per_block()) * image_bytes();
    }
    // The block's column matrix: built into `columns` by im2col, or x's rows in place.
    const void* unfold(const void* x, DType dtype, Layout layout, std::int64_t first, std::int64_t images,
                       void* columns, Stream stream) const {
        if (in_place) return at(x, first * g.output_spatial() * row_length(), dtype);
        kernels::im2col(g, dtype, layout, x, first, images, columns, stream);
        return columns;
    }

    // f(first image, images) for every block, in order.
    template <typename F>
    void for_each(F&& f) const {
        const std::int64_t per_block = images_per_block();
        for (std::int64_t first = 0; first < g.batch; first += per_block) f(first, std::min(per_block, g.batch - first));
    }
};

// The blocks of a pass: backward-data's column gradient is its own (float32 for 16-bit); the
// forward and backward-filter unfold x, in place where x is its own column matrix.
Blocks blocks_of(const ConvProblem& p, ConvPass pass) {
    if (pass == ConvPass::BackwardData) return {p.geometry, accumulator_dtype(p.dtype())};
    return {p.geometry, p.dtype(), columns_are_input(p.geometry, p.x_layout)};
}

std::size_t weight_elements(const ConvGeometry& g) {
    return static_cast<std::size_t>(g.out_channels * g.in_channels_per_group() * g.kernel_spatial());
}

// One operand of the products batched over groups: a group's matrix as stored (leading
// dimension, distance to the next group's), and whether the product reads it transposed.
struct GroupMatrix {
    std::int64_t lead;
    std::int64_t group_stride;
    bool transposed = false;
};

// C_g [m, n] = op(A_g) [m, k] op(B_g) [k, n] (+ C_g) for each of `groups` groups.
StridedBatchedGemm per_group(std::int64_t groups, std::int64_t m, std::int64_t n, std::int64_t k, GroupMatrix a,
                             GroupMatrix b, GroupMatrix c, bool accumulate = false) {
    StridedBatchedGemm s;
    s.m = m;
    s.n = n;
    s.k = k;
    s.transpose_a = a.transposed;
    s.transpose_b = b.transposed;
    s.lead_a = a.lead;
    s.lead_b = b.lead;
    s.lead_c = c.lead;
    s.stride_a = a.group_stride;
    s.stride_b = b.group_stride;
    s.stride_c = c.group_stride;
    s.batch = groups;
    s.accumulate = accumulate;
    return s;
}

// A group's weight rows [C_out/groups, C_in/groups x taps] (or its gradient's).
GroupMatrix weight_matrix(const ConvGeometry& g, bool transposed = false) {
    const std::int64_t kg = g.in_channels_per_group() * g.kernel_spatial();
    return {kg, g.out_channels_per_group() * kg, transposed};
}

// A group's columns of the column matrix [rows, C_in x taps].
GroupMatrix column_matrix(const ConvGeometry& g, bool transposed = false) {
    return {g.in_channels * g.kernel_spatial(), g.in_channels_per_group() * g.kernel_spatial(), transposed};
}

// The product of one group's activation matrix, dy_g or y_g: `rows` output positions x C_out/groups
// channels, for either layout. Channels-last: rows of the whole block, stored [rows, C_out] (the
// group's columns). Contiguous: one image, stored transposed, [C_out/groups, positions] per group.
struct ActivationMatrix {
    std::int64_t rows;
    std::int64_t lead;
    std::int64_t group_stride;
    bool stored_transposed;

    // The group's [rows, C_out/groups] matrix, read transposed when `transposed` (so a matrix
    // stored transposed is read as stored when `transposed` is).
    GroupMatrix read(bool transposed) const { return {lead, group_stride, transposed != stored_transposed}; }
};

ActivationMatrix output_matrix(const ConvGeometry& g, Layout layout, std::int64_t images) {
    if (rows_are_positions(g, layout)) {
        return {images * g.output_spatial(), g.out_channels, g.out_channels_per_group(), false};
    }
    return {g.output_spatial(), g.output_spatial(), g.out_channels_per_group() * g.output_spatial(), true};
}

// f(activation element offset, column element offset) for each product of a block: one
// (rows_are_positions) or one per image (contiguous).
template <typename F>
void for_each_product(const ConvGeometry& g, Layout layout, std::int64_t first, std::int64_t images, F&& f) {
    const std::int64_t column_image = g.output_spatial() * g.in_channels * g.kernel_spatial();
    const std::int64_t activation_image = g.output_spatial() * g.out_channels;
    const std::int64_t products = rows_are_positions(g, layout) ? 1 : images;
    for (std::int64_t j = 0; j < products; ++j) f((first + j) * activation_image, j * column_image);
}

// One pass of the unfolding: the problem's geometry, dtype and layout, the pass's blocks and
// their column matrix (the workspace's first piece).
struct UnfoldedPass {
    const ConvProblem& p;
    const ConvGeometry& g;
    DType dtype;
    Layout layout;
    DType accumulator;
    Blocks blocks;
    void* columns;
    std::int64_t kg;  // a group's columns: C_in/groups x taps
    std::int64_t og;  // a group's output channels

    UnfoldedPass(const ConvProblem& problem, ConvPass pass, WorkspacePieces& pieces)
        : p(problem),
          g(problem.geometry),
          dtype(problem.dtype()),
          layout(problem.x_layout),
          accumulator(accumulator_dtype(dtype)),
          blocks(blocks_of(problem, pass)),
          columns(pieces.take(blocks.column_bytes())),
          kg(g.in_channels_per_group() * g.kernel_spatial()),
          og(g.out_channels_per_group()) {}

    // y = bias, then per block y_g += columns_g w_g^T.
    void forward(const ConvOperands& o, Stream stream) const {
        if (o.bias != nullptr) {
            kernels::fill_channels(dtype, layout, g.batch, g.out_channels, g.output_spatial(), o.bias, o.out, stream);
        }
        const bool accumulate = o.bias != nullptr;  // onto the bias
        blocks.for_each([&](std::int64_t first, std::int64_t images) {
            const void* block_columns = blocks.unfold(o.x, dtype, layout, first, images, columns, stream);
            const ActivationMatrix y = output_matrix(g, layout, images);
            for_each_product(g, layout, first, images, [&](std::int64_t y_offset, std::int64_t column_offset) {
                const void* column_block = at(block_columns, column_offset, dtype);
                void* y_block = at(o.out, y_offset, dtype);
                const GroupMatrix y_stored{y.lead, y.group_stride};
                if (!y.stored_transposed) {  // y_g [rows, og] = columns_g [rows, kg] w_g^T
                    strided_batched_gemm(per_group(g.groups, y.rows, og, kg, column_matrix(g), weight_matrix(g, true),
                                                   y_stored, accumulate),
                                         dtype, dtype, p.math, column_block, o.w, y_block, stream);
                } else {  // y_g^T [og, rows] = w_g [og, kg] columns_g^T
                    strided_batched_gemm(per_group(g.groups, og, y.rows, kg, weight_matrix(g), column_matrix(g, true),
                                                   y_stored, accumulate),
                                         dtype, dtype, p.math, o.w, column_block, y_block, stream);
                }
            });
        });
    }

    // Per block dcolumns_g = dy_g w_g, then dx = bias + col2im(dcolumns).
    void backward_data(const ConvOperands& o, Stream stream) const {
        blocks.for_each([&](std::int64_t first, std::int64_t images) {
            const ActivationMatrix dy = output_matrix(g, layout, images);
            for_each_product(g, layout, first, images, [&](std::int64_t dy_offset, std::int64_t column_offset) {
                // dcolumns_g [rows, kg] = dy_g [rows, og] w_g [og, kg]
                strided_batched_gemm(per_group(g.groups, dy.rows, kg, og, dy.read(false), weight_matrix(g),
                                               column_matrix(g)),
                                     dtype, accumulator, p.math, at(o.dy, dy_offset, dtype), o.w,
                                     at(columns, column_offset, accumulator), stream);
            });
            kernels::col2im(g, dtype, layout, columns, accumulator, o.bias, first, images, o.out, stream);
        });
    }

    // Per block dw_g (+)= dy_g^T columns_g, in block order; 16-bit sums in float32, rounded once.
    void backward_filter(const ConvOperands& o, WorkspacePieces& pieces, Stream stream) const {
        void* dw = is_sixteen_bit(dtype) ? pieces.take(weight_elements(g) * sizeof(float)) : o.out;
        bool first_product = true;
        blocks.for_each([&](std::int64_t first, std::int64_t images) {
            const void* block_columns = blocks.unfold(o.x, dtype, layout, first, images, columns, stream);
            const ActivationMatrix dy = output_matrix(g, layout, images);
            for_each_product(g, layout, first, images, [&](std::int64_t dy_offset, std::int64_t column_offset) {
                // dw_g [og, kg] (+)= dy_g^T [og, rows] columns_g [rows, kg]
                strided_batched_gemm(per_group(g.groups, og, kg, dy.rows, dy.read(true), column_matrix(g),
                                               weight_matrix(g), !first_product),
                                     dtype, accumulator, p.math, at(o.dy, dy_offset, dtype),
                                     at(block_columns, column_offset, dtype), dw, stream);
                first_product = false;
            });
        });
        if (dw != o.out) {
            kernels::convert(dw, accumulator, o.out, dtype, static_cast<std::int64_t>(weight_elements(g)), stream);
        }
    }

};

class CudaIm2colConv final : public ConvVariant {
public:
    const char* name() const override { return "cuda.im2col"; }
    DeviceType device_type() const override { return DeviceType::CUDA; }
    bool computes(DType dtype) const override {
        return dtype == DType::Float32 || dtype == DType::Float64 || is_sixteen_bit(dtype);
    }

    std::string unsupported_reason(const ConvProblem& p, ConvPass) const override {
        if (p.w_layout != Layout::Contiguous) return "runs contiguous weights only";
        if (p.x_layout != p.y_layout) return "runs x and y in one layout only";
        if (p.w_dtype != p.x_dtype || p.y_dtype != p.x_dtype) return "runs operands of one dtype only";
        if (p.dtype() == DType::BFloat16) {
            if (const int cc = cuda_compute_capability(p.device.index); cc < kBfloat16ComputeCapability) {
                return concat("needs compute capability 8.0 or later for bfloat16 products (cuBLAS); device ",
                              p.device.index, " has ", cc / 10, ".", cc % 10);
            }
        }
        return {};
    }

    std::size_t workspace(const ConvProblem& p, ConvPass pass) const override {
        const ConvGeometry& g = p.geometry;
        const DType dtype = p.dtype();
        if (pass == ConvPass::BackwardBias) {
            const BiasGradShape& b = p.bias_grad;
            if (bias_rows_are_positions(p)) {
                return kernels::conv_backward_bias_channels_last_workspace_bytes(b.batch * b.spatial, b.channels,
                                                                                 dtype);
            }
            if (!is_sixteen_bit(dtype)) return 0;
            return WorkspacePieces::rounded(static_cast<std::size_t>(b.spatial) * dtype_size(dtype)) +
                   WorkspacePieces::rounded(static_cast<std::size_t>(b.channels) * sizeof(float));
        }
        std::size_t bytes = WorkspacePieces::rounded(blocks_of(p, pass).column_bytes());
        if (pass == ConvPass::BackwardFilter && is_sixteen_bit(dtype)) {
            bytes += WorkspacePieces::rounded(weight_elements(g) * sizeof(float));
        }
        return bytes;
    }

    void run(const ConvProblem& p, ConvPass pass, const ConvOperands& o, WorkspaceView workspace,
             Stream stream) const override {
        WorkspacePieces pieces(workspace);
        switch (pass) {
            case ConvPass::Forward: UnfoldedPass(p, pass, pieces).forward(o, stream); break;
            case ConvPass::BackwardData: UnfoldedPass(p, pass, pieces).backward_data(o, stream); break;
            case ConvPass::BackwardFilter: UnfoldedPass(p, pass, pieces).backward_filter(o, pieces, stream); break;
            case ConvPass::BackwardBias: backward_bias(p, o, pieces, stream); break;
        }
    }

private:
    // Whether dy is [rows, channels] for the bias gradient's channel sums: channels-last, or one
    // position an image ([N, C, 1] in either layout).
    static bool bias_rows_are_positions(const ConvProblem& p) {
        return p.x_layout == Layout::ChannelsLast || p.bias_grad.spatial == 1;
    }

    // db[c] = the sum of dy over images and positions.
    static void backward_bias(const ConvProblem& p, const ConvOperands& o, WorkspacePieces& pieces, Stream stream) {
        const BiasGradShape& b = p.bias_grad;
        const DType dtype = p.dtype();
        if (bias_rows_are_positions(p)) {
            const std::size_t bytes =
                kernels::conv_backward_bias_channels_last_workspace_bytes(b.batch * b.spatial, b.channels, dtype);
            kernels::conv_backward_bias_channels_last(b.batch * b.spatial, b.channels, dtype, o.dy, o.out,
                                                      pieces.take(bytes), stream);
            return;
        }
        if (!is_sixteen_bit(dtype)) {
            kernels::conv_backward_bias(b.batch, b.channels, b.spatial, dtype, o.dy, o.out, stream);
            return;
        }
        // 16-bit contiguous: db32 [C, 1] (+)= dy_n [C, S] ones [S, 1] per image, in order.
        void* ones = pieces.take(static_cast<std::size_t>(b.spatial) * dtype_size(dtype));
        void* db = pieces.take(static_cast<std::size_t>(b.channels) * sizeof(float));
        kernels::fill_constant(ones, dtype, b.spatial, 1.0, stream);
        for (std::int64_t n = 0; n < b.batch; ++n) {
            strided_batched_gemm(per_group(1, b.channels, 1, b.spatial, {b.spatial, 0}, {1, 0}, {1, 0}, n > 0), dtype, DType::Float32, p.math, at(o.dy, n * b.channels * b.spatial, dtype), ones,
                                 db, stream);
        }
        kernels::convert(db, DType::Float32, o.out, dtype, b.channels, stream);
    }
};
}  // namespace

CONVKIT_REGISTER_CONV_VARIANT(CudaIm2colConv);

std::size_t im2col_column_budget() { return column_budget.load(); }
void set_im2col_column_budget(std::size_t bytes) {
    column_budget.store(bytes == 0 ? kDefaultIm2colColumnBudgetBytes : bytes);
}

}  // namespace convkit::detail
