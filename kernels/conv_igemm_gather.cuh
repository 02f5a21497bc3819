#pragma once
// The implicit GEMM's parameters (forward and backward-data) and its A-operand gather (im2col on
// the fly: 16-byte cp.async chunks of channels, zero-filled in the padding), shared by the
// mma.sync kernels (kernels/conv_igemm.cu, forward and backward-data) and the warpgroup-MMA
// forward (kernels/conv_wgmma.cu), which stage the chunks in different shared layouts. A tile type
// gives the gather its thread layout: kChunks 16-byte chunks a row, kRowsPerPass rows a pass of
// the block's threads, kPassesA passes over the block's rows. Private to those files.
#include <array>
#include <cstdint>

#include "kernels/conv_igemm.h"
#include "kernels/conv_igemm_support.cuh"
#include "kernels/fast_division.h"

CONVKIT_KERNELS_BEGIN
namespace igemm {

// Everything a block needs, by value. The spatial dims are always three: rank 1 and 2 are the
// 3-D case with leading dims of size 1 (kernel 1, stride 1, padding 0). "Source" is the tensor
// A gathers from (x forward, dy backward-data); "rows" the dims the GEMM's rows run over (y's
// positions forward, one phase's positions j of dx backward-data). Every division by a launch
// constant is a FastDivisor's multiply and shift.
struct IgemmParams {
    const void* source;  // the operand's elements (OperandFormat::Element)
    const void* w;
    EpilogueOperands epilogue;  // out: the tensor written (y or dx)
    // Split-K: the k tiles dealt out tiles_per_split to a split, `splits` of them; with more than
    // one, each split's sums go to its slice of `slices` (gemm_m x out_channels floats each).
    float* slices;
    int splits, tiles_per_split;
    int source_d, source_h, source_w;
    FastDivisor rows_d, rows_h, rows_w;  // m = ((n * rows_d + rd) * rows_h + rh) * rows_w + rw
    // A's gather per dim: row r's window starts at r * row_step + row_start, and the gathered tap
    // u (k's tap, split by gathered_taps_h and _w) reads start + u * tap_reach. Forward: stride,
    // -padding, dilation, u over the kernel's taps. Backward-data: 1, the phase's offset,
    // -offset_step, u over the phase's taps.
    int row_step_d, row_step_h, row_step_w;
    int row_start_d, row_start_h, row_start_w;
    int tap_reach_d, tap_reach_h, tap_reach_w;
    FastDivisor gathered_taps_h, gathered_taps_w;
    // Backward-data's B: gathered tap u is filter tap first_tap + u * tap_step per dim of the
    // filter's kernel_d x kernel_h x kernel_w = filter_taps.
    int kernel_h, kernel_w, filter_taps;
    int first_tap_d, first_tap_h, first_tap_w;
    int tap_step_d, tap_step_h, tap_step_w;
    // Backward-data's epilogue: row j writes dx position phase + stride * j per dim, of dx's
    // written_d x written_h x written_w.
    int phase_d, phase_h, phase_w;
    int stride_d, stride_h, stride_w;
    int written_d, written_h, written_w;
    // Backward-data's uniform phases (conv_igemm.cu): `phases` phases of the stride run by one
    // launch, all of them (stride_d x stride_h x stride_w), each the same gemm_m x gemm_k GEMM;
    // phase q is (q / (stride_h * stride_w), q / stride_w % stride_h, q % stride_w) and its blocks
    // follow phase q - 1's along grid x. Each block finds its phase's offsets, first taps and
    // phase_* from the geometry below (phase_axis). 1: the one GEMM the fields describe (forward,
    // or one phase).
    int phases;
    int kernel_d, dilation_d, dilation_h, dilation_w, padding_d, padding_h, padding_w;
    int source_channels;          // channels of the source
    FastDivisor source_group;     // per group: the k chunks' channels, k = tap * source_group + c
    int out_channels, out_group;  // channels of the tensor written, per group: GEMM columns
    int gemm_m, gemm_k;           // N * row positions, gathered taps * source_group
};

struct Coordinates {
    int n, d, h, w;
};

// Row m of the GEMM as (image, rd, rh, rw); m < 2^31.
__device__ inline Coordinates split_row(const IgemmParams& p, int m) {
    const int rest_w = p.rows_w.divide(m), rest_h = p.rows_h.divide(rest_w), n = p.rows_d.divide(rest_h);
    return {n, rest_h - n * p.rows_d.divisor(), rest_w - rest_h * p.rows_h.divisor(), m - rest_w * p.rows_w.divisor()};
}

// A gathered tap index as its coordinates (n unused).
__device__ inline Coordinates split_tap(const IgemmParams& p, int tap) {
    const int rest_w = p.gathered_taps_w.divide(tap), d = p.gathered_taps_h.divide(rest_w);
    return {0, d, rest_w - d * p.gathered_taps_h.divisor(), tap - rest_w * p.gathered_taps_w.divisor()};
}

// The rows of A one thread copies: the source image's offset and where the row's window starts
// along each dim. A row past M gets a start no tap brings into range, so its copies zero-fill.
template <class Tile>
struct ARows {
    std::int64_t image[Tile::kPassesA];  // offset of source[n, 0, 0, 0, group's first channel]
    int d0[Tile::kPassesA], h0[Tile::kPassesA], w0[Tile::kPassesA];
};

template <class Tile>
__device__ inline void find_a_rows(const IgemmParams& p, int block_m, int group, ARows<Tile>& rows) {
    const int first_row = static_cast<int>(threadIdx.x) / Tile::kChunks;
    CONVKIT_UNROLL
    for (int pass = 0; pass < Tile::kPassesA; ++pass) {
        const int m = block_m + first_row + pass * Tile::kRowsPerPass;
        if (m < p.gemm_m) {
            const Coordinates r = split_row(p, m);
            rows.image[pass] =
                static_cast<std::int64_t>(r.n) * p.source_d * p.source_h * p.source_w * p.source_channels +
                static_cast<std::int64_t>(group) * p.source_group.divisor();
            rows.d0[pass] = r.d * p.row_step_d + p.row_start_d;
            rows.h0[pass] = r.h * p.row_step_h + p.row_start_h;
            rows.w0[pass] = r.w * p.row_step_w + p.row_start_w;
        } else {
            rows.image[pass] = 0;
            rows.d0[pass] = rows.h0[pass] = rows.w0[pass] = -(1 << 30);
        }
    }
}

// The source coordinate along one dim that a row starting at `start` reads at `reach`
// (u * tap_reach), or false when it reads padding: one bounds check, no division.
__device__ inline bool source_coordinate(int start, int reach, int size, int& at) {
    at = start + reach;
    return static_cast<unsigned>(at) < static_cast<unsigned>(size);
}

// The A chunks one thread copies for gathered k index `k` (kPerChunk channels of one tap, k = tap
// * source_group + c): one chunk for each of its Tile::kPassesA rows (first_row + pass *
// kRowsPerPass, first_row = threadIdx.x / Tile::kChunks), copy(row, source, source_bytes) issuing the cp.async of 16
// bytes, 0 of them from `source` where the tap falls in the padding, past the edges or past the GEMM's k (then
// zero-filled; the tensor itself stands in as source). A chunk's channels never straddle two taps since source_group is
// a multiple of kPerChunk.
template <class Tile, class Element, class Copy>
__device__ inline void gather_a_chunks(const IgemmParams& p, const ARows<Tile>& rows, int k, Copy&& copy) {
    const auto* source_elements = static_cast<const Element*>(p.source);
    const int first_row = static_cast<int>(threadIdx.x) / Tile::kChunks;
    const bool k_valid = k < p.gemm_k;
    // tap = (ud * taps_h + uh) * taps_w + uw over the gathered taps.
    const int tap = p.source_group.divide(k), c = k - tap * p.source_group.divisor();
    const Coordinates u = split_tap(p, tap);
    const int reach_d = u.d * p.tap_reach_d, reach_h = u.h * p.tap_reach_h, reach_w = u.w * p.tap_reach_w;
    CONVKIT_UNROLL
    for (int pass = 0; pass < Tile::kPassesA; ++pass) {
        int sd, sh, sw;
        const bool inside = k_valid && source_coordinate(rows.d0[pass], reach_d, p.source_d, sd) &&
                            source_coordinate(rows.h0[pass], reach_h, p.source_h, sh) &&
                            source_coordinate(rows.w0[pass], reach_w, p.source_w, sw);
        const Element* source =
            inside ? source_elements + rows.image[pass] +
                         ((static_cast<std::int64_t>(sd) * p.source_h + sh) * p.source_w + sw) * p.source_channels + c
                   : source_elements;
        copy(first_row + pass * Tile::kRowsPerPass, source, inside ? 16 : 0);
    }
}

// What both passes' params share: the tensors, the source's dims and channels, the channels
// written, the epilogue.
inline IgemmParams common_params(const void* source, const std::array<std::int64_t, 3>& source_dims,
                                 std::int64_t source_channels, std::int64_t out_channels, std::int64_t groups,
                                 const void* w, const IgemmEpilogue& epilogue, void* y) {
    IgemmParams p{};
    p.source = source;
    p.w = w;
    p.epilogue = {y, epilogue.bias, epilogue.residual, epilogue.relu ? 1 : 0};
    p.splits = 1;
    p.phases = 1;
    p.source_d = i32(source_dims[0]);
    p.source_h = i32(source_dims[1]);
    p.source_w = i32(source_dims[2]);
    p.source_channels = i32(source_channels);
    p.source_group = FastDivisor(i32(source_channels / groups));
    p.out_channels = i32(out_channels);
    p.out_group = i32(out_channels / groups);
    return p;
}

inline IgemmParams forward_params(const IgemmConvShape& s, const Dims3& d, const void* x, const void* w,
                                  const IgemmEpilogue& epilogue, void* y) {
    IgemmParams p = common_params(x, d.input, s.in_channels, s.out_channels, s.groups, w, epilogue, y);
    p.rows_d = FastDivisor(i32(d.output[0]));
    p.rows_h = FastDivisor(i32(d.output[1]));
    p.rows_w = FastDivisor(i32(d.output[2]));
    p.row_step_d = i32(d.stride[0]);
    p.row_step_h = i32(d.stride[1]);
    p.row_step_w = i32(d.stride[2]);
    p.row_start_d = -i32(d.padding[0]);
    p.row_start_h = -i32(d.padding[1]);
    p.row_start_w = -i32(d.padding[2]);
    p.tap_reach_d = i32(d.dilation[0]);
    p.tap_reach_h = i32(d.dilation[1]);
    p.tap_reach_w = i32(d.dilation[2]);
    p.gathered_taps_h = FastDivisor(i32(d.kernel[1]));
    p.gathered_taps_w = FastDivisor(i32(d.kernel[2]));
    p.gemm_m = i32(s.batch * d.output[0] * d.output[1] * d.output[2]);
    p.gemm_k = i32(d.kernel[0] * d.kernel[1] * d.kernel[2] * (s.in_channels / s.groups));
    return p;
}

}  // namespace igemm
CONVKIT_KERNELS_END
