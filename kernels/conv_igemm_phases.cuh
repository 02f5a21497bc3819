#pragma once
// Backward-data's phases of the stride in the implicit-GEMM kernels' terms (kernels/conv_phase.h
// has the arithmetic of one phase along one dim): the GEMMs a backward-data runs, one per phase
// with positions or one of all phases where they are uniform; a block's own phase in a launch of
// uniform phases; the dx position a GEMM row writes. Shared by the mma.sync kernels
// (kernels/conv_igemm.cu) and the warpgroup-MMA ones (kernels/conv_wgmma.cu). Private to those
// files.
#include <array>
#include <cstdint>
#include <vector>

#include "kernels/conv_igemm_gather.cuh"
#include "kernels/conv_igemm_support.cuh"
#include "kernels/conv_phase.h"

CONVKIT_KERNELS_BEGIN
namespace igemm {

// Which convolution pass a kernel computes; both are the same GEMM machinery with a different
// gather for A and a different layout of B (kernels/conv_igemm.cu's head).
enum class Pass { Forward, BackwardData };

// The dx position (an element offset over the channels) of row j of backward-data's phase
// `phase` (its d, h, w): phase + stride * j per dim.
__device__ inline std::int64_t phase_row_position(const IgemmParams& p, int m, const Coordinates& phase) {
    const Coordinates j = split_row(p, m);
    return ((static_cast<std::int64_t>(j.n) * p.written_d + phase.d + p.stride_d * j.d) * p.written_h + phase.h +
            p.stride_h * j.h) *
               p.written_w +
           phase.w + p.stride_w * j.w;
}

// The element offset of the tensor written for GEMM row m: m itself forward; backward-data, the
// dx position phase + stride * j of the phase's row j.
template <Pass P>
__device__ inline std::int64_t written_row(const IgemmParams& p, int m) {
    if constexpr (P == Pass::Forward) {
        return m;
    } else {
        return phase_row_position(p, m, {0, p.phase_d, p.phase_h, p.phase_w});
    }
}

// Phase q of a launch of uniform phases (IgemmParams::phases: all stride_d x stride_h x stride_w
// of them) as its (d, h, w), w fastest as backward_data_phases orders them.
__device__ inline Coordinates phase_coordinates(const IgemmParams& p, int q) {
    const int rest = q / p.stride_w;
    return {0, rest / p.stride_h, rest % p.stride_h, q - rest * p.stride_w};
}

// The fields of p that differ between backward-data's phases: the phase (d, h, w), and per dim
// its first dy offset and first tap from its axes. constexpr: the host sets them per launch
// (backward_data_params), a block of a launch of uniform phases for its own phase (take_phase).
constexpr void set_phase_fields(IgemmParams& p, const Coordinates& phase, const PhaseAxis& d, const PhaseAxis& h,
                                const PhaseAxis& w) {
    p.phase_d = phase.d;
    p.phase_h = phase.h;
    p.phase_w = phase.w;
    p.row_start_d = d.offset;
    p.row_start_h = h.offset;
    p.row_start_w = w.offset;
    p.first_tap_d = d.first_tap;
    p.first_tap_h = h.first_tap;
    p.first_tap_w = w.first_tap;
}

// p as phase q of a launch of uniform phases, its axes from phase_axis (the host's own rule,
// backward_data_phases). The phases share every other field: the same rows and taps per dim.
__device__ inline void take_phase(IgemmParams& p, int q) {
    const Coordinates c = phase_coordinates(p, q);
    set_phase_fields(p, c, phase_axis(c.d, p.written_d, p.kernel_d, p.stride_d, p.dilation_d, p.padding_d),
                     phase_axis(c.h, p.written_h, p.kernel_h, p.stride_h, p.dilation_h, p.padding_h),
                     phase_axis(c.w, p.written_w, p.kernel_w, p.stride_w, p.dilation_w, p.padding_w));
}

// The filter tap (flat over kernel_d x kernel_h x kernel_w) of backward-data's gathered tap u
// (its d, h, w): first_tap + u * tap_step per dim. B's rows hold the filter at these taps.
__device__ inline int phase_filter_tap(const IgemmParams& p, const Coordinates& u) {
    return ((p.first_tap_d + u.d * p.tap_step_d) * p.kernel_h + p.first_tap_h + u.h * p.tap_step_h) * p.kernel_w +
           p.first_tap_w + u.w * p.tap_step_w;
}

// A block's M tile and phase. Grid x runs over the M tiles of each phase in turn (IgemmParams::
// phases of them, tiles_m each); where a launch runs several phases, p becomes the block's own
// (take_phase). Forward, and a launch of one phase: blockIdx.x and phase 0.
struct BlockTile {
    int tile_m, phase;
};
template <Pass P>
__device__ inline BlockTile take_block_tile(IgemmParams& p, int tiles_m) {
    BlockTile b{static_cast<int>(blockIdx.x), 0};
    if constexpr (P == Pass::BackwardData) {
        if (p.phases > 1) {
            b.phase = b.tile_m / tiles_m;
            b.tile_m -= b.phase * tiles_m;
            take_phase(p, b.phase);
        }
    }
    return b;
}

// The row written for a row of the split slices (phase q's GEMM row m at q * gemm_m + m): what
// conv_igemm_add_split_slices_kernel writes through.
template <Pass P>
struct WrittenRow {
    IgemmParams p;
    __device__ std::int64_t operator()(int row) const {
        if constexpr (P == Pass::BackwardData) {
            if (p.phases > 1) {
                const int q = row / p.gemm_m;
                return phase_row_position(p, row - q * p.gemm_m, phase_coordinates(p, q));
            }
        }
        return written_row<P>(p, row);
    }
};

// One phase of backward-data: its first dx position and its positions and taps per dim
// (D, H, W as Dims3 orders them).
struct BackwardDataPhase {
    std::array<int, 3> phase{0, 0, 0};
    std::array<PhaseAxis, 3> axis;
    std::int64_t positions() const { return std::int64_t{axis[0].rows} * axis[1].rows * axis[2].rows; }
    std::int64_t taps() const { return std::int64_t{axis[0].taps} * axis[1].taps * axis[2].taps; }
};

// The phases that have positions, in launch order.
inline std::vector<BackwardDataPhase> backward_data_phases(const Dims3& d) {
    std::vector<BackwardDataPhase> phases;
    for (int pd = 0; pd < d.stride[0]; ++pd) {
        for (int ph = 0; ph < d.stride[1]; ++ph) {
            for (int pw = 0; pw < d.stride[2]; ++pw) {
                BackwardDataPhase phase;
                phase.phase = {pd, ph, pw};
                for (std::size_t i = 0; i < 3; ++i) {
                    phase.axis[i] = phase_axis(phase.phase[i], i32(d.input[i]), i32(d.kernel[i]), i32(d.stride[i]),
                                               i32(d.dilation[i]), i32(d.padding[i]));
                }
                if (phase.positions() > 0) phases.push_back(phase);
            }
        }
    }
    return phases;
}

inline IgemmParams backward_data_params(const IgemmConvShape& s, const Dims3& d, const BackwardDataPhase& phase,
                                        const void* dy, const void* w, const IgemmEpilogue& epilogue, void* dx) {
    IgemmParams p = common_params(dy, d.output, s.out_channels, s.in_channels, s.groups, w, epilogue, dx);
    const auto& a = phase.axis;
    p.rows_d = FastDivisor(a[0].rows);
    p.rows_h = FastDivisor(a[1].rows);
    p.rows_w = FastDivisor(a[2].rows);
    p.row_step_d = p.row_step_h = p.row_step_w = 1;
    set_phase_fields(p, {0, phase.phase[0], phase.phase[1], phase.phase[2]}, a[0], a[1], a[2]);
    p.tap_reach_d = -a[0].offset_step;
    p.tap_reach_h = -a[1].offset_step;
    p.tap_reach_w = -a[2].offset_step;
    p.gathered_taps_h = FastDivisor(a[1].taps);
    p.gathered_taps_w = FastDivisor(a[2].taps);
    p.kernel_h = i32(d.kernel[1]);
    p.kernel_w = i32(d.kernel[2]);
    p.filter_taps = i32(d.kernel[0] * d.kernel[1] * d.kernel[2]);
    p.tap_step_d = a[0].tap_step;
    p.tap_step_h = a[1].tap_step;
    p.tap_step_w = a[2].tap_step;
    p.stride_d = i32(d.stride[0]);
    p.stride_h = i32(d.stride[1]);
    p.stride_w = i32(d.stride[2]);
    p.written_d = i32(d.input[0]);
    p.written_h = i32(d.input[1]);
    p.written_w = i32(d.input[2]);
    p.kernel_d = i32(d.kernel[0]);
    p.dilation_d = i32(d.dilation[0]);
    p.dilation_h = i32(d.dilation[1]);
    p.dilation_w = i32(d.dilation[2]);
    p.padding_d = i32(d.padding[0]);
    p.padding_h = i32(d.padding[1]);
    p.padding_w = i32(d.padding[2]);
    p.gemm_m = i32(s.batch * phase.positions());
    p.gemm_k = i32(phase.taps() * (s.out_channels / s.groups));
    return p;
}

// Whether one launch can run all the phases: every phase of the stride has positions, and per
// dim the same rows and taps (the input a multiple of the stride and the kernel's taps dealt
// out evenly: a 2x2/2 or 4x4/2 up-convolution, not a 3x3/2 one), so that they are one GEMM shape
// and a block finds its phase's offsets and first taps from the phase alone (take_phase).
inline bool uniform_phases(const Dims3& d, const std::vector<BackwardDataPhase>& phases) {
    const std::int64_t all = d.stride[0] * d.stride[1] * d.stride[2];
    if (phases.size() < 2 || static_cast<std::int64_t>(phases.size()) != all) return false;
    for (const BackwardDataPhase& phase : phases) {
        for (std::size_t i = 0; i < 3; ++i) {
            if (phase.axis[i].rows != phases.front().axis[i].rows || phase.axis[i].taps != phases.front().axis[i].taps)
                return false;
        }
    }
    return true;
}

// One GEMM of a backward-data: its params, and the phase it runs (all of them from the first,
// where params.phases > 1).
struct BackwardDataGemm {
    IgemmParams params;
    std::array<int, 3> phase{0, 0, 0};  // D, H, W
};

// Backward-data's GEMMs in launch order: one of all the phases where they are uniform
// (params.phases their count), else one per phase with positions (a phase that no tap reaches
// has gemm_k 0: its positions get the epilogue of 0).
inline std::vector<BackwardDataGemm> backward_data_gemms(const IgemmConvShape& s, const void* dy, const void* w,
                                                         const IgemmEpilogue& epilogue, void* dx) {
    const Dims3 d = dims3(s);
    const std::vector<BackwardDataPhase> phases = backward_data_phases(d);
    if (uniform_phases(d, phases)) {
        BackwardDataGemm gemm{backward_data_params(s, d, phases.front(), dy, w, epilogue, dx), phases.front().phase};
        gemm.params.phases = i32(static_cast<std::int64_t>(phases.size()));
        return {gemm};
    }
    std::vector<BackwardDataGemm> gemms;
    for (const BackwardDataPhase& phase : phases) {
        gemms.push_back({backward_data_params(s, d, phase, dy, w, epilogue, dx), phase.phase});
    }
    return gemms;
}

}  // namespace igemm
CONVKIT_KERNELS_END
