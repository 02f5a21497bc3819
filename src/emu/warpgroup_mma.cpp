// wgmma.fence / mma_async / commit_group / wait_group on the CPU, after the PTX ISA's
// "Asynchronous Warpgroup Level Matrix Multiply-Accumulate Instructions": operand layouts in
// kernels/wgmma_descriptor.h, the accumulator layout below, the asynchrony in emu/warpgroup_mma.h.
#include "emu/warpgroup_mma.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <source_location>
#include <string>

#include "emu/async_copy.h"
#include "emu/emulator.h"
#include "emu/ptx_emulation.h"
#include "kernels/wgmma_descriptor.h"

namespace convkit::emu {

void WarpgroupMmas::reset(std::size_t threads) {
    groups_.assign((threads + kThreads - 1) / kThreads, Warpgroup{});
}

std::string WarpgroupMmas::unfinished() const {
    for (std::size_t g = 0; g < groups_.size(); ++g) {
        if (!groups_[g].issued.empty()) {
            return "warpgroup " + std::to_string(g) + " returned with " + std::to_string(groups_[g].issued.size()) +
                   " wgmma.mma_async not covered by a wgmma.wait_group (their accumulators were never defined)";
        }
    }
    return "";
}

namespace ptx {
namespace {
constexpr int kThreads = WarpgroupMmas::kThreads;
constexpr int kM = 64;

// k of one mma and the bytes of one operand element: 32 bytes of k per row either way.
int k_of(MmaInput input) {
    return input == MmaInput::TensorFloat32 ? 8 : 16;
}
int element_bytes(MmaInput input) {
    return input == MmaInput::TensorFloat32 ? 4 : 2;
}

float operand_value(const unsigned char* p, MmaInput input) {
    if (input == MmaInput::TensorFloat32) {
        std::uint32_t bits;
        std::memcpy(&bits, p, sizeof(bits));
        return tensor_core_tf32_value(bits);
    }
    std::uint16_t bits;
    std::memcpy(&bits, p, sizeof(bits));
    return input == MmaInput::BFloat16 ? bfloat16_to_float(bits) : float16_to_float(bits);
}

std::string site_text(const std::source_location& site) {
    return std::string(site.file_name()) + ":" + std::to_string(site.line());
}

struct MmaArrival {
    MmaInput input;
    int n;
    float* d;
    std::uint64_t a_descriptor, b_descriptor;
    bool accumulate;
    bool mn_major_a, mn_major_b;  // the transpose flags
};

// The accumulator D (64 x N, f32) of m64nNk16, PTX ISA "Register Fragments and Shared Memory
// Matrix Layouts" > "Matrix Fragments for wgmma.m64nNk16" (the D figure; CUTLASS's
// CLayout_64xN): warp w of the warpgroup holds rows 16w..16w+15; in it lane l (g = l / 4,
// t = l % 4) holds register i (0 <= i < N / 2) at row 16w + g + 8 * ((i / 2) % 2), column
// 8 * (i / 4) + 2t + i % 2: m16n8's C fragment, once per 8 columns.
int d_row(int thread, int i) {
    return 16 * (thread / 32) + thread % 32 / 4 + 8 * (i / 2 % 2);
}
int d_col(int thread, int i) {
    return 8 * (i / 4) + 2 * (thread % 4) + i % 2;
}

// An operand's (rows x k) values, element (row, k) at the descriptor's K-major or MN-major
// address; every byte read is remembered with its value for the wait's check.
std::vector<float> read_operand(const WarpgroupLanes& lanes, const char* which, std::uint64_t descriptor, int rows,
                                MmaInput input, bool mn_major, WarpgroupMmas::Issued& issued) {
    const wgmma::Descriptor d = wgmma::decode_descriptor(descriptor);
    if (d.base_offset != 0) {
        warpgroup_fault(lanes, 0,
                        std::string("wgmma.mma_async: the ") + which + " descriptor has matrix base offset " +
                            std::to_string(d.base_offset) +
                            " (the emulator models tiles that start on their swizzle's repeat boundary, offset 0)");
    }
    const int k_count = k_of(input), bytes = element_bytes(input);
    std::vector<float> values(static_cast<std::size_t>(rows * k_count));
    for (int r = 0; r < rows; ++r) {
        for (int k = 0; k < k_count; ++k) {
            const std::uint32_t address = mn_major ? wgmma::mn_major_element_address(d, r, k, bytes)
                                                   : wgmma::k_major_element_address(d, r, k, bytes);
            const unsigned char* p = shared_window_pointer(address, static_cast<std::size_t>(bytes));
            if (p == nullptr) {
                warpgroup_fault(lanes, 0,
                                std::string("wgmma.mma_async: element (") + std::to_string(r) + ", " +
                                    std::to_string(k) + ") of " + which + " is at shared-window address " +
                                    std::to_string(address) + ", outside the block's dynamic shared memory");
            }
            const int writer = block_async_copies().pending_writer(p, static_cast<std::size_t>(bytes));
            if (writer >= 0) {
                warpgroup_fault(lanes, 0,
                                std::string("wgmma.mma_async reads element (") + std::to_string(r) + ", " +
                                    std::to_string(k) + ") of " + which + ", the destination of a cp.async of thread " +
                                    std::to_string(writer) + " before that thread's cp.async.wait_group");
            }
            const int unfenced = block_async_copies().unfenced_writer(p, static_cast<std::size_t>(bytes));
            if (unfenced >= 0) {
                warpgroup_fault(lanes, 0,
                                std::string("wgmma.mma_async reads element (") + std::to_string(r) + ", " +
                                    std::to_string(k) + ") of " + which + ", written through the generic proxy by " +
                                    "thread " + std::to_string(unfenced) + " (a landed cp.async or a shared store) " +
                                    "with no fence.proxy.async by that thread since: the async proxy need not see it");
            }
            for (int i = 0; i < bytes; ++i) issued.operands.emplace_back(p + i, p[i]);
            values[static_cast<std::size_t>(r * k_count + k)] = operand_value(p, input);
        }
    }
    return values;
}

// Every thread must pass what thread 0 passes: the instruction is the warpgroup's.
void check_uniform(const WarpgroupLanes& lanes, const MmaArrival& first) {
    for (int t = 1; t < kThreads; ++t) {
        const auto& in = *static_cast<const MmaArrival*>(lanes.thread[t]->input);
        if (in.a_descriptor != first.a_descriptor || in.b_descriptor != first.b_descriptor ||
            in.accumulate != first.accumulate || in.n != first.n || in.input != first.input ||
            in.mn_major_a != first.mn_major_a || in.mn_major_b != first.mn_major_b) {
            warpgroup_fault(lanes, t,
                            "wgmma.mma_async: thread " + std::to_string(t) +
                                " of the warpgroup passes other descriptors, scale-d, transpose flags or shape than "
                                "thread 0");
        }
    }
}

// The value an accumulator has for this mma: the held result of the latest mma still in flight
// on the same registers, else the registers themselves.
const float* accumulator_input(const WarpgroupMmas::Warpgroup& state, int thread, const float* d, int registers,
                               const WarpgroupLanes& lanes) {
    for (auto it = state.issued.rbegin(); it != state.issued.rend(); ++it) {
        if (it->accumulators[static_cast<std::size_t>(thread)] != d) continue;
        if (it->registers != registers)
            warpgroup_fault(lanes, thread, "wgmma.mma_async chains onto an mma in flight of another shape N");
        return it->results.data() + static_cast<std::ptrdiff_t>(thread) * registers;
    }
    return d;
}

// D = A * B (+ D when accumulating). Each product of two bf16/f16 (or tf32) values is exact in
// float; the 16 (8) products of the k step are summed in float in ascending k, and that sum is
// added to the accumulator in float. The GPU's order and internal precision are not specified,
// so results agree with it to float rounding, exactly on small integers.
void evaluate_mma(const WarpgroupLanes& lanes) {
    const auto& first = *static_cast<const MmaArrival*>(lanes.thread[0]->input);
    check_uniform(lanes, first);
    WarpgroupMmas::Warpgroup& state = block_warpgroup_mmas().of(lanes.warpgroup);
    if (!state.fenced) {
        warpgroup_fault(lanes, 0,
                        "wgmma.mma_async without a wgmma.fence since the warpgroup's start or its last "
                        "wgmma.wait_group (the PTX ISA asks for one before the first mma_async and after any "
                        "other access to its registers)");
    }
    const int registers = first.n / 2;
    const auto k_count = static_cast<std::size_t>(k_of(first.input));
    WarpgroupMmas::Issued issued;
    issued.registers = registers;
    const std::vector<float> a = read_operand(lanes, "A", first.a_descriptor, kM, first.input, first.mn_major_a, issued);
    const std::vector<float> b =
        read_operand(lanes, "B", first.b_descriptor, first.n, first.input, first.mn_major_b, issued);
    issued.results.resize(static_cast<std::size_t>(kThreads) * static_cast<std::size_t>(registers));
    for (int t = 0; t < kThreads; ++t) {
        float* d = static_cast<const MmaArrival*>(lanes.thread[t]->input)->d;
        const float* c = accumulator_input(state, t, d, registers, lanes);
        for (int i = 0; i < registers; ++i) {
            const std::size_t row = static_cast<std::size_t>(d_row(t, i)), col = static_cast<std::size_t>(d_col(t, i));
            float sum = 0.0f;
            for (std::size_t k = 0; k < k_count; ++k) sum += a[row * k_count + k] * b[col * k_count + k];
            issued.results[static_cast<std::size_t>(t * registers + i)] = first.accumulate ? c[i] + sum : sum;
        }
        issued.accumulators[static_cast<std::size_t>(t)] = d;
    }
    // Undefined until the wait: NaN.
    for (float* d : issued.accumulators) std::fill(d, d + registers, std::numeric_limits<float>::quiet_NaN());
    state.issued.push_back(std::move(issued));
}

void evaluate_fence(const WarpgroupLanes& lanes) {
    block_warpgroup_mmas().of(lanes.warpgroup).fenced = true;
}

void evaluate_commit(const WarpgroupLanes& lanes) {
    WarpgroupMmas::Warpgroup& state = block_warpgroup_mmas().of(lanes.warpgroup);
    for (WarpgroupMmas::Issued& issued : state.issued)
        if (issued.group < 0) issued.group = state.committed_groups;
    ++state.committed_groups;  // an empty group too, as on the GPU
}

struct WaitArrival {
    int allowed_pending;
};

// Lands the results of every committed group but the newest `allowed_pending`, in issue order.
void evaluate_wait(const WarpgroupLanes& lanes) {
    const int allowed = static_cast<const WaitArrival*>(lanes.thread[0]->input)->allowed_pending;
    WarpgroupMmas::Warpgroup& state = block_warpgroup_mmas().of(lanes.warpgroup);
    const int below = state.committed_groups - std::max(allowed, 0);
    auto done = [&](const WarpgroupMmas::Issued& issued) { return issued.group >= 0 && issued.group < below; };
    for (const WarpgroupMmas::Issued& issued : state.issued) {
        if (!done(issued)) continue;
        for (const auto& [p, byte] : issued.operands) {
            if (*p != byte) {
                warpgroup_fault(lanes, 0,
                                "wgmma.wait_group: a shared-memory operand of a wgmma.mma_async in the group it "
                                "waits for was overwritten before this wait (the GPU may read operands until then)");
            }
        }
        for (int t = 0; t < kThreads; ++t)
            std::memcpy(issued.accumulators[static_cast<std::size_t>(t)],
                        issued.results.data() + static_cast<std::ptrdiff_t>(t) * issued.registers,
                        sizeof(float) * static_cast<std::size_t>(issued.registers));
    }
    std::erase_if(state.issued, done);
    state.fenced = false;
}
}  // namespace

void wgmma_fence(const std::source_location& site) {
    warpgroup_collective({"wgmma.fence", 0xffffffffu, site, nullptr, nullptr}, evaluate_fence);
}

static const char* mma_name(MmaInput input) {
    switch (input) {
        case MmaInput::BFloat16:
            return "wgmma.mma_async.m64nNk16.f32.bf16";
        case MmaInput::Float16:
            return "wgmma.mma_async.m64nNk16.f32.f16";
        case MmaInput::TensorFloat32:
            break;
    }
    return "wgmma.mma_async.m64nNk8.f32.tf32";
}

void wgmma_mma_async(MmaInput input, int n, float* d, std::uint64_t a_descriptor, std::uint64_t b_descriptor,
                     bool accumulate, bool mn_major_a, bool mn_major_b, const std::source_location& site) {
    if (n % 8 != 0 || n < 8 || n > 256)
        thread_fault(std::string(mma_name(input)) + " with N " + std::to_string(n) + " at " + site_text(site) +
                     ": N must be a multiple of 8 from 8 to 256");
    if (input == MmaInput::TensorFloat32 && (mn_major_a || mn_major_b))
        thread_fault(std::string(mma_name(input)) + " at " + site_text(site) +
                     ": tf32 operands are K-major only (no transpose flags)");
    const MmaArrival in{input, n, d, a_descriptor, b_descriptor, accumulate, mn_major_a, mn_major_b};
    const char* name = mma_name(input);
    warpgroup_collective({name, 0xffffffffu, site, &in, nullptr}, evaluate_mma);
}

void wgmma_commit_group(const std::source_location& site) {
    warpgroup_collective({"wgmma.commit_group", 0xffffffffu, site, nullptr, nullptr}, evaluate_commit);
}

void wgmma_wait_group(int allowed_pending, const std::source_location& site) {
    const WaitArrival in{allowed_pending};
    warpgroup_collective({"wgmma.wait_group", 0xffffffffu, site, &in, nullptr}, evaluate_wait);
}

std::uint32_t shared_window_address(const void* p) {
    return emu::shared_window_address(p);
}

}  // namespace ptx
}  // namespace convkit::emu
