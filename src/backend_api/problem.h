#pragma once
// A convolution or pooling problem: everything a variant needs to decide whether it can run a
// call and to run it. Built once by the op layer at the public API (geometry checked, dtypes and
// layouts of the operands, and the thread's math mode and determinism read there), then handed
// unchanged to the variants: a backend reads no thread setting of its own.
#include <cstdint>

#include "backend_api/geometry.h"
#include "convkit/backend.h"
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "convkit/memory_format.h"
#include "convkit/variants.h"

namespace convkit::detail {

// How an operand's elements are laid out: the tensors' memory format (convkit/memory_format.h),
// one notion under the backend contract's name. Variants declare in supports() which layouts
// they run; the op layer converts its operands (counted in layout_conversions()) to contiguous
// when a tensor is channels-last.
using Layout = MemoryFormat;
inline const char* layout_name(Layout layout) { return memory_format_name(layout); }

// The bias gradient sums dy viewed as [batch, channels, spatial]; it needs no other geometry.
struct BiasGradShape {
    std::int64_t batch = 0;
    std::int64_t channels = 0;
    std::int64_t spatial = 0;
};

// What every problem carries besides its shape: the input x and output y (dtype, layout), the
// accumulation, the math allowed, determinism and the device.
struct ProblemBase {
    DType x_dtype = DType::Float32;
    DType y_dtype = DType::Float32;
    // The narrowest accumulation the caller accepts; a variant may accumulate wider (the
    // reference accumulates in double), never narrower.
    DType accumulate_dtype = DType::Float32;
    Layout x_layout = Layout::Contiguous;
    Layout y_layout = Layout::Contiguous;
    MathMode math = MathMode::Strict;
    bool deterministic = false;
    Device device;

    // The operands' common dtype (the op layer requires them to agree today).
    DType dtype() const { return x_dtype; }
};

// One convolution: the geometry is the convolution's (a transposed convolution is described by
// the convolution it is the adjoint of, geometry.h), x its input, w its weight, y its output.
struct ConvProblem : ProblemBase {
    ConvGeometry geometry;
    BiasGradShape bias_grad;  // for ConvPass::BackwardBias
    DType w_dtype = DType::Float32;
    Layout w_layout = Layout::Contiguous;
    // How a variant with algorithms of its own (cuDNN) picks one: its heuristics or by timing.
    AlgorithmSearch algorithm_search = AlgorithmSearch::Heuristic;

    bool all_contiguous() const {
        return x_layout == Layout::Contiguous && w_layout == Layout::Contiguous && y_layout == Layout::Contiguous;
    }
};

enum class PoolOp : std::uint8_t { Max, Average, AdaptiveAverage };

struct PoolProblem : ProblemBase {
    PoolGeometry geometry;
    PoolOp op = PoolOp::Max;

    bool all_contiguous() const { return x_layout == Layout::Contiguous && y_layout == Layout::Contiguous; }
};

// A problem of `dtype` on `device`, contiguous, with the calling thread's math mode,
// determinism and algorithm search: the op layer's one place that reads those settings.
ConvProblem conv_problem(const ConvGeometry& geometry, DType dtype, Device device);
PoolProblem pool_problem(const PoolGeometry& geometry, PoolOp op, DType dtype, Device device);

}  // namespace convkit::detail
