#pragma once
// Packs of consecutive elements moved with one 16-byte access, for bandwidth-bound kernels: a
// warp of 16-byte loads keeps four times the bytes in flight of 4-byte ones and eight times those
// of 2-byte ones, which is what it takes to approach the copy rate. A kernel runs packs where its
// buffers allow it (pack_width_fits) and single elements otherwise, from one template.
#include <cstdint>

#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

// Elements of T in one 16-byte access: 8 for bfloat16/float16, 4 for float, 2 for double.
template <typename T>
inline constexpr int kPackWidth = 16 / static_cast<int>(sizeof(T));

template <typename T, int Width>
struct alignas(sizeof(T) * Width) ElementPack {
    T value[Width];
};

// Pack `pack` of `data` (elements [pack * Width, pack * Width + Width)).
template <int Width, typename T>
__device__ inline ElementPack<T, Width> load_pack(const T* data, std::int64_t pack) {
    return reinterpret_cast<const ElementPack<T, Width>*>(data)[pack];
}
template <int Width, typename T>
__device__ inline void store_pack(T* data, std::int64_t pack, const ElementPack<T, Width>& values) {
    reinterpret_cast<ElementPack<T, Width>*>(data)[pack] = values;
}

// Whether every pointer is aligned to a whole pack of Width elements of T (null pointers, such as
// an absent operand, do not matter).
template <typename T, int Width, typename... Pointers>
bool pack_aligned(const Pointers*... pointers) {
    constexpr std::uintptr_t bytes = sizeof(T) * Width;
    return ((pointers == nullptr || reinterpret_cast<std::uintptr_t>(pointers) % bytes == 0) && ...);
}

CONVKIT_KERNELS_END
