// The registry of variants and the problem constructors.
#include <algorithm>
#include <stdexcept>

#include "backend_api/variant.h"
#include "core/check.h"

namespace convkit::detail {

namespace {
// Owned for the life of the process; built during static initialisation of every file that
// registers, hence a function-local static.
template <typename V>
struct Registry {
    std::vector<std::unique_ptr<V>> owned;
    std::vector<const V*> sorted;
};

template <typename V>
Registry<V>& registry() {
    static auto* r = new Registry<V>();
    return *r;
}

template <typename V>
bool add(std::unique_ptr<V> variant) {
    Registry<V>& r = registry<V>();
    const std::string_view name = variant->name();
    for (const V* v : r.sorted) {
        if (name == v->name()) throw std::logic_error(concat("variant ", name, " is registered twice"));
    }
    const V* raw = variant.get();
    r.owned.push_back(std::move(variant));
    r.sorted.insert(std::upper_bound(r.sorted.begin(), r.sorted.end(), raw,
                                     [](const V* a, const V* b) { return std::string_view(a->name()) <
                                                                         std::string_view(b->name()); }),
                    raw);
    return true;
}

template <typename V>
const V* find(std::string_view name) {
    for (const V* v : registry<V>().sorted) {
        if (name == v->name()) return v;
    }
    return nullptr;
}
}  // namespace

bool register_conv_variant(std::unique_ptr<ConvVariant> variant) { return add(std::move(variant)); }
bool register_pool_variant(std::unique_ptr<PoolVariant> variant) { return add(std::move(variant)); }
const std::vector<const ConvVariant*>& conv_variants() { return registry<ConvVariant>().sorted; }
const std::vector<const PoolVariant*>& pool_variants() { return registry<PoolVariant>().sorted; }
const ConvVariant* find_conv_variant(std::string_view name) { return find<ConvVariant>(name); }
const PoolVariant* find_pool_variant(std::string_view name) { return find<PoolVariant>(name); }

namespace {
// float64 problems accumulate in float64; float32 ones accept float32 accumulation.
DType accumulation_of(DType dtype) { return dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

// Contiguous operands of `dtype` on `device`, with the calling thread's math mode and
// determinism.
ProblemBase problem_base(DType dtype, Device device) {
    ProblemBase b;
    b.x_dtype = b.y_dtype = dtype;
    b.accumulate_dtype = accumulation_of(dtype);
    b.math = default_math_mode();
    b.deterministic = deterministic_mode();
    b.device = device;
    return b;
}
}  // namespace

ConvProblem conv_problem(const ConvGeometry& geometry, DType dtype, Device device) {
    ConvProblem p;
    static_cast<ProblemBase&>(p) = problem_base(dtype, device);
    p.geometry = geometry;
    p.w_dtype = dtype;
    p.algorithm_search = default_algorithm_search();
    return p;
}

PoolProblem pool_problem(const PoolGeometry& geometry, PoolOp op, DType dtype, Device device) {
    PoolProblem p;
    static_cast<ProblemBase&>(p) = problem_base(dtype, device);
    p.geometry = geometry;
    p.op = op;
    return p;
}

}  // namespace convkit::detail
