// Implicit-GEMM convolution on the tensor cores, forward and backward-data (kernels/conv_igemm.h
// has the layouts). Forward, per group, the GEMM D[M x Ng] = A[M x Kg] * B[Kg x Ng] with
//   A(m, k) = x[n, o * stride - padding + tap * dilation, c]  (m = (n, o), k = (tap, c)), never
//             materialised: each 16-byte vector of 8 channels is gathered by cp.async straight
//             from x, zero-filled where the tap falls in the padding or past the edges;
//   B(k, j) = w[j, tap, c], already k-contiguous per output channel: the "col" operand of mma.
// Backward-data (the forward of transposed convolution), per phase of the stride
// (kernels/conv_phase.h; stride 1 is the one phase 0), rows over the phase's dx positions
// i = phase + stride * j:
//   A(m, k) = dy[n, j + offset - u * offset_step, kout]  (m = (n, j), k = (u, kout)), u over the
//             phase's taps only, tap(u) = first_tap + u * tap_step per dim: the taps whose
//             o * stride = i + padding - tap * dilation is a whole position; no zero taps are
//             gathered or multiplied, and a dy position out of range zero-fills;
//   B(k, j) = w[kout, tap(u), j], j-contiguous: stored [k][j] and loaded with ldmatrix.trans.
// A phase no tap reaches has an empty reduction (no k tile): its positions get the epilogue of 0.
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
#include "kernels/conv_igemm_gather.cuh"
#include "kernels/conv_igemm_phases.cuh"
#include "kernels/conv_igemm_support.cuh"
#include "kernels/conv_phase.h"
#include "kernels/fast_division.h"
#include "kernels/launch.cuh"
#include "kernels/ptx.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using namespace igemm;

// Issues the cp.async copies of k tile `kt` into `stage` (A rows first, then B).
template <class Tile, Pass P, IgemmOperand Operand>
__device__ inline void load_stage(const IgemmParams& p, const ARows<Tile>& rows, int block_n, int group, int kt,
                                  std::uint16_t* stage) {
    using Format = OperandFormat<Operand>;
    using Element = typename Format::Element;
    const auto* w_elements = static_cast<const Element*>(p.w);
    const int chunk = static_cast<int>(threadIdx.x) % Tile::kChunks;
    const int first_row = static_cast<int>(threadIdx.x) / Tile::kChunks;
    const int k = kt * Format::kBlockK + chunk * Format::kPerChunk;
    const bool k_valid = k < p.gemm_k;
    gather_a_chunks<Tile, Element>(p, rows, k, [&](int row, const Element* source, int bytes) {
        ptx::cp_async<16>(stage + swizzled(row, chunk), source, bytes);
    });
    std::uint16_t* b_tile = stage + Tile::kBlockM * Tile::kBlockK;
    if constexpr (P == Pass::Forward) {
        // B(k, j) = w[j, tap, c]: row j of the filter is k-contiguous; stored [j][k].
        CONVKIT_UNROLL
        for (int pass = 0; pass < Tile::kPassesB; ++pass) {
            const int row = first_row + pass * Tile::kRowsPerPass;
            const int j = block_n + row;
            const bool inside = k_valid && j < p.out_group;
            const Element* source =
                inside ? w_elements + static_cast<std::int64_t>(group * p.out_group + j) * p.gemm_k + k : w_elements;
            ptx::cp_async<16>(b_tile + swizzled(row, chunk), source, inside ? 16 : 0);
        }
    } else {
        // B(k, j) = w[kout, tap(u), j] with k = (u, kout): j-contiguous for each k; stored [k][j].
        using Kn = KnTile<Tile, Operand>;
        const int j_chunk = static_cast<int>(threadIdx.x) % Kn::kChunks;
        const int j = block_n + j_chunk * Format::kPerChunk;
        const int source_group = p.source_group.divisor();
        CONVKIT_UNROLL
        for (int pass = 0; pass < Kn::kPasses; ++pass) {
            const int row = static_cast<int>(threadIdx.x) / Kn::kChunks + pass * Kn::kRowsPerPass;
            const int kb = kt * Format::kBlockK + row;
            const int u_b = p.source_group.divide(kb), kout = kb - u_b * source_group;
            const int filter_tap = phase_filter_tap(p, split_tap(p, u_b));
            const bool inside = kb < p.gemm_k && j < p.out_group;
            const Element* source =
                inside ? w_elements +
                             (static_cast<std::int64_t>(group * source_group + kout) * p.filter_taps + filter_tap) *
                                 p.out_group +
                             j
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
    CONVKIT_UNROLL
    for (int kk = 0; kk < OperandFormat<Operand>::kMmaSteps; ++kk) {
        // A, x4: lanes 8i..8i+7 address matrix i = (rows 0-7 | 8-15) x (chunk 0 | 1 of the step),
        // in the order of the fragment's registers a0..a3 (rows fastest), for 16-bit and tf32.
        std::uint32_t a[Tile::kMmaM][4];
        CONVKIT_UNROLL
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
            CONVKIT_UNROLL
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

// grid: x over M tiles (of each phase in turn: IgemmParams::phases), y over N tiles of a group,
// z over groups x splits.
template <class Tile, Pass P, IgemmOperand Operand, IgemmOutput Output>
__global__ void __launch_bounds__(Tile::kThreads, kMinBlocksPerSm<Tile, Operand>) conv_igemm_kernel(IgemmParams p) {
    std::uint16_t* shared = dynamic_shared_memory<std::uint16_t>();
    const BlockTile tile = take_block_tile<P>(p, (p.gemm_m + Tile::kBlockM - 1) / Tile::kBlockM);
    const int block_m = tile.tile_m * Tile::kBlockM, phase = tile.phase;
    const int block_n = static_cast<int>(blockIdx.y) * Tile::kBlockN;
    const int group = static_cast<int>(blockIdx.z) / p.splits, split = static_cast<int>(blockIdx.z) % p.splits;
    const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
    const int warp_m = warp / Tile::kWarpsN, warp_n = warp % Tile::kWarpsN;

    ARows<Tile> rows;
    find_a_rows<Tile>(p, block_m, group, rows);
    Accumulators<Tile> acc;
    zero<Tile>(acc);

    const SplitRange range = split_range(
        split, p.tiles_per_split, (p.gemm_k + OperandFormat<Operand>::kBlockK - 1) / OperandFormat<Operand>::kBlockK);
    run_ring<Tile>(
        shared, range.count,
        [&](int step, std::uint16_t* stage) {
            load_stage<Tile, P, Operand>(p, rows, block_n, group, range.first + step, stage);
        },
        [&](const std::uint16_t* stage) { multiply_stage<Tile, P, Operand>(stage, warp_m, warp_n, acc); });

    // To this split's slice at the GEMM's own row (after the rows of the phases before this one),
    // or through the epilogue to the row's place in the tensor written (found once per row):
    // staged through shared memory where 16-byte packs fit, else straight from the accumulators.
    const bool to_slice = p.splits > 1;
    const std::int64_t slice_rows = static_cast<std::int64_t>(p.phases) * p.gemm_m;
    float* const slice = to_slice ? p.slices + split * slice_rows * p.out_channels : nullptr;
    const ResultWriter<Output> write{p.epilogue, slice, p.out_channels, p.out_group, group};
    auto row_of = [&](int m) -> std::int64_t {
        if (m >= p.gemm_m) return -1;
        return to_slice ? static_cast<std::int64_t>(phase) * p.gemm_m + m : written_row<P>(p, m);
    };
    write_accumulators<Tile>(shared, acc, write, block_m, block_n, warp_m, warp_n, lane, row_of);
}

template <class Tile, Pass P, IgemmOperand Operand, IgemmOutput Output>
void launch_pass(const IgemmParams& p, int groups, cudaStream_t stream) {
    const LaunchShape shape{dim3(static_cast<unsigned>(p.phases * ((p.gemm_m + Tile::kBlockM - 1) / Tile::kBlockM)),
                                 static_cast<unsigned>((p.out_group + Tile::kBlockN - 1) / Tile::kBlockN),
                                 static_cast<unsigned>(groups * p.splits)),
                            dim3(Tile::kThreads), Tile::kSharedBytes, true};
    launch<conv_igemm_kernel<Tile, P, Operand, Output>>(shape, stream, p);
    if (p.splits > 1) {
        add_split_slices<Output>(p.slices, p.splits, p.phases * p.gemm_m, p.out_channels, WrittenRow<P>{p}, p.epilogue,
                                 stream);
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
        return "input channels per group " + std::to_string(group_in) + " not a multiple of " + std::to_string(vector) +
               " (16-byte cp.async vectors of " + std::to_string(vector) + " channels)";
    if (group_out % vector != 0)
        return "output channels per group " + std::to_string(group_out) + " not a multiple of " +
               std::to_string(vector);
    const auto out = s.output();
    std::int64_t positions = 1, in_positions = 1, in_elements = s.batch * s.in_channels, taps = 1;
    for (int i = 0; i < s.rank; ++i) {
        const auto d = static_cast<std::size_t>(i);
        if (s.input[d] <= 0 || s.kernel[d] <= 0 || s.stride[d] <= 0 || s.dilation[d] <= 0 || s.padding[d] < 0)
            return "sizes, strides and dilations must be positive, padding not negative";
        if (out[d] <= 0) return "the kernel is larger than the padded input in dim " + std::to_string(i);
        positions *= out[d];
        in_positions *= s.input[d];
        in_elements *= s.input[d];
        taps *= s.kernel[d];
    }
    // The forward's GEMM (M = N x output positions, K = taps x C/g) and backward-data's (M = N x
    // input positions, K = taps x K/g), which can be the larger at big strides: both in 32 bits.
    // One answer for every pass (the reason does not know the pass), so a forward whose
    // backward-data alone would pass 2^31 rows is refused too and runs widened elsewhere: a loss
    // of speed only, at sizes past two billion positions.
    const std::int64_t gemm_m = s.batch * std::max(positions, in_positions);
    const std::int64_t gemm_k = taps * std::max(group_in, group_out);
    if (gemm_m > kIntMax || gemm_k > kIntMax || in_elements > (std::int64_t{1} << 62))
        return "GEMM sizes past 32-bit indices (M = " + std::to_string(gemm_m) + ", K = " + std::to_string(gemm_k) +
               ")";
    for (int i = 0; i < s.rank; ++i) {
        const auto d = static_cast<std::size_t>(i);
        if (s.input[d] + 2 * s.padding[d] + s.dilation[d] * s.kernel[d] > kIntMax / 2)
            return "spatial extent past 32-bit coordinates in dim " + std::to_string(i);
    }
    if (s.groups > 65535) return "more than 65535 groups (the grid's z)";
    if ((std::max(group_in, group_out) + 63) / 64 > 65535) return "more than 65535 column tiles (the grid's y)";
    return {};
}

std::size_t conv_igemm_shared_bytes(IgemmTile tile) {
    return with_tile_config(tile, [](auto config) { return decltype(config)::kSharedBytes; });
}

IgemmTile conv_igemm_default_tile(const IgemmConvShape& s) {
    const auto out = s.output();
    return default_tile(s.batch * out[0] * out[1] * out[2], s.out_channels / std::max<std::int64_t>(s.groups, 1),
                        s.groups);
}

namespace {

template <class Tile>
std::int64_t mma_instructions(const IgemmLaunchPlan& l, std::int64_t groups, IgemmOperand operand) {
    const std::int64_t blocks =
        l.phases * ((l.m + Tile::kBlockM - 1) / Tile::kBlockM) * ((l.n + Tile::kBlockN - 1) / Tile::kBlockN) * groups;
    const std::int64_t mma_per_k_tile = Tile::kWarpsM * Tile::kWarpsN * Tile::kMmaM * Tile::kMmaN * 2;
    return blocks * k_tiles_of(l.k, operand) * mma_per_k_tile;
}

void dispatch_tile(Pass pass, IgemmTile tile, const IgemmParams& p, std::int64_t groups, IgemmOperand operand,
                   IgemmOutput output, cudaStream_t stream) {
    with_tile_config(tile, [&](auto config) {
        using Tile = decltype(config);
        with_operand_and_output(operand, output, [&](auto op, auto out) {
            if (pass == Pass::Forward)
                return launch_pass<Tile, Pass::Forward, decltype(op)::value, decltype(out)::value>(p, i32(groups),
                                                                                                   stream);
            launch_pass<Tile, Pass::BackwardData, decltype(op)::value, decltype(out)::value>(p, i32(groups), stream);
        });
    });
}

// One GEMM launch: its params and its plan, tile and split chosen as the schedule says (each
// left empty from the launch's own GEMM). What conv_igemm_*_plan report is what the launchers
// run: both come from here.
struct Launch {
    IgemmParams params;
    IgemmLaunchPlan plan;
};

Launch plan_launch(const IgemmParams& p, std::int64_t groups, IgemmOperand operand, const IgemmSchedule& schedule) {
    Launch l{p, {}};
    l.plan.m = p.gemm_m;
    l.plan.n = p.out_group;
    l.plan.k = p.gemm_k;
    l.plan.phases = p.phases;
    l.plan.tile = schedule.tile.value_or(default_tile(l.plan.m, l.plan.n, groups, p.phases));
    const std::int64_t k_tiles = k_tiles_of(l.plan.k, operand);
    const std::int64_t blocks = tile_blocks(l.plan.tile, l.plan.m, l.plan.n, groups, p.phases);
    l.plan.splits = schedule.splits.value_or(default_splits(l.plan.tile, blocks, k_tiles, groups));
    l.plan.mma_instructions = with_tile_config(
        l.plan.tile, [&](auto config) { return mma_instructions<decltype(config)>(l.plan, groups, operand); });
    l.params.splits = l.plan.splits;
    l.params.tiles_per_split = tiles_per_split(k_tiles, l.plan.splits);
    return l;
}

std::vector<Launch> forward_launches(const IgemmConvShape& s, IgemmOperand operand, const IgemmSchedule& schedule,
                                     const void* x, const void* w, const IgemmEpilogue& epilogue, void* y) {
    return {plan_launch(forward_params(s, dims3(s), x, w, epilogue, y), s.groups, operand, schedule)};
}

std::vector<Launch> backward_data_launches(const IgemmConvShape& s, IgemmOperand operand, const IgemmSchedule& schedule,
                                           const void* dy, const void* w, const IgemmEpilogue& epilogue, void* dx) {
    std::vector<Launch> launches;
    for (const BackwardDataGemm& gemm : backward_data_gemms(s, dy, w, epilogue, dx)) {
        Launch l = plan_launch(gemm.params, s.groups, operand, schedule);
        if (gemm.params.phases == 1) {  // a launch of uniform phases names none (its plan: the first)
            for (int i = 0; i < s.rank; ++i) {
                l.plan.phase[static_cast<std::size_t>(i)] = gemm.phase[static_cast<std::size_t>(3 - s.rank + i)];
            }
        }
        launches.push_back(l);
    }
    return launches;
}

IgemmPlan plan_of(const IgemmConvShape& s, const std::vector<Launch>& launches) {
    return plan_of_launches<IgemmPlan>(s.groups, launches);
}

// Checks every launch's split and the workspace, then runs them in order on `stream`.
void run_launches(const char* op, Pass pass, const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output,
                  std::vector<Launch> launches, void* workspace, Stream stream) {
    const std::size_t workspace_bytes = plan_of(s, launches).workspace_bytes();
    for (const Launch& l : launches) check_splits(op, l.plan.splits, s.groups, workspace, workspace_bytes);
    for (Launch& l : launches) {
        l.params.slices = static_cast<float*>(workspace);
        dispatch_tile(pass, l.plan.tile, l.params, s.groups, operand, output, detail::to_cuda(stream));
    }
}
}  // namespace

std::int64_t IgemmPlan::multiply_adds() const {
    std::int64_t sum = 0;
    for (const IgemmLaunchPlan& l : launches) sum += l.phases * l.m * l.n * l.k;
    return groups * sum;
}

std::int64_t IgemmPlan::mma_instructions() const {
    std::int64_t sum = 0;
    for (const IgemmLaunchPlan& l : launches) sum += l.mma_instructions;
    return sum;
}

std::size_t IgemmPlan::workspace_bytes() const {
    return largest_split_slice_bytes(groups, launches);
}

IgemmPlan conv_igemm_forward_plan(const IgemmConvShape& s, IgemmOperand operand, IgemmSchedule schedule) {
    if (!conv_igemm_unsupported_reason(s, operand).empty()) return {};
    return plan_of(s, forward_launches(s, operand, schedule, nullptr, nullptr, {}, nullptr));
}

IgemmPlan conv_igemm_backward_data_plan(const IgemmConvShape& s, IgemmOperand operand, IgemmSchedule schedule) {
    if (!conv_igemm_unsupported_reason(s, operand).empty()) return {};
    return plan_of(s, backward_data_launches(s, operand, schedule, nullptr, nullptr, {}, nullptr));
}

void conv_igemm_forward(const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output, IgemmSchedule schedule,
                        const void* x, const void* w, const IgemmEpilogue& epilogue, void* y, void* workspace,
                        Stream stream) {
    const char* op = "conv_igemm_forward";
    check_call(op, s, operand, output, x, w, y, "x", "w", "y");
    run_launches(op, Pass::Forward, s, operand, output, forward_launches(s, operand, schedule, x, w, epilogue, y),
                 workspace, stream);
}

void conv_igemm_backward_data(const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output, IgemmSchedule schedule,
                              const void* dy, const void* w, const IgemmEpilogue& epilogue, void* dx, void* workspace,
                              Stream stream) {
    const char* op = "conv_igemm_backward_data";
    check_call(op, s, operand, output, dy, w, dx, "dy", "w", "dx");
    run_launches(op, Pass::BackwardData, s, operand, output,
                 backward_data_launches(s, operand, schedule, dy, w, epilogue, dx), workspace, stream);
}

CONVKIT_KERNELS_END
