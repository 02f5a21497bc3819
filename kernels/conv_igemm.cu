// Implicit-GEMM convolution on the tensor cores, forward and backward-data (kernels/conv_igemm.h
// has the layouts). Forward, per group, the GEMM D[M x Ng] = A[M x Kg] * B[Kg x Ng] with
//   A(m, k) = x[n, o * stride - padding + tap * dilation, c]  (m = (n, o), k = (tap, c)), never
//             materialised: each 16-byte vector of 8 channels is gathered by cp.async straight
//             from x, zero-filled where the tap falls in the padding or past the edges;
//   B(k, j) = w[j, tap, c], already k-contiguous per output channel: the "col" operand of mma.
// Backward-data (the forward of transposed convolution), rows over dx's positions i:
//   A(m, k) = dy[n, o, kout] with o * stride = i + padding - tap * dilation  (k = (tap, kout)),
//             zero where that o is not a whole position in range (stride > 1 wastes those);
//   B(k, j) = w[kout, tap, j], j-contiguous: stored [k][j] and loaded with ldmatrix.trans.
// Structure (the one CUTLASS's sm80 kernels made standard): a block computes a BM x BN tile of
// D with 4 warps of WM x WN each; k advances 32 at a time through a Stages-deep cp.async ring in
// shared memory; ldmatrix.x4 loads the m16n8k16 fragments (A from a [row][k] tile, B from
// [n][k] forward or, transposed, [k][n]); fp32 accumulators stay in registers to the fused
// epilogue.
//
// Float32 operands run as tf32 (MathMode::AllowTF32) through the same structure: a 64-byte row
// holds 16 floats, so a k tile is 16 deep and each 16-byte vector 4 channels; ldmatrix.x4 on
// 32-bit data gives lane l the float at (row l / 4, column l % 4) of each 8x4 matrix, exactly
// m16n8k8.tf32's A fragment (and, from the [n][k] tile, its B fragment) in the 16-bit order.
// Backward-data's [k][n] B tile cannot go through ldmatrix.trans (it transposes 16-bit halves):
// its B fragments are 32-bit shared loads. Every fragment is rounded with cvt.rna.tf32.
//
// Shared memory: a stage holds BM + BN rows of 64 bytes (32 16-bit values or 16 floats, four
// 16-byte chunks). ldmatrix reads one chunk of 8 consecutive rows at once; unswizzled, rows r and r + 2
// fall on the same banks (64-byte stride, 128-byte bank cycle): a 4-way conflict. Chunk c of row
// r is therefore stored at chunk c ^ ((r / 2) % 4): the 8 rows then cover all 8 16-byte bank
// groups, and cp.async's row writes stay whole 128-byte lines.
#include "kernels/conv_igemm.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "convkit/error.h"
#include "cuda/cuda_runtime.h"
#include "kernels/conv_igemm_support.cuh"
#include "kernels/launch.cuh"
#include "kernels/ptx.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using namespace igemm;

// Which convolution pass a kernel computes; both are the same GEMM machinery with a different
// gather for A and a different layout of B (see the file's head).
enum class Pass { Forward, BackwardData };

// Everything a block needs, by value. The spatial dims are always three: rank 1 and 2 are the
// 3-D case with leading dims of size 1 (kernel 1, stride 1, padding 0). "Source" is the tensor
// A gathers from (x forward, dy backward-data); "rows" the dims the GEMM's rows run over, those
// of the tensor written (y forward, dx backward-data).
struct IgemmParams {
    const void* source;  // the operand's elements (OperandFormat::Element)
    const void* w;
    void* y;
    const float* bias;
    const void* residual;
    int relu;
    int source_d, source_h, source_w;
    int rows_d, rows_h, rows_w;
    int kernel_h, kernel_w;  // kernel_d is implied by taps
    int stride_d, stride_h, stride_w;
    int pad_d, pad_h, pad_w;
    int dil_d, dil_h, dil_w;
    int source_channels, source_group;  // channels of the source, per group: the k chunks' channels
    int out_channels, out_group;        // channels of the tensor written, per group: GEMM columns
    int gemm_m, gemm_k;                 // N * row positions, taps * source_group
};

// The rows of A one thread copies: for each pass, the source image's offset and where the row's
// window starts along each dim (forward: o * stride - padding, plus tap * dilation per tap;
// backward-data: i + padding, minus tap * dilation, then divided by the stride). A row past M
// gets a start no tap brings into range, so its copies zero-fill.
template <class Tile>
struct ARows {
    std::int64_t image[Tile::kPassesA];  // offset of source[n, 0, 0, 0, group's first channel]
    int d0[Tile::kPassesA], h0[Tile::kPassesA], w0[Tile::kPassesA];
};

template <class Tile, Pass P>
__device__ inline void find_a_rows(const IgemmParams& p, int block_m, int group, ARows<Tile>& rows) {
    const int first_row = static_cast<int>(threadIdx.x) / Tile::kChunks;
    CONVKIT_IGEMM_UNROLL
    for (int pass = 0; pass < Tile::kPassesA; ++pass) {
        const int m = block_m + first_row + pass * Tile::kRowsPerPass;
        if (m < p.gemm_m) {
            int rest = m;
            const int rw = rest % p.rows_w;
            rest /= p.rows_w;
            const int rh = rest % p.rows_h;
            rest /= p.rows_h;
            const int rd = rest % p.rows_d;
            const int n = rest / p.rows_d;
            rows.image[pass] = static_cast<std::int64_t>(n) * p.source_d * p.source_h * p.source_w * p.source_channels +
                               static_cast<std::int64_t>(group) * p.source_group;
            if constexpr (P == Pass::Forward) {
                rows.d0[pass] = rd * p.stride_d - p.pad_d;
                rows.h0[pass] = rh * p.stride_h - p.pad_h;
                rows.w0[pass] = rw * p.stride_w - p.pad_w;
            } else {
                rows.d0[pass] = rd + p.pad_d;
                rows.h0[pass] = rh + p.pad_h;
                rows.w0[pass] = rw + p.pad_w;
            }
        } else {
            rows.image[pass] = 0;
            rows.d0[pass] = rows.h0[pass] = rows.w0[pass] = -(1 << 30);
        }
    }
}

// The source coordinate along one dim that row start `start` reads at tap offset `reach`
// (tap * dilation), or false when it reads padding. Forward: start + reach. Backward-data: the
// output position o with o * stride = start - reach, when that is a whole position in range.
template <Pass P>
__device__ inline bool source_coordinate(int start, int reach, int stride, int size, int& at) {
    if constexpr (P == Pass::Forward) {
        at = start + reach;
        return static_cast<unsigned>(at) < static_cast<unsigned>(size);
    } else {
        const int scaled = start - reach;
        at = scaled / stride;
        return scaled >= 0 && at * stride == scaled && at < size;
    }
}

// Issues the cp.async copies of k tile `kt` into `stage` (A rows first, then B).
template <class Tile, Pass P, IgemmOperand Operand>
__device__ inline void load_stage(const IgemmParams& p, const ARows<Tile>& rows, int block_n, int group, int kt,
                                  std::uint16_t* stage) {
    using Format = OperandFormat<Operand>;
    using Element = typename Format::Element;
    const auto* source_elements = static_cast<const Element*>(p.source);
    const auto* w_elements = static_cast<const Element*>(p.w);
    const int chunk = static_cast<int>(threadIdx.x) % Tile::kChunks;
    const int first_row = static_cast<int>(threadIdx.x) / Tile::kChunks;
    const int k = kt * Format::kBlockK + chunk * Format::kPerChunk;
    const bool k_valid = k < p.gemm_k;
    // k = tap * source_group + c; tap = (kd * kernel_h + kh) * kernel_w + kw. A chunk's channels
    // never straddle two taps since source_group is a multiple of kPerChunk.
    const int tap = k / p.source_group, c = k - tap * p.source_group;
    const int kw = tap % p.kernel_w, kh = tap / p.kernel_w % p.kernel_h, kd = tap / p.kernel_w / p.kernel_h;
    const int reach_d = kd * p.dil_d, reach_h = kh * p.dil_h, reach_w = kw * p.dil_w;
    CONVKIT_IGEMM_UNROLL
    for (int pass = 0; pass < Tile::kPassesA; ++pass) {
        const int row = first_row + pass * Tile::kRowsPerPass;
        int sd, sh, sw;
        const bool inside = k_valid && source_coordinate<P>(rows.d0[pass], reach_d, p.stride_d, p.source_d, sd) &&
                            source_coordinate<P>(rows.h0[pass], reach_h, p.stride_h, p.source_h, sh) &&
                            source_coordinate<P>(rows.w0[pass], reach_w, p.stride_w, p.source_w, sw);
        // Outside: zero-filled; the source address is then never read, the tensor itself stands in.
        const Element* source =
            inside ? source_elements + rows.image[pass] +
                         ((static_cast<std::int64_t>(sd) * p.source_h + sh) * p.source_w + sw) * p.source_channels + c
                   : source_elements;
        ptx::cp_async<16>(stage + swizzled(row, chunk), source, inside ? 16 : 0);
    }
    std::uint16_t* b_tile = stage + Tile::kBlockM * Tile::kBlockK;
    if constexpr (P == Pass::Forward) {
        // B(k, j) = w[j, tap, c]: row j of the filter is k-contiguous; stored [j][k].
        CONVKIT_IGEMM_UNROLL
        for (int pass = 0; pass < Tile::kPassesB; ++pass) {
            const int row = first_row + pass * Tile::kRowsPerPass;
            const int j = block_n + row;
            const bool inside = k_valid && j < p.out_group;
            const Element* source =
                inside ? w_elements + static_cast<std::int64_t>(group * p.out_group + j) * p.gemm_k + k : w_elements;
            ptx::cp_async<16>(b_tile + swizzled(row, chunk), source, inside ? 16 : 0);
        }
    } else {
        // B(k, j) = w[kout, tap, j] with k = (tap, kout): j-contiguous for each k; stored [k][j].
        using Kn = KnTile<Tile, Operand>;
        const int j_chunk = static_cast<int>(threadIdx.x) % Kn::kChunks;
        const int j = block_n + j_chunk * Format::kPerChunk;
        const int taps = p.gemm_k / p.source_group;
        CONVKIT_IGEMM_UNROLL
        for (int pass = 0; pass < Kn::kPasses; ++pass) {
            const int row = static_cast<int>(threadIdx.x) / Kn::kChunks + pass * Kn::kRowsPerPass;
            const int kb = kt * Format::kBlockK + row;
            const int tap_b = kb / p.source_group, kout = kb - tap_b * p.source_group;
            const bool inside = kb < p.gemm_k && j < p.out_group;
            const Element* source =
                inside ? w_elements +
                             (static_cast<std::int64_t>(group * p.source_group + kout) * taps + tap_b) * p.out_group + j
                       : w_elements;
            ptx::cp_async<16>(b_tile + swizzled_kn<Kn>(row, j_chunk), source, inside ? 16 : 0);
        }
    }
}

// acc += the warp's WM x WN piece of A(stage) * B(stage), two mma steps (k16, or k8 for tf32),
// each two 16-byte chunks of every row.
template <class Tile, Pass P, IgemmOperand Operand>
__device__ inline void multiply_stage(const std::uint16_t* stage, int warp_m, int warp_n, Accumulators<Tile>& acc) {
    const int lane = static_cast<int>(threadIdx.x) % 32;
    const std::uint16_t* b_tile = stage + Tile::kBlockM * Tile::kBlockK;
    CONVKIT_IGEMM_UNROLL
    for (int kk = 0; kk < OperandFormat<Operand>::kMmaSteps; ++kk) {
        // A, x4: lanes 8i..8i+7 address matrix i = (rows 0-7 | 8-15) x (chunk 0 | 1 of the step),
        // in the order of the fragment's registers a0..a3 (rows fastest), for 16-bit and tf32.
        std::uint32_t a[Tile::kMmaM][4];
        CONVKIT_IGEMM_UNROLL
        for (int i = 0; i < Tile::kMmaM; ++i) {
            const int row = warp_m * Tile::kWarpM + i * 16 + lane % 16;
            ptx::ldmatrix<4, false>(a[i], stage + swizzled(row, kk * 2 + lane / 16));
            round_operands<Operand>(a[i]);
        }
        // B, x4 over two n8 tiles: matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7),
        // (n 8-15, k 8-15) are b0, b1 of tile 2j and b0, b1 of tile 2j + 1, from the [n][k]
        // tile as stored; backward-data's [k][n] tile is read transposed.
        std::uint32_t b[Tile::kMmaN][2];
        if constexpr (P == Pass::Forward) {
            CONVKIT_IGEMM_UNROLL
            for (int j = 0; j < Tile::kMmaN / 2; ++j) {
                std::uint32_t r[4];
                const int row = warp_n * Tile::kWarpN + j * 16 + lane / 16 * 8 + lane % 8;
                ptx::ldmatrix<4, false>(r, b_tile + swizzled(row, kk * 2 + lane / 8 % 2));
                round_operands<Operand>(r);
                b[2 * j][0] = r[0];
                b[2 * j][1] = r[1];
                b[2 * j + 1][0] = r[2];
                b[2 * j + 1][1] = r[3];
            }
        } else {
            load_b_fragments_kn<Tile, Operand>(b_tile, kk, warp_n, lane, b);
        }
        mma_warp_tile<Tile, Operand>(acc, a, b);
    }
}

// grid: x over M tiles, y over N tiles of a group, z over groups.
template <class Tile, Pass P, IgemmOperand Operand, IgemmOutput Output>
__global__ void __launch_bounds__(Tile::kThreads) conv_igemm_kernel(IgemmParams p) {
    std::uint16_t* shared = dynamic_shared_memory<std::uint16_t>();
    const int block_m = static_cast<int>(blockIdx.x) * Tile::kBlockM;
    const int block_n = static_cast<int>(blockIdx.y) * Tile::kBlockN;
    const int group = static_cast<int>(blockIdx.z);
    const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
    const int warp_m = warp / Tile::kWarpsN, warp_n = warp % Tile::kWarpsN;

    ARows<Tile> rows;
    find_a_rows<Tile, P>(p, block_m, group, rows);
    Accumulators<Tile> acc;
    zero<Tile>(acc);

    run_ring<Tile>(
        shared, (p.gemm_k + OperandFormat<Operand>::kBlockK - 1) / OperandFormat<Operand>::kBlockK,
        [&](int kt, std::uint16_t* stage) { load_stage<Tile, P, Operand>(p, rows, block_n, group, kt, stage); },
        [&](const std::uint16_t* stage) { multiply_stage<Tile, P, Operand>(stage, warp_m, warp_n, acc); });

    // Epilogue straight from the accumulators.
    for_each_accumulator<Tile>(acc, block_m, block_n, warp_m, warp_n, lane, [&](int m, int col, float v) {
        if (m >= p.gemm_m || col >= p.out_group) return;
        const int channel = group * p.out_group + col;
        const std::int64_t index = static_cast<std::int64_t>(m) * p.out_channels + channel;
        if (p.bias != nullptr) v += p.bias[channel];
        if (p.residual != nullptr) v += load_output<Output>(p.residual, index);
        if (p.relu != 0) v = fmaxf(v, 0.0f);
        store_output<Output>(p.y, index, v);
    });
}

template <class Tile, Pass P, IgemmOperand Operand, IgemmOutput Output>
void launch_pass(const IgemmParams& p, int groups, cudaStream_t stream) {
    const LaunchShape shape{
        dim3(static_cast<unsigned>((p.gemm_m + Tile::kBlockM - 1) / Tile::kBlockM),
             static_cast<unsigned>((p.out_group + Tile::kBlockN - 1) / Tile::kBlockN), static_cast<unsigned>(groups)),
        dim3(Tile::kThreads), Tile::kSharedBytes, true};
    launch<conv_igemm_kernel<Tile, P, Operand, Output>>(shape, stream, p);
}

template <class Tile, Pass P, IgemmOperand Operand>
void dispatch_output(const IgemmParams& p, int groups, IgemmOutput output, cudaStream_t stream) {
    switch (output) {
        case IgemmOutput::BFloat16:
            return launch_pass<Tile, P, Operand, IgemmOutput::BFloat16>(p, groups, stream);
        case IgemmOutput::Float16:
            return launch_pass<Tile, P, Operand, IgemmOutput::Float16>(p, groups, stream);
        case IgemmOutput::Float32:
            return launch_pass<Tile, P, Operand, IgemmOutput::Float32>(p, groups, stream);
    }
}

// tf32 writes float32 only (check_call): one instantiation per tile and pass.
template <class Tile, Pass P>
void dispatch_operand(const IgemmParams& p, int groups, IgemmOperand operand, IgemmOutput output, cudaStream_t stream) {
    switch (operand) {
        case IgemmOperand::BFloat16:
            return dispatch_output<Tile, P, IgemmOperand::BFloat16>(p, groups, output, stream);
        case IgemmOperand::Float16:
            return dispatch_output<Tile, P, IgemmOperand::Float16>(p, groups, output, stream);
        case IgemmOperand::TensorFloat32:
            return launch_pass<Tile, P, IgemmOperand::TensorFloat32, IgemmOutput::Float32>(p, groups, stream);
    }
}

// Appends "3x3" for the first `rank` entries. Appends only: GCC 12's -Wrestrict misfires on
// `"literal" + std::string&&` at -O3.
void append_dims(std::string& s, const char* prefix, const std::array<std::int64_t, 3>& v, int rank) {
    s += prefix;
    for (int i = 0; i < rank; ++i) {
        if (i != 0) s += 'x';
        s += std::to_string(v[static_cast<std::size_t>(i)]);
    }
}

constexpr std::int64_t kIntMax = 0x7fffffff;
}  // namespace

std::array<std::int64_t, 3> IgemmConvShape::output() const {
    std::array<std::int64_t, 3> out{1, 1, 1};
    for (std::size_t i = 0; i < 3 && static_cast<int>(i) < rank; ++i) {
        const std::int64_t span = input[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1;
        out[i] = span < 0 || stride[i] <= 0 ? 0 : span / stride[i] + 1;
    }
    return out;
}

std::string IgemmConvShape::to_string() const {
    std::string s = "n";
    s += std::to_string(batch);
    s += " c";
    s += std::to_string(in_channels);
    s += " k";
    s += std::to_string(out_channels);
    s += " g";
    s += std::to_string(groups);
    append_dims(s, " in ", input, rank);
    append_dims(s, " k", kernel, rank);
    append_dims(s, " s", stride, rank);
    append_dims(s, " p", padding, rank);
    append_dims(s, " d", dilation, rank);
    return s;
}

std::string conv_igemm_unsupported_reason(const IgemmConvShape& s, IgemmOperand operand) {
    if (s.rank < 1 || s.rank > 3) return "rank " + std::to_string(s.rank) + " (1, 2 or 3 spatial dims)";
    if (s.batch <= 0 || s.in_channels <= 0 || s.out_channels <= 0 || s.groups <= 0)
        return "batch, channels and groups must be positive";
    if (s.in_channels % s.groups != 0 || s.out_channels % s.groups != 0)
        return "channels " + std::to_string(s.in_channels) + " -> " + std::to_string(s.out_channels) +
               " not divisible by groups " + std::to_string(s.groups);
    const std::int64_t group_in = s.in_channels / s.groups, group_out = s.out_channels / s.groups;
    const std::int64_t vector = operand == IgemmOperand::TensorFloat32 ? 4 : 8;  // channels per 16 bytes
    if (group_in % vector != 0)
        return "input channels per group " + std::to_string(group_in) + " not a multiple of " +
               std::to_string(vector) + " (16-byte cp.async vectors of " + std::to_string(vector) + " channels)";
    if (group_out % vector != 0)
        return "output channels per group " + std::to_string(group_out) + " not a multiple of " +
               std::to_string(vector);
    const auto out = s.output();
    std::int64_t positions = 1, in_elements = s.batch * s.in_channels, taps = 1;
    for (int i = 0; i < s.rank; ++i) {
        const auto d = static_cast<std::size_t>(i);
        if (s.input[d] <= 0 || s.kernel[d] <= 0 || s.stride[d] <= 0 || s.dilation[d] <= 0 || s.padding[d] < 0)
            return "sizes, strides and dilations must be positive, padding not negative";
        if (out[d] <= 0) return "the kernel is larger than the padded input in dim " + std::to_string(i);
        positions *= out[d];
        in_elements *= s.input[d];
        taps *= s.kernel[d];
    }
    if (s.batch * positions > kIntMax || taps * group_in > kIntMax || in_elements > (std::int64_t{1} << 62))
        return "GEMM sizes past 32-bit indices (M = " + std::to_string(s.batch * positions) +
               ", K = " + std::to_string(taps * group_in) + ")";
    for (int i = 0; i < s.rank; ++i) {
        const auto d = static_cast<std::size_t>(i);
        if (s.input[d] + 2 * s.padding[d] + s.dilation[d] * s.kernel[d] > kIntMax / 2)
            return "spatial extent past 32-bit coordinates in dim " + std::to_string(i);
    }
    if (s.groups > 65535) return "more than 65535 groups (the grid's z)";
    if ((group_out + 63) / 64 > 65535) return "more than 65535 column tiles (the grid's y)";
    return {};
}

std::size_t conv_igemm_shared_bytes(IgemmTile tile) {
    return tile == IgemmTile::Large ? LargeTile::kSharedBytes : SmallTile::kSharedBytes;
}

IgemmTile conv_igemm_default_tile(const IgemmConvShape& s) {
    const auto out = s.output();
    const std::int64_t m = s.batch * out[0] * out[1] * out[2];
    const std::int64_t n = s.out_channels / std::max<std::int64_t>(s.groups, 1);
    const std::int64_t large_blocks = (m + 127) / 128 * ((n + 127) / 128) * s.groups;
    return large_blocks >= 2 * 132 ? IgemmTile::Large : IgemmTile::Small;
}

namespace {
// Both passes: checks, the dims as three (rank r's dims last: [1, ..., 1, dims]), the params
// with the source and the written tensor's roles, the tile and type dispatch.
template <Pass P>
void run_pass(const char* op, const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output, IgemmTile tile,
              const void* source, const void* w, const IgemmEpilogue& epilogue, void* y, Stream stream) {
    if constexpr (P == Pass::Forward) {
        check_call(op, s, operand, output, source, w, y, "x", "w", "y");
    } else {
        check_call(op, s, operand, output, source, w, y, "dy", "w", "dx");
    }
    const Dims3 d = dims3(s);
    const auto &in = d.input, &out = d.output, &k = d.kernel, &st = d.stride, &pad = d.padding, &dil = d.dilation;
    const bool forward = P == Pass::Forward;
    const auto& source_dims = forward ? in : out;
    const auto& row_dims = forward ? out : in;
    const std::int64_t source_channels = forward ? s.in_channels : s.out_channels;
    const std::int64_t out_channels = forward ? s.out_channels : s.in_channels;
    const std::int64_t source_group = source_channels / s.groups, out_group = out_channels / s.groups;
    const IgemmParams p{source,
                        w,
                        y,
                        epilogue.bias,
                        epilogue.residual,
                        epilogue.relu ? 1 : 0,
                        i32(source_dims[0]),
                        i32(source_dims[1]),
                        i32(source_dims[2]),
                        i32(row_dims[0]),
                        i32(row_dims[1]),
                        i32(row_dims[2]),
                        i32(k[1]),
                        i32(k[2]),
                        i32(st[0]),
                        i32(st[1]),
                        i32(st[2]),
                        i32(pad[0]),
                        i32(pad[1]),
                        i32(pad[2]),
                        i32(dil[0]),
                        i32(dil[1]),
                        i32(dil[2]),
                        i32(source_channels),
                        i32(source_group),
                        i32(out_channels),
                        i32(out_group),
                        i32(s.batch * row_dims[0] * row_dims[1] * row_dims[2]),
                        i32(k[0] * k[1] * k[2] * source_group)};
    const cudaStream_t cuda_stream = detail::to_cuda(stream);
    if (tile == IgemmTile::Large) {
        dispatch_operand<LargeTile, P>(p, i32(s.groups), operand, output, cuda_stream);
    } else {
        dispatch_operand<SmallTile, P>(p, i32(s.groups), operand, output, cuda_stream);
    }
}
}  // namespace

void conv_igemm_forward(const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output, IgemmTile tile,
                        const void* x, const void* w, const IgemmEpilogue& epilogue, void* y, Stream stream) {
    run_pass<Pass::Forward>("conv_igemm_forward", s, operand, output, tile, x, w, epilogue, y, stream);
}

void conv_igemm_backward_data(const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output, IgemmTile tile,
                              const void* dy, const void* w, const IgemmEpilogue& epilogue, void* dx, Stream stream) {
    run_pass<Pass::BackwardData>("conv_igemm_backward_data", s, operand, output, tile, dy, w, epilogue, dx, stream);
}

CONVKIT_KERNELS_END
