#include "emu/ptx_emulation.h"

#include <cstring>
#include <sstream>
#include <string>

#include "emu/async_copy.h"
#include "emu/emulator.h"

namespace convkit::emu::ptx {

float float16_to_float(std::uint16_t bits) {
    const std::uint32_t sign = (bits >> 15) & 1u;
    const int exponent = (bits >> 10) & 0x1f;
    const std::uint32_t mantissa = bits & 0x3ffu;
    float magnitude;
    if (exponent == 0) {
        magnitude = static_cast<float>(mantissa) * 0x1p-24f;  // subnormal
    } else if (exponent == 31) {
        magnitude = mantissa == 0 ? __builtin_inff() : __builtin_nanf("");
    } else {
        magnitude = static_cast<float>(mantissa | 0x400u) * static_cast<float>(1u << exponent) * 0x1p-25f;
    }
    return sign != 0 ? -magnitude : magnitude;
}

float bfloat16_to_float(std::uint16_t bits) {
    const std::uint32_t widened = std::uint32_t{bits} << 16;
    float value;
    std::memcpy(&value, &widened, sizeof(value));
    return value;
}

std::uint32_t pair_takes_maximum(MmaInput pair, std::uint32_t a, std::uint32_t b) {
    std::uint32_t mask = 0;
    for (int half = 0; half < 2; ++half) {
        const auto bits_of = [&](std::uint32_t word) { return static_cast<std::uint16_t>(word >> (16 * half)); };
        const auto value_of = [&](std::uint32_t word) {
            return pair == MmaInput::BFloat16 ? bfloat16_to_float(bits_of(word)) : float16_to_float(bits_of(word));
        };
        const float x = value_of(a), y = value_of(b);
        if (x > y || x != x) mask |= 0xFFFFu << (16 * half);
    }
    return mask;
}

float tensor_core_tf32_value(std::uint32_t bits) {
    const std::uint32_t kept = bits & ~0x1fffu;
    float value;
    std::memcpy(&value, &kept, sizeof(value));
    return value;
}

std::uint16_t float_to_bfloat16(float value) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);  // quiet NaN
    bits += 0x7fffu + ((bits >> 16) & 1u);  // to nearest, ties to even; overflow carries into infinity
    return static_cast<std::uint16_t>(bits >> 16);
}

std::uint16_t float_to_float16(float value) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
    const std::uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
    if (magnitude >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds past 65504
    const int exponent = static_cast<int>(magnitude >> 23) - 127;
    if (exponent < -25) return sign;  // below half the smallest subnormal: to zero
    // The significand with its hidden bit, shifted so that the f16 unit in the last place is 1:
    // normal results keep 11 bits, subnormals (exponent < -14) fewer, at a fixed scale of 2^-24.
    const std::uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
    const int shift = exponent < -14 ? -exponent - 1 : 13;  // bits of the float significand dropped
    std::uint32_t kept = significand >> shift;
    const std::uint32_t rest = significand & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (kept & 1u) != 0)) ++kept;
    if (exponent < -14) return static_cast<std::uint16_t>(sign | kept);  // may round up to the smallest normal
    // Normal: kept has 11 bits (or 12 after rounding up, which the exponent field absorbs).
    return static_cast<std::uint16_t>(sign | ((static_cast<std::uint32_t>(exponent + 14) << 10) + kept));
}

std::uint32_t round_to_tf32(std::uint32_t float_bits) {
    constexpr std::uint32_t kDropped = 0x1fffu;  // the 13 mantissa bits tf32 does not keep
    if ((float_bits & 0x7fffffffu) > 0x7f800000u) return (float_bits | 0x00400000u) & ~kDropped;  // quiet NaN
    // Sign and magnitude: adding half a unit in the last place to the magnitude rounds ties away
    // from zero; a carry out of the mantissa raises the exponent (up to infinity).
    return (float_bits + 0x1000u) & ~kDropped;
}

namespace {
constexpr int kWarpSize = 32;
constexpr unsigned kFullWarp = 0xffffffffu;

// Element `half` (0: low 16 bits, 1: high) of a packed register.
std::uint16_t half_of(std::uint32_t reg, int half) {
    return static_cast<std::uint16_t>(reg >> (16 * half));
}

struct MmaLane {
    MmaInput input;
    const std::uint32_t* a;
    const std::uint32_t* b;
    const float* c;
};

// The fragment layouts of m16n8k16 (PTX ISA), for lane l: group g = l / 4, t = l % 4.
//   A (16x16, row): a_i (i = 0..7, two per register) at row g + 8 * ((i / 2) % 2), column
//                   2t + (i % 2) + 8 * (i / 4).
//   B (16x8, col):  b_i (i = 0..3) at row (k) 2t + (i % 2) + 8 * (i / 2), column g.
//   C, D (16x8):    c_i (i = 0..3) at row g + 8 * (i / 2), column 2t + (i % 2).
int a_row(int lane, int i) {
    return lane / 4 + 8 * ((i / 2) % 2);
}
int a_col(int lane, int i) {
    return 2 * (lane % 4) + (i % 2) + 8 * (i / 4);
}
int b_row(int lane, int i) {
    return 2 * (lane % 4) + (i % 2) + 8 * (i / 2);
}
int b_col(int lane, int) {
    return lane / 4;
}
int c_row(int lane, int i) {
    return lane / 4 + 8 * (i / 2);
}
int c_col(int lane, int i) {
    return 2 * (lane % 4) + (i % 2);
}

// d = c + a * b into every lane's four accumulators (rows and columns of c's layout): each
// product exact in double, the sum rounded to float once.
template <int K>
void write_accumulators(const WarpLanes& lanes, const double (&a)[16][K], const double (&b)[K][8],
                        const double (&c)[16][8]) {
    for (int l = 0; l < kWarpSize; ++l) {
        auto* d = static_cast<float*>(lanes.lane[l]->output);
        for (int i = 0; i < 4; ++i) {
            const int row = c_row(l, i), col = c_col(l, i);
            double sum = c[row][col];
            for (int k = 0; k < K; ++k) sum += a[row][k] * b[k][col];
            d[i] = static_cast<float>(sum);
        }
    }
}

void evaluate_mma(const WarpLanes& lanes) {
    double a[16][16], b[16][8], c[16][8];
    for (int l = 0; l < kWarpSize; ++l) {
        const auto& in = *static_cast<const MmaLane*>(lanes.lane[l]->input);
        auto convert = [&](std::uint16_t bits) {
            return static_cast<double>(in.input == MmaInput::BFloat16 ? bfloat16_to_float(bits)
                                                                      : float16_to_float(bits));
        };
        for (int i = 0; i < 8; ++i) a[a_row(l, i)][a_col(l, i)] = convert(half_of(in.a[i / 2], i % 2));
        for (int i = 0; i < 4; ++i) b[b_row(l, i)][b_col(l, i)] = convert(half_of(in.b[i / 2], i % 2));
        for (int i = 0; i < 4; ++i) c[c_row(l, i)][c_col(l, i)] = in.c[i];
    }
    write_accumulators(lanes, a, b, c);
}

// The fragment layouts of m16n8k8 .tf32 (PTX ISA), for lane l: group g = l / 4, t = l % 4.
//   A (16x8, row): a_i (i = 0..3, one per register) at row g + 8 * (i % 2), column t + 4 * (i / 2).
//   B (8x8, col):  b_i (i = 0..1) at row (k) t + 4 * i, column g.
//   C, D:          as m16n8k16's.
int tf32_a_row(int lane, int i) {
    return lane / 4 + 8 * (i % 2);
}
int tf32_a_col(int lane, int i) {
    return lane % 4 + 4 * (i / 2);
}
int tf32_b_row(int lane, int i) {
    return lane % 4 + 4 * i;
}

void evaluate_mma_tf32(const WarpLanes& lanes) {
    double a[16][8], b[8][8], c[16][8];
    for (int l = 0; l < kWarpSize; ++l) {
        const auto& in = *static_cast<const MmaLane*>(lanes.lane[l]->input);
        for (int i = 0; i < 4; ++i) a[tf32_a_row(l, i)][tf32_a_col(l, i)] = tensor_core_tf32_value(in.a[i]);
        for (int i = 0; i < 2; ++i) b[tf32_b_row(l, i)][b_col(l, i)] = tensor_core_tf32_value(in.b[i]);
        for (int i = 0; i < 4; ++i) c[c_row(l, i)][c_col(l, i)] = in.c[i];
    }
    write_accumulators(lanes, a, b, c);
}

struct LdmatrixLane {
    const unsigned char* row;
};

std::string address_text(const void* p) {
    std::ostringstream text;
    text << p;
    return text.str();
}

template <int Matrices, bool Transpose>
void evaluate_ldmatrix(const WarpLanes& lanes) {
    const unsigned char* rows[4][8] = {};
    for (int m = 0; m < Matrices; ++m) {
        for (int r = 0; r < 8; ++r) {
            const int lane = 8 * m + r;
            const unsigned char* row = static_cast<const LdmatrixLane*>(lanes.lane[lane]->input)->row;
            if (reinterpret_cast<std::uintptr_t>(row) % 16 != 0) {
                lane_fault(lanes, lane,
                           "ldmatrix row address " + address_text(row) + " of lane " + std::to_string(lane) +
                               " is not 16-byte aligned");
            }
            const int writer = block_async_copies().pending_writer(row, 16);
            if (writer >= 0) {
                lane_fault(lanes, lane,
                           "ldmatrix of lane " + std::to_string(lane) + " reads " + address_text(row) +
                               ", the destination of a cp.async of thread " + std::to_string(writer) +
                               " before that thread's cp.async.wait_group");
            }
            rows[m][r] = row;
        }
    }
    auto element = [&](int m, int row, int col) {
        std::uint16_t value;
        std::memcpy(&value, rows[m][row] + 2 * col, sizeof(value));
        return std::uint32_t{value};
    };
    for (int l = 0; l < kWarpSize; ++l) {
        auto* out = static_cast<std::uint32_t*>(lanes.lane[l]->output);
        for (int m = 0; m < Matrices; ++m) {
            // Lane l holds (row l/4, columns 2(l%4), +1); transposed, (rows 2(l%4), +1, column l/4).
            const int pair = 2 * (l % 4), single = l / 4;
            out[m] = Transpose ? element(m, pair, single) | element(m, pair + 1, single) << 16
                               : element(m, single, pair) | element(m, single, pair + 1) << 16;
        }
    }
}

template <int Matrices, bool Transpose>
constexpr const char* ldmatrix_name() {
    if constexpr (Matrices == 1) return Transpose ? "ldmatrix.x1.trans" : "ldmatrix.x1";
    if constexpr (Matrices == 2) return Transpose ? "ldmatrix.x2.trans" : "ldmatrix.x2";
    return Transpose ? "ldmatrix.x4.trans" : "ldmatrix.x4";
}

template <int Matrices, bool Transpose>
void ldmatrix_of(std::uint32_t* registers, const void* row, const std::source_location& site) {
    const LdmatrixLane in{static_cast<const unsigned char*>(row)};
    warp_collective({ldmatrix_name<Matrices, Transpose>(), kFullWarp, site, &in, registers},
                    evaluate_ldmatrix<Matrices, Transpose>);
}
}  // namespace

void mma_m16n8k16(MmaInput input, float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2],
                  const float (&c)[4], const std::source_location& site) {
    const MmaLane in{input, a, b, c};
    float out[4];
    const char* name = input == MmaInput::BFloat16 ? "mma.sync.m16n8k16.f32.bf16" : "mma.sync.m16n8k16.f32.f16";
    warp_collective({name, kFullWarp, site, &in, out}, evaluate_mma);
    std::memcpy(d, out, sizeof(out));  // d may alias c
}

void mma_m16n8k8_tf32(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2], const float (&c)[4],
                      const std::source_location& site) {
    const MmaLane in{MmaInput::BFloat16, a, b, c};  // the input type is implied by the evaluation
    float out[4];
    warp_collective({"mma.sync.m16n8k8.f32.tf32", kFullWarp, site, &in, out}, evaluate_mma_tf32);
    std::memcpy(d, out, sizeof(out));  // d may alias c
}

namespace {
// Faults an access of `bytes` bytes at `p` by `instruction` that is not `bytes`-aligned or reads
// the destination of a cp.async before that copy's wait.
void check_shared_read(const void* p, int bytes, const char* instruction, const std::source_location& site) {
    const std::string where = std::string(site.file_name()) + ":" + std::to_string(site.line());
    if (reinterpret_cast<std::uintptr_t>(p) % static_cast<std::uintptr_t>(bytes) != 0) {
        thread_fault(std::string(instruction) + " of " + address_text(p) + " at " + where + " is not " +
                     std::to_string(bytes) + "-byte aligned");
    }
    const int writer = block_async_copies().pending_writer(p, bytes);
    if (writer >= 0) {
        thread_fault(std::string(instruction) + " at " + where + " reads " + address_text(p) +
                     ", the destination of a cp.async of thread " + std::to_string(writer) +
                     " before that thread's cp.async.wait_group");
    }
}
}  // namespace

std::uint32_t load_shared_b32(const void* p, const std::source_location& site) {
    check_shared_read(p, 4, "ld.shared.b32", site);
    std::uint32_t word;
    std::memcpy(&word, p, sizeof(word));
    return word;
}

void round_shared_chunk_to_tf32(void* chunk, const std::source_location& site) {
    check_shared_read(chunk, 16, "ld.shared.v4.b32", site);
    std::uint32_t words[4];
    std::memcpy(words, chunk, sizeof(words));
    for (std::uint32_t& word : words) word = round_to_tf32(word);
    std::memcpy(chunk, words, sizeof(words));
    block_async_copies().generic_write(thread_rank(), chunk, sizeof(words));
}

void fence_proxy_async_shared() {
    block_async_copies().fence_proxy_async(thread_rank());
    fence_barrier_inits(thread_rank());
}

void ldmatrix(int matrices, bool transpose, std::uint32_t* registers, const void* row,
              const std::source_location& site) {
    switch (matrices * 2 + (transpose ? 1 : 0)) {
        case 2:
            return ldmatrix_of<1, false>(registers, row, site);
        case 3:
            return ldmatrix_of<1, true>(registers, row, site);
        case 4:
            return ldmatrix_of<2, false>(registers, row, site);
        case 5:
            return ldmatrix_of<2, true>(registers, row, site);
        case 8:
            return ldmatrix_of<4, false>(registers, row, site);
        case 9:
            return ldmatrix_of<4, true>(registers, row, site);
        default:
            thread_fault("ldmatrix of " + std::to_string(matrices) + " matrices (1, 2 or 4)");
    }
}

void cp_async(void* shared_destination, const void* global_source, std::size_t bytes, std::size_t source_bytes) {
    if (reinterpret_cast<std::uintptr_t>(shared_destination) % bytes != 0 ||
        reinterpret_cast<std::uintptr_t>(global_source) % bytes != 0) {
        thread_fault("cp.async of " + std::to_string(bytes) + " bytes from " + address_text(global_source) + " to " +
                     address_text(shared_destination) + ": addresses must be aligned to the size");
    }
    switch_point();  // the copy is issued; others may run before it lands
    block_async_copies().issue(thread_rank(), shared_destination, global_source, bytes, source_bytes);
}

void cp_async_commit_group() {
    block_async_copies().commit(thread_rank());
}

void cp_async_wait_group(int allowed_pending) {
    block_async_copies().wait(thread_rank(), allowed_pending);
    switch_point();
}

}  // namespace convkit::emu::ptx
