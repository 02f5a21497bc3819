// The choice of variant per pass: the thread's named variants, the measured winners (in memory
// and in an optional file), and the default backend's variant.
#include "backend_api/selection.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "convkit/tensor.h"
#include "core/check.h"
#include "cuda/device_timer.h"

namespace convkit {

const char* conv_pass_name(ConvPass pass) {
    switch (pass) {
        case ConvPass::Forward: return "forward";
        case ConvPass::BackwardData: return "backward_data";
        case ConvPass::BackwardFilter: return "backward_filter";
        case ConvPass::BackwardBias: return "backward_bias";
    }
    return "unknown";
}

const char* pool_pass_name(PoolPass pass) { return pass == PoolPass::Forward ? "forward" : "backward"; }

const char* variant_selection_name(VariantSelection selection) {
    return selection == VariantSelection::Default ? "default" : "measured";
}

VariantSelection parse_variant_selection(const std::string& name) {
    if (name == "default") return VariantSelection::Default;
    if (name == "measured") return VariantSelection::Measured;
    throw InvalidArgument(
        detail::concat("variant selection: unknown selection '", name, "' (choose default or measured)"));
}

namespace detail {
namespace {

// Per family: its variant type, passes and environment variables.
template <typename V>
struct Family;

template <>
struct Family<ConvVariant> {
    using Pass = ConvPass;
    static constexpr int kPasses = 4;
    static constexpr const char* kName = "conv";
    static constexpr const char* kAllPassesVariable = "CONVKIT_CONV_VARIANT";
    static constexpr std::array<const char*, 4> kPassVariables = {
        "CONVKIT_CONV_FORWARD_VARIANT", "CONVKIT_CONV_BACKWARD_DATA_VARIANT", "CONVKIT_CONV_BACKWARD_FILTER_VARIANT",
        "CONVKIT_CONV_BACKWARD_BIAS_VARIANT"};
    static const std::vector<const ConvVariant*>& all() { return conv_variants(); }
    static const ConvVariant* find(std::string_view name) { return find_conv_variant(name); }
    static const char* pass_name(ConvPass pass) { return conv_pass_name(pass); }
};

template <>
struct Family<PoolVariant> {
    using Pass = PoolPass;
    static constexpr int kPasses = 2;
    static constexpr const char* kName = "pool";
    static constexpr const char* kAllPassesVariable = "CONVKIT_POOL_VARIANT";
    static constexpr std::array<const char*, 2> kPassVariables = {"CONVKIT_POOL_FORWARD_VARIANT",
                                                                  "CONVKIT_POOL_BACKWARD_VARIANT"};
    static const std::vector<const PoolVariant*>& all() { return pool_variants(); }
    static const PoolVariant* find(std::string_view name) { return find_pool_variant(name); }
    static const char* pass_name(PoolPass pass) { return pool_pass_name(pass); }
};

int kind_index(DeviceType type) { return type == DeviceType::Host ? 0 : 1; }

// The named variants of one family: [device kind][pass], null where none is named.
template <typename V>
using Slots = std::array<std::array<const V*, Family<V>::kPasses>, 2>;

template <typename V>
std::string registered_names() {
    std::string names;
    for (const V* v : Family<V>::all()) names += concat(names.empty() ? "" : ", ", v->name());
    return names.empty() ? std::string("none") : names;
}

template <typename V>
const V* find_or_throw(std::string_view name, std::string_view where) {
    const V* v = Family<V>::find(name);
    if (v == nullptr) {
        throw InvalidArgument(concat(where, ": unknown ", Family<V>::kName, " variant '", name, "' (registered: ",
                                     registered_names<V>(), ")"));
    }
    return v;
}

// Names `text` (a comma-separated list, one per device kind) for the passes in [first, last).
template <typename V>
void name_variants(Slots<V>& slots, std::string_view text, int first, int last, std::string_view where) {
    while (!text.empty()) {
        const std::size_t comma = text.find(',');
        const std::string_view name = text.substr(0, comma);
        if (!name.empty()) {
            const V* v = find_or_throw<V>(name, where);
            for (int p = first; p < last; ++p) slots[kind_index(v->device_type())][p] = v;
        }
        text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    }
}

template <typename V>
Slots<V> slots_from_environment() {
    Slots<V> slots{};
    if (const char* all = std::getenv(Family<V>::kAllPassesVariable)) {
        name_variants<V>(slots, all, 0, Family<V>::kPasses, Family<V>::kAllPassesVariable);
    }
    for (int p = 0; p < Family<V>::kPasses; ++p) {
        const char* variable = Family<V>::kPassVariables[static_cast<std::size_t>(p)];
        if (const char* one = std::getenv(variable)) name_variants<V>(slots, one, p, p + 1, variable);
    }
    return slots;
}

thread_local std::optional<Slots<ConvVariant>> thread_conv_slots;
thread_local std::optional<Slots<PoolVariant>> thread_pool_slots;
thread_local std::optional<VariantSelection> thread_selection;
// The variant of the thread's most recent pass of each family (last_conv_variant).
thread_local std::string thread_last_conv_variant;
thread_local std::string thread_last_pool_variant;

template <typename V>
std::string& last_variant_storage() {
    if constexpr (std::is_same_v<V, ConvVariant>) {
        return thread_last_conv_variant;
    } else {
        return thread_last_pool_variant;
    }
}

template <typename V>
std::optional<Slots<V>>& slot_storage();
template <>
std::optional<Slots<ConvVariant>>& slot_storage<ConvVariant>() {
    return thread_conv_slots;
}
template <>
std::optional<Slots<PoolVariant>>& slot_storage<PoolVariant>() {
    return thread_pool_slots;
}

template <typename V>
Slots<V>& named_slots() {
    auto& slots = slot_storage<V>();
    if (!slots) slots = slots_from_environment<V>();
    return *slots;
}

// ---- measured winners ----------------------------------------------------------------------

// Everything that can make two problems prefer different variants, as numbers.
using ProblemKey = std::vector<std::int64_t>;

void append_dims(ProblemKey& key, const SpatialDims& dims) { key.insert(key.end(), dims.begin(), dims.end()); }

ProblemKey key_of(const ConvProblem& p, ConvPass pass) {
    const ConvGeometry& g = p.geometry;
    ProblemKey key{0, static_cast<int>(pass), static_cast<int>(p.device.type), p.device.index, g.spatial_rank,
                   g.batch, g.in_channels, g.out_channels, g.groups, static_cast<int>(g.padding_mode)};
    for (const SpatialDims* d : {&g.input, &g.output, &g.kernel, &g.stride, &g.dilation, &g.pad_begin, &g.pad_end}) {
        append_dims(key, *d);
    }
    key.insert(key.end(), {p.bias_grad.batch, p.bias_grad.channels, p.bias_grad.spatial, static_cast<int>(p.x_dtype),
                           static_cast<int>(p.w_dtype), static_cast<int>(p.y_dtype),
                           static_cast<int>(p.accumulate_dtype), static_cast<int>(p.x_layout),
                           static_cast<int>(p.w_layout), static_cast<int>(p.y_layout), static_cast<int>(p.math),
                           p.deterministic ? 1 : 0, static_cast<int>(p.algorithm_search)});
    return key;
}

ProblemKey key_of(const PoolProblem& p, PoolPass pass) {
    const PoolGeometry& g = p.geometry;
    ProblemKey key{1, static_cast<int>(pass), static_cast<int>(p.device.type), p.device.index, g.spatial_rank,
                   g.batch, g.channels, static_cast<int>(p.op), g.count_include_pad ? 1 : 0};
    for (const SpatialDims* d : {&g.input, &g.output, &g.kernel, &g.stride, &g.padding, &g.dilation}) {
        append_dims(key, *d);
    }
    key.insert(key.end(), {static_cast<int>(p.x_dtype), static_cast<int>(p.y_dtype),
                           static_cast<int>(p.accumulate_dtype), static_cast<int>(p.x_layout),
                           static_cast<int>(p.y_layout), static_cast<int>(p.math), p.deterministic ? 1 : 0});
    return key;
}

// The winners by problem, and the file they are kept in. Names, not pointers, so that a file
// written by a build with other variants still reads (an unknown name is measured again).
struct MeasuredCache {
    std::mutex mutex;
    std::map<ProblemKey, std::string> winners;
    std::optional<std::string> file;  // unset until first asked: then CONVKIT_VARIANT_CACHE
    bool file_loaded = false;
};

MeasuredCache& measured() {
    static auto* cache = new MeasuredCache();
    return *cache;
}

// Caller holds the mutex.
const std::string& cache_file_locked(MeasuredCache& c) {
    if (!c.file) {
        const char* path = std::getenv("CONVKIT_VARIANT_CACHE");
        c.file = path != nullptr ? path : "";
    }
    return *c.file;
}

// Lines "<key numbers...> <variant name>"; anything unreadable is skipped (a file from another
// version is a cache, not an input).
void load_file_locked(MeasuredCache& c) {
    if (c.file_loaded) return;
    c.file_loaded = true;
    const std::string& path = cache_file_locked(c);
    if (path.empty()) return;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::vector<std::string> words;
        for (std::string w; fields >> w;) words.push_back(w);
        if (words.size() < 2) continue;
        ProblemKey key;
        bool ok = true;
        for (std::size_t i = 0; i + 1 < words.size() && ok; ++i) {
            char* end = nullptr;
            key.push_back(std::strtoll(words[i].c_str(), &end, 10));
            ok = end != nullptr && *end == '\0';
        }
        if (ok) c.winners[key] = words.back();
    }
}

void store_winner(const ProblemKey& key, const char* name) {
    MeasuredCache& c = measured();
    std::lock_guard lock(c.mutex);
    c.winners[key] = name;
    const std::string& path = cache_file_locked(c);
    if (path.empty()) return;
    std::ofstream out(path, std::ios::app);
    for (std::int64_t k : key) out << k << ' ';
    out << name << '\n';
    if (!out) throw IoError(concat("variant cache: cannot append to '", path, "'"));
}

template <typename V>
const V* cached_winner(const ProblemKey& key) {
    MeasuredCache& c = measured();
    std::lock_guard lock(c.mutex);
    load_file_locked(c);
    auto it = c.winners.find(key);
    return it == c.winners.end() ? nullptr : Family<V>::find(it->second);
}

template <typename V, typename Problem, typename Pass, typename Operands>
void run_with_workspace(const V& variant, const Problem& problem, Pass pass, const Operands& operands, Stream stream) {
    const std::size_t bytes = variant.workspace(problem, pass);
    if (bytes == 0) {
        variant.run(problem, pass, operands, WorkspaceView{}, stream);
        return;
    }
    Tensor scratch = scratch_tensor(bytes, problem.device);
    variant.run(problem, pass, operands, WorkspaceView{scratch.raw_data(), bytes}, stream);
}

// Milliseconds of one run of `variant`: the median of three timed runs after a warm-up run (so
// first-use costs, such as cuDNN plans or lazily loaded kernels, and one preempted run do not
// decide). CUDA variants are timed by events on the stream, host ones by the steady clock.
template <typename V, typename Problem, typename Pass, typename Operands>
double run_time_ms(const V& variant, const Problem& problem, Pass pass, const Operands& operands, Stream stream) {
    const auto run = [&] { run_with_workspace(variant, problem, pass, operands, stream); };
    run();
    std::array<double, 3> times{};
    for (double& t : times) {
        if (problem.device.type == DeviceType::CUDA) {
            t = device_time_ms(stream, run);
        } else {
            const auto start = std::chrono::steady_clock::now();
            run();
            t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        }
    }
    std::sort(times.begin(), times.end());
    return times[1];
}

// Times every variant that supports the problem on the call's own operands (every pass
// overwrites its output; run_choice then runs the winner, whose result is the one kept). A
// variant that refuses at run time (cuDNN finding no deterministic algorithm) drops out.
template <typename V, typename Problem, typename Pass, typename Operands>
const V* measure(std::string_view op, const Problem& problem, Pass pass, const Operands& operands, Stream stream) {
    const V* best = nullptr;
    double best_time = std::numeric_limits<double>::infinity();
    std::string reasons;
    for (const V* v : Family<V>::all()) {
        if (v->device_type() != problem.device.type) continue;
        std::string reason;
        if (!v->supports(problem, pass, &reason)) {
            reasons += concat("; ", v->name(), " ", reason);
            continue;
        }
        try {
            const double time = run_time_ms(*v, problem, pass, operands, stream);
            if (time < best_time) {
                best_time = time;
                best = v;
            }
        } catch (const NotSupported& e) {
            reasons += concat("; ", v->name(), ": ", e.what());
        } catch (const OutOfMemory& e) {
            // A candidate whose workspace does not fit (cuda.im2col's column blocks) drops out;
            // the allocator has released what it took, and the others may still run.
            reasons += concat("; ", v->name(), ": ", e.what());
        }
    }
    if (best == nullptr) {
        throw NotSupported(concat(op, ": no ", Family<V>::kName, " variant runs the ", Family<V>::pass_name(pass),
                                  " pass of this problem (", reasons.empty() ? "none registered" : reasons.substr(2),
                                  ")"));
    }
    store_winner(key_of(problem, pass), best->name());
    return best;
}

// ---- default: the thread's backend -----------------------------------------------------------

// The variants a backend runs by default, most specialised first: the first of them (of the
// family asked) that supports a problem runs it. The CUDA backend runs the tensor-core implicit
// GEMM where it applies (16-bit, channels-last, channels per group a multiple of 8, sm_80+), the
// depthwise kernels for depthwise convolutions (float32/float64, contiguous), the tiled implicit
// GEMM on the ordinary cores for other float32/float64 ones (contiguous, zeros padding), and the
// direct kernels everywhere else (other padding modes, the bias gradient).
std::vector<std::string_view> default_variant_names(Backend backend) {
    switch (backend) {
        case Backend::Host: return {"host.reference"};
        case Backend::HostBlas: return {"host.blas"};
        case Backend::Cuda: return {"cuda.igemm", "cuda.depthwise", "cuda.tiled", "cuda.direct"};
        case Backend::Cudnn: return {"cudnn"};
    }
    return {};
}

// The variants a backend falls back on by default: run only where none of its own variants
// (above) runs the problem in either activation layout, so that the op layer still converts a
// layout for them first. The CUDA backend's is cuda.im2col, for the 16-bit problems the tensor
// cores refuse (channels per group not a multiple of 8, padding other than zeros; float16 below
// compute capability 8.0, where cuda.im2col refuses bfloat16): they then run in their own dtype
// on cuBLAS's 16-bit GEMM instead of being widened to float32 for the float32 kernels. Every
// other problem has a variant of its own that needs no column matrix (docs/architecture.md,
// "cuda.im2col").
std::vector<std::string_view> fallback_variant_names(Backend backend) {
    if (backend == Backend::Cuda) return {"cuda.im2col"};
    return {};
}

[[noreturn]] void backend_not_built(std::string_view op, Backend backend) {
    if (backend == Backend::HostBlas) {
        throw NotSupported(concat(op, ": this build has no host-blas backend (configured with ",
                                  "CONVKIT_WITH_OPENBLAS=OFF; choose the host backend)"));
    }
    if (backend == Backend::Cudnn) {
        throw NotSupported(concat(op, ": this build has no cuDNN backend (configured with CONVKIT_WITH_CUDNN=OFF)"));
    }
    throw NotSupported(concat(op, ": the ", backend_name(backend), " backend has no variant registered"));
}

Backend backend_of(const ProblemBase& problem) {
    return problem.device.is_host() ? default_host_backend() : default_backend();
}

// A shape rule ahead of the backend's list: the variant that runs this pass of the problem best
// whatever the list says, or empty. A convolution that is one matrix product (is_matrix_product:
// its one output position reads the whole input) goes to cuda.im2col for its three GEMM passes:
// one GEMM (cuBLAS) on x in place, where the implicit GEMMs would spread a few rows over a grid
// of tiles and, for a transposed layer from 1x1 (DCGAN's first), gather mostly padding. Not the
// bias gradient: a bias-only problem's geometry is a placeholder (which would read as a matrix
// product), and the list's channel sums give the same bits in either layout.
std::string_view shape_rule_variant(const ConvProblem& problem, ConvPass pass) {
    const bool rule =
        pass != ConvPass::BackwardBias && backend_of(problem) == Backend::Cuda && is_matrix_product(problem.geometry);
    return rule ? "cuda.im2col" : std::string_view{};
}
std::string_view shape_rule_variant(const PoolProblem&, PoolPass) {
    return {};
}

// The first of the backend's own default variants that supports the problem, after its shape
// rule (null if none).
template <typename V, typename Problem, typename Pass>
const V* first_default_supporting(const Problem& problem, Pass pass) {
    if (const std::string_view rule = shape_rule_variant(problem, pass); !rule.empty()) {
        const V* v = Family<V>::find(rule);
        if (v != nullptr && v->supports(problem, pass)) return v;
    }
    for (std::string_view name : default_variant_names(backend_of(problem))) {
        const V* v = Family<V>::find(name);
        if (v != nullptr && v->supports(problem, pass)) return v;
    }
    return nullptr;
}

// Whether the backend's fallback variants may run a problem none of its own runs: none of its
// own runs it in the other activation layout either (the op layer converts for those instead).
template <typename V, typename Problem, typename Pass>
bool fallback_applies(const Problem& problem, Pass pass) {
    const MemoryFormat other =
        problem.x_layout == MemoryFormat::Contiguous ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
    Problem in_other = problem;
    in_other.x_layout = in_other.y_layout = other;
    return first_default_supporting<V>(in_other, pass) == nullptr;
}

// The first of the backend's default variants that supports the problem, then its fallbacks
// where they apply. When none does, the message gives the last one's reason (the backend's general
// variant, or the fallback) and then the others'.
template <typename V, typename Problem, typename Pass>
const V& checked_default(std::string_view op, const Problem& problem, Pass pass) {
    if (const V* own = first_default_supporting<V>(problem, pass)) return *own;  // the common case, one scan
    const Backend backend = backend_of(problem);
    std::string general_reason, other_reasons;
    const V* refused = nullptr;
    std::vector<std::string_view> names = default_variant_names(backend);
    if (fallback_applies<V>(problem, pass)) {
        for (std::string_view name : fallback_variant_names(backend)) names.push_back(name);
    }
    for (std::string_view name : names) {
        const V* v = Family<V>::find(name);
        if (v == nullptr) continue;
        if (refused != nullptr) {
            other_reasons += concat(other_reasons.empty() ? "" : "; ", refused->name(), " ", general_reason);
        }
        if (v->supports(problem, pass, &general_reason)) return *v;
        refused = v;
    }
    if (refused == nullptr) backend_not_built(op, backend);
    throw NotSupported(concat(op, ": the ", backend_name(backend), " backend ", general_reason,
                              other_reasons.empty() ? "" : concat(" (", other_reasons, ")")));
}

template <typename V, typename Problem, typename Pass>
void check_named(std::string_view op, const V& v, const Problem& problem, Pass pass) {
    std::string reason;
    if (!v.supports(problem, pass, &reason)) {
        throw NotSupported(concat(op, ": the variant ", v.name(), " named for the ", Family<V>::pass_name(pass),
                                  " pass ", reason));
    }
}

template <typename V, typename Choice, typename Problem, typename Pass>
Choice choose(std::string_view op, const Problem& problem, Pass pass) {
    const V* named = named_slots<V>()[kind_index(problem.device.type)][static_cast<std::size_t>(pass)];
    if (named != nullptr) {
        check_named(op, *named, problem, pass);
        return {named, false};
    }
    if (variant_selection() == VariantSelection::Measured) {
        const V* winner = cached_winner<V>(key_of(problem, pass));
        if (winner != nullptr && winner->supports(problem, pass)) return {winner, false};
        return {nullptr, true};
    }
    return {&checked_default<V>(op, problem, pass), false};
}

// What choose() would run supports the problem: the named variant; in measured mode any variant
// of the device (the measurement times only those that support it); else the default backend's.
template <typename V, typename Problem, typename Pass>
bool policy_supports_problem(const Problem& problem, Pass pass) {
    const V* named = named_slots<V>()[kind_index(problem.device.type)][static_cast<std::size_t>(pass)];
    if (named != nullptr) return named->supports(problem, pass);
    if (variant_selection() == VariantSelection::Measured) {
        for (const V* v : Family<V>::all()) {
            if (v->device_type() == problem.device.type && v->supports(problem, pass)) return true;
        }
        return false;
    }
    if (first_default_supporting<V>(problem, pass) != nullptr) return true;
    if (!fallback_applies<V>(problem, pass)) return false;
    for (std::string_view name : fallback_variant_names(backend_of(problem))) {
        const V* v = Family<V>::find(name);
        if (v != nullptr && v->supports(problem, pass)) return true;
    }
    return false;
}

template <typename V, typename Choice, typename Problem, typename Pass, typename Operands>
void run_choice(std::string_view op, const Problem& problem, Pass pass, Choice& choice, const Operands& operands,
                Stream stream) {
    if (choice.measure) {
        // Another call of the same problem may have measured it since this choice was made.
        const V* winner = cached_winner<V>(key_of(problem, pass));
        choice.variant = winner != nullptr && winner->supports(problem, pass)
                             ? winner
                             : measure<V>(op, problem, pass, operands, stream);
        choice.measure = false;
    }
    run_with_workspace(*choice.variant, problem, pass, operands, stream);
    last_variant_storage<V>() = choice.variant->name();
}

template <typename V>
void set_named(std::string_view name, int first, int last, std::string_view where) {
    Slots<V>& slots = named_slots<V>();
    if (name.empty()) {
        for (auto& kind : slots) {
            for (int p = first; p < last; ++p) kind[static_cast<std::size_t>(p)] = nullptr;
        }
        return;
    }
    const V* v = find_or_throw<V>(name, where);
    for (int p = first; p < last; ++p) slots[kind_index(v->device_type())][static_cast<std::size_t>(p)] = v;
}

template <typename V>
std::string named_for(int pass, DeviceType device) {
    const V* v = named_slots<V>()[kind_index(device)][static_cast<std::size_t>(pass)];
    return v != nullptr ? v->name() : "";
}

}  // namespace

Tensor scratch_tensor(std::size_t bytes, Device device) {
    const auto words = static_cast<std::int64_t>((bytes + 7) / 8);
    return Tensor::empty(Shape{words}, DType::Int64, device);
}

ConvChoice choose_variant(std::string_view op, const ConvProblem& problem, ConvPass pass) {
    return choose<ConvVariant, ConvChoice>(op, problem, pass);
}

PoolChoice choose_variant(std::string_view op, const PoolProblem& problem, PoolPass pass) {
    return choose<PoolVariant, PoolChoice>(op, problem, pass);
}

bool policy_supports(const ConvProblem& problem, ConvPass pass) {
    return policy_supports_problem<ConvVariant>(problem, pass);
}

bool policy_supports(const PoolProblem& problem, PoolPass pass) {
    return policy_supports_problem<PoolVariant>(problem, pass);
}

void run_variant(std::string_view op, const ConvProblem& problem, ConvPass pass, ConvChoice& choice,
                      const ConvOperands& operands, Stream stream) {
    run_choice<ConvVariant>(op, problem, pass, choice, operands, stream);
}

void run_variant(std::string_view op, const PoolProblem& problem, PoolPass pass, PoolChoice& choice,
                      const PoolOperands& operands, Stream stream) {
    run_choice<PoolVariant>(op, problem, pass, choice, operands, stream);
}

}  // namespace detail

std::string last_conv_variant() {
    return detail::last_variant_storage<detail::ConvVariant>();
}
std::string last_pool_variant() {
    return detail::last_variant_storage<detail::PoolVariant>();
}

std::vector<VariantInfo> registered_variants() {
    std::vector<VariantInfo> list;
    for (ConvPass pass : kConvPasses) {
        for (const detail::ConvVariant* v : detail::conv_variants()) {
            if (v->implements(pass)) list.push_back({"conv", conv_pass_name(pass), v->name(), v->device_type()});
        }
    }
    for (PoolPass pass : kPoolPasses) {
        for (const detail::PoolVariant* v : detail::pool_variants()) {
            if (v->implements(pass)) list.push_back({"pool", pool_pass_name(pass), v->name(), v->device_type()});
        }
    }
    return list;
}

void set_conv_variant(std::string_view name) {
    detail::set_named<detail::ConvVariant>(name, 0, 4, "set_conv_variant");
}
void set_conv_variant(ConvPass pass, std::string_view name) {
    const int p = static_cast<int>(pass);
    detail::set_named<detail::ConvVariant>(name, p, p + 1, "set_conv_variant");
}
void set_pool_variant(std::string_view name) {
    detail::set_named<detail::PoolVariant>(name, 0, 2, "set_pool_variant");
}
void set_pool_variant(PoolPass pass, std::string_view name) {
    const int p = static_cast<int>(pass);
    detail::set_named<detail::PoolVariant>(name, p, p + 1, "set_pool_variant");
}
std::string conv_variant(ConvPass pass, DeviceType device) {
    return detail::named_for<detail::ConvVariant>(static_cast<int>(pass), device);
}
std::string pool_variant(PoolPass pass, DeviceType device) {
    return detail::named_for<detail::PoolVariant>(static_cast<int>(pass), device);
}

VariantSelection variant_selection() {
    auto& slot = detail::thread_selection;
    if (!slot) {
        const char* text = std::getenv("CONVKIT_VARIANT_SELECTION");
        slot = text != nullptr && *text != '\0' ? parse_variant_selection(text) : VariantSelection::Default;
    }
    return *slot;
}
void set_variant_selection(VariantSelection selection) { detail::thread_selection = selection; }

void set_variant_cache_file(const std::string& path) {
    detail::MeasuredCache& c = detail::measured();
    std::lock_guard lock(c.mutex);
    c.file = path;
    c.file_loaded = false;
    detail::load_file_locked(c);
}

std::string variant_cache_file() {
    detail::MeasuredCache& c = detail::measured();
    std::lock_guard lock(c.mutex);
    return detail::cache_file_locked(c);
}

void clear_measured_variants() {
    detail::MeasuredCache& c = detail::measured();
    std::lock_guard lock(c.mutex);
    c.winners.clear();
}

struct VariantGuard::Saved {
    detail::Slots<detail::ConvVariant> conv;
    detail::Slots<detail::PoolVariant> pool;
    VariantSelection selection;
};

VariantGuard::VariantGuard()
    : saved_(new Saved{detail::named_slots<detail::ConvVariant>(), detail::named_slots<detail::PoolVariant>(),
                       variant_selection()}) {}

// Delegating: should naming throw, the destructor restores and frees.
VariantGuard::VariantGuard(std::string_view conv_variant) : VariantGuard() { set_conv_variant(conv_variant); }

VariantGuard::~VariantGuard() {
    detail::named_slots<detail::ConvVariant>() = saved_->conv;
    detail::named_slots<detail::PoolVariant>() = saved_->pool;
    detail::thread_selection = saved_->selection;
    delete saved_;
}

}  // namespace convkit
