#pragma once
// Named kernel variants: which implementation runs each convolution and pooling pass.
//
// Every implementation of a pass is a variant with a name (`host.reference`, `host.blas`,
// `cuda.direct`, `cudnn`, ...), registered once (docs/architecture.md, "Adding a variant").
// Each pass of a call runs one variant, chosen in this order:
//
//   named       set_conv_variant("cudnn") / VariantGuard, or CONVKIT_CONV_VARIANT=cudnn
//               (per pass: CONVKIT_CONV_FORWARD_VARIANT, ..._BACKWARD_DATA_, ..._BACKWARD_FILTER_,
//               ..._BACKWARD_BIAS_; pooling: CONVKIT_POOL_VARIANT, CONVKIT_POOL_FORWARD_VARIANT,
//               CONVKIT_POOL_BACKWARD_VARIANT; a comma-separated list names one per device kind)
//   measured    set_variant_selection(VariantSelection::Measured) or CONVKIT_VARIANT_SELECTION=measured:
//               every variant that supports the problem is timed once, on its first call, and the
//               fastest runs from then on (cached in memory, and in set_variant_cache_file /
//               CONVKIT_VARIANT_CACHE when given)
//   default     the backend of the tensors' kind (backend.h): Host → host.reference,
//               HostBlas → host.blas, Cuda → cuda.igemm where it runs the problem (bfloat16 or
//               float16, channels-last, channels per group a multiple of 8), else
//               cuda.depthwise (groups == input channels, float32/float64, contiguous), else
//               cuda.tiled (float32/float64, contiguous, zeros padding), else cuda.direct; and
//               a 16-bit problem none of these runs in either memory format (channels per group
//               not a multiple of 8, other padding modes) → cuda.im2col (columns times cuBLAS) in
//               its own dtype rather than widened to float32; Cudnn → cudnn
//
// A name applies to tensors of its variant's kind (a host variant to host tensors, a CUDA one to
// CUDA tensors), like the backends. A named variant that cannot run a call raises NotSupported
// with its reason: nothing falls back to another variant. Settings are per thread, read from the
// environment when a thread first asks.
#include <string>
#include <string_view>
#include <vector>

#include "convkit/device.h"

namespace convkit {

enum class ConvPass { Forward, BackwardData, BackwardFilter, BackwardBias };
enum class PoolPass { Forward, Backward };
inline constexpr ConvPass kConvPasses[] = {ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter,
                                           ConvPass::BackwardBias};
inline constexpr PoolPass kPoolPasses[] = {PoolPass::Forward, PoolPass::Backward};
const char* conv_pass_name(ConvPass pass);  // "forward", "backward_data", "backward_filter", "backward_bias"
const char* pool_pass_name(PoolPass pass);  // "forward", "backward"

// One registered variant of one op family and pass.
struct VariantInfo {
    std::string family;  // "conv" or "pool"
    std::string pass;    // conv_pass_name / pool_pass_name
    std::string name;    // "host.blas"
    DeviceType device;   // the kind of tensors it runs
};
// Every registered variant, per family and pass, in name order.
std::vector<VariantInfo> registered_variants();

// Names the variant for every pass (or one pass) of the family, for tensors of that variant's
// kind. An empty name clears the choice (both kinds). An unknown name is InvalidArgument listing
// the registered ones.
void set_conv_variant(std::string_view name);
void set_conv_variant(ConvPass pass, std::string_view name);
void set_pool_variant(std::string_view name);
void set_pool_variant(PoolPass pass, std::string_view name);
// The variant named for a pass on tensors of `device`, or "" when none is.
std::string conv_variant(ConvPass pass, DeviceType device);
std::string pool_variant(PoolPass pass, DeviceType device);
// The variant that ran the calling thread's most recent pass of the family ("" before any): the
// policy's choice, named, default or measured, for reports (convkit-bench records it per row).
std::string last_conv_variant();
std::string last_pool_variant();

enum class VariantSelection { Default, Measured };
const char* variant_selection_name(VariantSelection selection);  // "default", "measured"
VariantSelection parse_variant_selection(const std::string& name);
VariantSelection variant_selection();
void set_variant_selection(VariantSelection selection);

// Where measured choices are kept between processes (one line per problem); "" for memory only.
// Process-wide; initially CONVKIT_VARIANT_CACHE. Entries are read when the file is set (or first
// needed) and appended as new problems are measured.
void set_variant_cache_file(const std::string& path);
std::string variant_cache_file();
// Forgets every measured choice held in memory (not the file).
void clear_measured_variants();

// Restores the thread's named variants and selection mode at the end of a scope.
class VariantGuard {
public:
    VariantGuard();
    explicit VariantGuard(std::string_view conv_variant);  // and names it for every conv pass
    ~VariantGuard();
    VariantGuard(const VariantGuard&) = delete;
    VariantGuard& operator=(const VariantGuard&) = delete;

private:
    struct Saved;
    Saved* saved_;
};

}  // namespace convkit
