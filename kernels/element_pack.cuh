#pragma once
// Packs of consecutive elements moved with one 16-byte access, for bandwidth-bound kernels: a
// warp of 16-byte loads keeps four times the bytes in flight of 4-byte ones and eight times those
// of 2-byte ones, which is what it takes to approach the copy rate. A kernel runs packs where its
// buffers allow it and single elements otherwise, from one template: the batch-norm passes
// (their packs stay within a channel's run) and the flat elementwise ops below.
#include <cstdint>
#include <string>
#include <type_traits>

#include "kernels/kernel_support.cuh"
#include "kernels/kernels_namespace.h"
#include "kernels/ptx.cuh"

CONVKIT_KERNELS_BEGIN

// Elements of T in one 16-byte access: 8 for bfloat16/float16, 4 for float, 2 for double.
template <typename T>
inline constexpr int kPackWidth = 16 / static_cast<int>(sizeof(T));

template <typename T, int Width>
struct alignas(sizeof(T) * Width) ElementPack {
    T value[Width];
};

// Whether every pointer is aligned to a whole pack of Width elements of T (null pointers, such as
// an absent operand, do not matter).
template <typename T, int Width, typename... Pointers>
__host__ __device__ inline bool pack_aligned(const Pointers*... pointers) {
    constexpr std::uintptr_t bytes = sizeof(T) * Width;
    return ((pointers == nullptr || reinterpret_cast<std::uintptr_t>(pointers) % bytes == 0) && ...);
}

// A GPU faults on a pack access off its size ("misaligned address"); the CPU has no such rule,
// so the CPU build checks it here and stops the launch the same way (a KernelFault naming the
// thread), rather than let a launcher that skipped pack_aligned pass its tests.
template <typename T, int Width>
__device__ inline void check_pack_alignment([[maybe_unused]] const T* data) {
#ifdef CONVKIT_CPU_EMULATION
    if (!pack_aligned<T, Width>(data))
        ::convkit::emu::thread_fault("misaligned address: a pack of " + std::to_string(sizeof(ElementPack<T, Width>)) +
                                     " bytes from a buffer off that alignment");
#endif
}

// Pack `pack` of `data` (elements [pack * Width, pack * Width + Width)).
template <int Width, typename T>
__device__ inline ElementPack<T, Width> load_pack(const T* data, std::int64_t pack) {
    check_pack_alignment<T, Width>(data);
    return reinterpret_cast<const ElementPack<T, Width>*>(data)[pack];
}
template <int Width, typename T>
__device__ inline void store_pack(T* data, std::int64_t pack, const ElementPack<T, Width>& values) {
    check_pack_alignment<T, Width>(data);
    reinterpret_cast<ElementPack<T, Width>*>(data)[pack] = values;
}

// Pack `pack` of `data` widened to ComputeType<T>, or zeros where `inside` is false (nothing read).
// 16-bit pairs widen from their 32-bit words: bfloat16's even element shifted up and its odd one
// masked, one instruction an element where each 16-bit value on its own took an extract and a
// shift; float16's by the hardware conversion (ptx::float16_to_float), one instruction where
// convkit/half.h's branch-free software widening takes about twelve. Both are exact, so the values
// are the same (a NaN's payload aside: the CPU build's emulation of the conversion, as the
// hardware's, gives a canonical NaN).
template <int Width, typename T>
__device__ inline void load_widened(const T* data, std::int64_t pack, bool inside, ComputeType<T> (&out)[Width]) {
    if constexpr (is_half_type<T> && Width % 2 == 0) {
        ElementPack<std::uint32_t, Width / 2> words{};  // (load_pack checks the same 16-byte alignment)
        if (inside) words = load_pack<Width / 2>(reinterpret_cast<const std::uint32_t*>(data), pack);
        for (int i = 0; i < Width / 2; ++i) {
            if constexpr (std::is_same_v<T, bfloat16>) {
                out[2 * i] = half_detail::float_from_bits(words.value[i] << 16);
                out[2 * i + 1] = half_detail::float_from_bits(words.value[i] & 0xFFFF0000U);
            } else {
                out[2 * i] = ptx::float16_to_float(static_cast<std::uint16_t>(words.value[i] & 0xFFFFU));
                out[2 * i + 1] = ptx::float16_to_float(static_cast<std::uint16_t>(words.value[i] >> 16));
            }
        }
    } else {
        ElementPack<T, Width> values{};
        if (inside) values = load_pack<Width>(data, pack);
        for (int i = 0; i < Width; ++i) out[i] = static_cast<ComputeType<T>>(values.value[i]);
    }
}

// ---- Blocks across a channels-innermost buffer --------------------------------------------------

// Threads of a block side by side along a row of `packs` adjacent packs (channels-last channels,
// the columns of a sum over rows), the rest of kThreadsPerBlock stacked as row lanes: `most` (a
// power of two dividing kThreadsPerBlock), halved while it exceeds the packs (more would idle).
inline unsigned packs_across(std::int64_t packs, unsigned most) {
    unsigned across = most;
    while (across > 1 && across > packs) across /= 2;
    return across;
}

// ---- Flat elementwise work over packs -----------------------------------------------------------

template <int Width>
using PackWidth = std::integral_constant<int, Width>;

// Calls body(PackWidth<Width>{}, p) for every whole pack p of [0, count) in a grid-stride loop,
// then body(PackWidth<1>{}, i) for each of the count % Width elements left (one per thread of
// the first threads). Launch over ceil(count / Width) threads.
template <int Width, typename Body>
__device__ void for_each_flat_pack(std::int64_t count, Body&& body) {
    const std::int64_t packs = count / Width;
    for (std::int64_t p = global_thread_index(); p < packs; p += global_thread_count()) body(PackWidth<Width>{}, p);
    if constexpr (Width > 1) {
        const std::int64_t tail = packs * Width + global_thread_index();
        if (tail < count) body(PackWidth<1>{}, tail);
    }
}

// out's pack p = f(in's pack p) lane by lane, each value widened to ComputeType<T> and rounded
// once on the store; and the same with two inputs.
template <int Width, typename T, typename F>
__device__ void transform_pack(std::int64_t p, T* out, F&& f, const T* in) {
    using C = ComputeType<T>;
    const ElementPack<T, Width> a = load_pack<Width>(in, p);
    ElementPack<T, Width> result;
    for (int lane = 0; lane < Width; ++lane) result.value[lane] = T(f(static_cast<C>(a.value[lane])));
    store_pack<Width>(out, p, result);
}
template <int Width, typename T, typename F>
__device__ void transform_pack(std::int64_t p, T* out, F&& f, const T* in0, const T* in1) {
    using C = ComputeType<T>;
    const ElementPack<T, Width> a = load_pack<Width>(in0, p);
    const ElementPack<T, Width> b = load_pack<Width>(in1, p);
    ElementPack<T, Width> result;
    for (int lane = 0; lane < Width; ++lane) {
        result.value[lane] = T(f(static_cast<C>(a.value[lane]), static_cast<C>(b.value[lane])));
    }
    store_pack<Width>(out, p, result);
}

// Calls launch_width(PackWidth<W>{}, blocks) with W = kPackWidth<T> when every pointer is aligned
// to a pack (the allocator's buffers are; a view at an odd offset may not be), else W = 1, and
// the blocks that cover count elements W at a time.
template <typename T, typename LaunchWidth, typename... Pointers>
void launch_flat_packs(std::int64_t count, LaunchWidth&& launch_width, const Pointers*... pointers) {
    constexpr int width = kPackWidth<T>;
    if (pack_aligned<T, width>(pointers...)) {
        launch_width(PackWidth<width>{}, grid_for((count + width - 1) / width));
    } else {
        launch_width(PackWidth<1>{}, grid_for(count));
    }
}

CONVKIT_KERNELS_END
