// Tensor maps for the bulk tensor copy (kernels/tensor_map.h): checked by the project's own
// reading of the driver's rules in both builds, then encoded by the driver under nvcc and by the
// emulator in the CPU build.
#include "kernels/tensor_map.h"

#include <cstdint>
#include <string>

#include "convkit/error.h"
#include "cuda/cuda_check.h"

#if defined(CONVKIT_CPU_EMULATION)
#include "emu/ptx_emulation.h"
#else
#include <cuda.h>
#include <cudaTypedefs.h>
#endif

CONVKIT_KERNELS_BEGIN

namespace {
#if !defined(CONVKIT_CPU_EMULATION)
// A driver function, looked up through the runtime (the library links no libcuda).
template <class Function>
Function driver_function(const char* name) {
    void* function = nullptr;
    cudaDriverEntryPointQueryResult found{};
    CONVKIT_CHECK_CUDA(cudaGetDriverEntryPointByVersion(name, &function, 12000, cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || function == nullptr)
        throw CudaError(std::string(name) + ": the CUDA driver has no such entry point (CUDA 12.0 or later needed)");
    return reinterpret_cast<Function>(function);
}

// Each looked up once (a function-local static: thread-safe, and a failed lookup is tried again).
PFN_cuTensorMapEncodeTiled_v12000 driver_encode_tiled() {
    static const auto encode = driver_function<PFN_cuTensorMapEncodeTiled_v12000>("cuTensorMapEncodeTiled");
    return encode;
}

PFN_cuTensorMapEncodeIm2col_v12000 driver_encode_im2col() {
    static const auto encode = driver_function<PFN_cuTensorMapEncodeIm2col_v12000>("cuTensorMapEncodeIm2col");
    return encode;
}

// A driver call's result: a CudaError naming the op and the function where it failed.
void check_driver_result(const char* op, const char* function, CUresult result) {
    if (result != CUDA_SUCCESS)
        throw CudaError(std::string(op) + ": " + function + " failed with CUresult " + std::to_string(result));
}

CUtensorMapDataType driver_type(tma::ElementType type) {
    switch (type) {
        case tma::ElementType::BFloat16:
            return CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
        case tma::ElementType::Float16:
            return CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
        case tma::ElementType::Float32:
            break;
    }
    return CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
}

CUtensorMapSwizzle driver_swizzle(wgmma::Swizzle swizzle) {
    switch (swizzle) {
        case wgmma::Swizzle::Bytes128:
            return CU_TENSOR_MAP_SWIZZLE_128B;
        case wgmma::Swizzle::Bytes64:
            return CU_TENSOR_MAP_SWIZZLE_64B;
        case wgmma::Swizzle::Bytes32:
            return CU_TENSOR_MAP_SWIZZLE_32B;
        case wgmma::Swizzle::None:
            break;
    }
    return CU_TENSOR_MAP_SWIZZLE_NONE;
}

// Drivers up to 13.1 encode maps of tensors under 128 KiB with a bit that makes copies through them
// fail now and then (CUTLASS 4.3.4's changelog: "a driver bug which will cause occasionally errors
// when executing kernels"); CUTLASS clears it (bit 21 of the second 64-bit word) after encoding,
// for tiled and im2col maps alike, and so do we. `extent_bytes`: the tensor's bytes.
void work_around_small_tensor_encoding(tma::TensorMap& map, std::uint64_t extent_bytes) {
    constexpr int kLastAffectedDriver = 13010;
    constexpr std::uint64_t kSmallTensorBytes = 128 * 1024;
    static const int driver = [] {
        int version = 0;
        CONVKIT_CHECK_CUDA(cudaDriverGetVersion(&version));
        return version;
    }();
    if (driver <= kLastAffectedDriver && extent_bytes < kSmallTensorBytes) map.opaque[1] &= ~(std::uint64_t{1} << 21);
}

// The bytes a map's tensor spans: its outermost dim's count times its stride.
template <class Spec>
std::uint64_t extent_bytes(const Spec& spec) {
    const auto outer = static_cast<std::size_t>(spec.rank - 1);
    return spec.dims[outer] * (outer == 0 ? tma::element_bytes(spec.type) : spec.strides[outer]);
}

// A spec's dims, and its rank - 1 byte strides from dimension 1 on, as the driver takes them.
template <class Spec>
void driver_dims(const Spec& spec, cuuint64_t (&dims)[tma::kMaxRank], cuuint64_t (&strides)[tma::kMaxRank]) {
    for (std::size_t i = 0; i < static_cast<std::size_t>(spec.rank); ++i) {
        dims[i] = spec.dims[i];
        if (i > 0) strides[i - 1] = spec.strides[i];
    }
}

static_assert(sizeof(tma::TensorMap) == sizeof(CUtensorMap) && alignof(tma::TensorMap) >= alignof(CUtensorMap));
#endif
}  // namespace

tma::TensorMap encode_tiled_tensor_map(const char* op, const tma::TiledTensorMapSpec& spec) {
    const std::string problem = tma::tiled_tensor_map_problem(spec);
    if (!problem.empty()) throw InvalidArgument(std::string(op) + ": tensor map: " + problem);
    tma::TensorMap map{};
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::encode_tiled_tensor_map(&map, spec);
#else
    cuuint64_t dims[tma::kMaxRank], strides[tma::kMaxRank];
    driver_dims(spec, dims, strides);
    cuuint32_t box[tma::kMaxRank], element_strides[tma::kMaxRank];
    for (std::size_t i = 0; i < static_cast<std::size_t>(spec.rank); ++i) {
        box[i] = spec.box[i];
        element_strides[i] = 1;
    }
    check_driver_result(
        op, "cuTensorMapEncodeTiled",
        driver_encode_tiled()(reinterpret_cast<CUtensorMap*>(&map), driver_type(spec.type),
                              static_cast<cuuint32_t>(spec.rank), const_cast<void*>(spec.global), dims, strides, box,
                              element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, driver_swizzle(spec.swizzle),
                              CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
    work_around_small_tensor_encoding(map, extent_bytes(spec));
#endif
    return map;
}

tma::TensorMap encode_im2col_tensor_map(const char* op, const tma::Im2colTensorMapSpec& spec) {
    const std::string problem = tma::im2col_tensor_map_problem(spec);
    if (!problem.empty()) throw InvalidArgument(std::string(op) + ": im2col tensor map: " + problem);
    tma::TensorMap map{};
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::encode_im2col_tensor_map(&map, spec);
#else
    cuuint64_t dims[tma::kMaxRank], strides[tma::kMaxRank];
    driver_dims(spec, dims, strides);
    cuuint32_t element_strides[tma::kMaxRank];
    for (int i = 0; i < spec.rank; ++i) {
        const bool spatial = i >= 1 && i <= spec.rank - 2;  // C first, N last
        element_strides[i] = spatial ? spec.traversal[static_cast<std::size_t>(i) - 1] : 1;
    }
    check_driver_result(
        op, "cuTensorMapEncodeIm2col",
        driver_encode_im2col()(reinterpret_cast<CUtensorMap*>(&map), driver_type(spec.type),
                               static_cast<cuuint32_t>(spec.rank), const_cast<void*>(spec.global), dims, strides,
                               spec.lower.data(), spec.upper.data(), spec.channels_per_pixel, spec.pixels_per_column,
                               element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, driver_swizzle(spec.swizzle),
                               CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
    work_around_small_tensor_encoding(map, extent_bytes(spec));
#endif
    return map;
}

CONVKIT_KERNELS_END
