#include "test_util.h"

#include <algorithm>
#include <fstream>
#include <cctype>
#include <sstream>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>

namespace convkit::testing {

std::uint64_t fresh_seed() {
    if (const char* fixed = std::getenv("CONVKIT_TEST_SEED")) return std::strtoull(fixed, nullptr, 10);
    static std::random_device device;
    return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

namespace {
void check_same_shape(const Tensor& a, const Tensor& b) {
    if (!(a.shape() == b.shape())) {
        throw InvalidArgument("test comparison: shapes " + a.shape().to_string() + " and " + b.shape().to_string() +
                              " differ");
    }
}
}  // namespace

double relative_error(const Tensor& a, const Tensor& b) {
    check_same_shape(a, b);
    const auto va = a.to_vector();
    const auto vb = b.to_vector();
    double diff = 0.0;
    double norm = 0.0;
    for (std::size_t i = 0; i < va.size(); ++i) {
        diff += (va[i] - vb[i]) * (va[i] - vb[i]);
        norm += vb[i] * vb[i];
    }
    return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

double max_abs_difference(const Tensor& a, const Tensor& b) {
    check_same_shape(a, b);
    const auto va = a.to_vector();
    const auto vb = b.to_vector();
    double worst = 0.0;
    for (std::size_t i = 0; i < va.size(); ++i) {
        const double d = std::fabs(va[i] - vb[i]);
        if (std::isnan(d)) return std::numeric_limits<double>::quiet_NaN();
        worst = std::max(worst, d);
    }
    return worst;
}

double summation_error(const Tensor& got, const Tensor& expected, const Tensor& magnitudes) {
    check_same_shape(got, expected);
    check_same_shape(got, magnitudes);
    const auto vg = got.to_vector();
    const auto ve = expected.to_vector();
    const auto vm = magnitudes.to_vector();
    double worst = 0.0;
    for (std::size_t i = 0; i < vg.size(); ++i) {
        const double d = std::fabs(vg[i] - ve[i]);
        if (std::isnan(d)) return std::numeric_limits<double>::quiet_NaN();
        worst = std::max(worst, vm[i] > 0 ? d / vm[i] : d);
    }
    return worst;
}

double dot(const Tensor& a, const Tensor& b) {
    check_same_shape(a, b);
    const auto va = a.to_vector();
    const auto vb = b.to_vector();
    double sum = 0.0;
    for (std::size_t i = 0; i < va.size(); ++i) sum += va[i] * vb[i];
    return sum;
}

bool library_is_mapped(const std::string& name) {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line))
        if (line.find(name) != std::string::npos) return true;
    return false;
}

bool exactly_equal(const Tensor& a, const Tensor& b) {
    if (!(a.shape() == b.shape())) return false;
    return a.to_vector() == b.to_vector();
}

Tensor nan_tensor(const Shape& shape, DType dtype, Device device) {
    return Tensor::full(shape, std::numeric_limits<double>::quiet_NaN(), dtype, device);
}

OffsetBuffer::OffsetBuffer(const Tensor& values, std::int64_t offset_elements) : offset(offset_elements) {
    std::vector<double> all(static_cast<std::size_t>(offset), std::numeric_limits<double>::quiet_NaN());
    const std::vector<double> v = values.to_vector();
    all.insert(all.end(), v.begin(), v.end());
    storage =
        Tensor::from_vector(Shape{static_cast<std::int64_t>(all.size())}, all).to(values.dtype()).to(Device::cuda());
}

Tensor OffsetBuffer::values(const Shape& shape) const {
    const std::vector<double> all = storage.to(Device::host()).to_vector();
    for (std::int64_t i = 0; i < offset; ++i) EXPECT_TRUE(std::isnan(all[static_cast<std::size_t>(i)])) << i;
    return Tensor::from_vector(shape, std::vector<double>(all.begin() + offset, all.end())).to(storage.dtype());
}

std::vector<unsigned char> OffsetBuffer::bytes() const {
    const Tensor host = storage.to(Device::host());
    const auto* begin = static_cast<const unsigned char*>(host.raw_data());
    const std::size_t size = dtype_size(host.dtype());
    return std::vector<unsigned char>(begin + offset * size, begin + host.numel() * size);
}

Tensor small_integer_tensor(const Shape& shape, std::uint64_t seed, int range, DType dtype) {
    Tensor t = Tensor::uniform(shape, 0.0, 1.0, seed, DType::Float64);
    std::vector<double> values = t.to_vector();
    for (double& v : values) v = std::floor(v * (2 * range + 1)) - range;
    Tensor result = Tensor::from_vector(shape, values);
    return result.to(dtype);
}

Tensor numeric_gradient(const std::function<double(const Tensor&)>& f, const Tensor& x, double eps) {
    Tensor probe = x.clone();
    Tensor grad = Tensor::zeros(x.shape(), DType::Float64);
    double* p = probe.data<double>();
    double* g = grad.data<double>();
    for (std::int64_t i = 0; i < x.numel(); ++i) {
        const double saved = p[i];
        p[i] = saved + eps;
        const double up = f(probe);
        p[i] = saved - eps;
        const double down = f(probe);
        p[i] = saved;
        g[i] = (up - down) / (2 * eps);
    }
    return grad;
}

double gradcheck_error(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
                       std::uint64_t seed, const std::vector<std::size_t>& constants) {
    auto is_constant = [&](std::size_t i) {
        return std::find(constants.begin(), constants.end(), i) != constants.end() ||
               !is_floating_point(inputs[i].dtype());
    };
    std::vector<Tensor> leaves;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        leaves.push_back(inputs[i].detach().clone());
        if (!is_constant(i)) leaves.back().set_requires_grad();
    }
    const Tensor output = f(leaves);
    const Tensor weights = Tensor::uniform(output.shape(), -1, 1, seed, DType::Float64);
    output.backward(weights);

    double worst = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        if (is_constant(i)) continue;
        const Tensor numeric = numeric_gradient(
            [&](const Tensor& probe) {
                NoGradGuard no_grad;
                std::vector<Tensor> shifted = leaves;
                shifted[i] = probe;
                return dot(f(shifted), weights);
            },
            inputs[i].detach());
        const Tensor analytic = leaves[i].grad().defined() ? leaves[i].grad() : Tensor::zeros(inputs[i].shape(), DType::Float64);
        worst = std::max(worst, norm(numeric) == 0 ? norm(analytic) : relative_error(analytic, numeric));
    }
    return worst;
}

// Relative error, or the absolute one where the true gradient is zero (a conv bias before a
// training-mode BatchNorm has none: the normalisation removes any per-channel shift).
namespace {
double gradient_error(const Tensor& analytic, const Tensor& numeric) {
    return norm(numeric) < 1e-7 ? norm(analytic) + norm(numeric) : relative_error(analytic, numeric);
}

// gradient_error against central differences of f at x, robust to ReLU kinks: where a step
// crosses one, that entry's difference is off by up to the slope's jump, and a module with many
// ReLUs has such an entry in a few percent of random draws. The differences at the step and at
// half of it agree to rounding where f is smooth, and disagree where either step crossed a kink;
// those entries are left out of the comparison (the analytic gradient is never consulted to
// choose them, so a wrong gradient cannot hide there), as long as they stay rare. More than 1 +
// 1 in 200 of them means x sits within a step of a kink that every entry reaches (a pre-ReLU
// value near zero downstream of all of them): no verdict at this point, nullopt.
std::optional<double> kink_tolerant_gradient_error(const Tensor& analytic,
                                                   const std::function<double(const Tensor&)>& f, const Tensor& x) {
    constexpr double kStep = 1e-6;
    const Tensor numeric = numeric_gradient(f, x, kStep);
    const Tensor half_step = numeric_gradient(f, x, kStep / 2);
    // Rounding moves a difference by about 1e-16 |f| / step, far below this; a kink left below it
    // changes the relative error by less than 1e-6 (the floor: gradients that are truly zero,
    // judged by their absolute error).
    const double kink_threshold = std::max(2e-7 * norm(numeric), 1e-8);
    Tensor kept_analytic = analytic.detach().clone();
    Tensor kept_numeric = numeric.clone();
    double* a = kept_analytic.data<double>();
    double* n = kept_numeric.data<double>();
    const double* h = half_step.data<double>();
    std::int64_t kinks = 0;
    for (std::int64_t i = 0; i < numeric.numel(); ++i) {
        if (std::abs(n[i] - h[i]) > kink_threshold) {
            a[i] = n[i] = 0;
            ++kinks;
        }
    }
    if (kinks > 1 + numeric.numel() / 200) return std::nullopt;
    return gradient_error(kept_analytic, kept_numeric);
}

// module_gradcheck_error at one input, nullopt where some gradient had no verdict.
std::optional<double> module_gradcheck_error_at(nn::Module& module, const Tensor& input, std::uint64_t seed) {
    Tensor x = input.detach().clone().set_requires_grad();
    const Tensor y = module(x);
    const Tensor weights = Tensor::uniform(y.shape(), -1, 1, seed, DType::Float64);
    module.zero_grad();
    y.backward(weights);
    auto contracted = [&] {
        NoGradGuard no_grad;
        return dot(module(x), weights);
    };
    std::optional<double> worst = kink_tolerant_gradient_error(
        x.grad(),
        [&](const Tensor& probe) {
            NoGradGuard no_grad;
            return dot(module(probe), weights);
        },
        input);
    for (auto& [name, parameter] : module.named_parameters()) {
        if (!worst) return std::nullopt;
        const Tensor original = parameter.detach().clone();
        Tensor target = parameter;
        const std::optional<double> error = kink_tolerant_gradient_error(
            parameter.grad(),
            [&](const Tensor& probe) {
                NoGradGuard no_grad;
                target.copy_(probe);
                return contracted();
            },
            original);
        NoGradGuard no_grad;
        target.copy_(original);
        worst = error ? std::optional<double>(std::max(*worst, *error)) : std::nullopt;
    }
    return worst;
}

}  // namespace

void randomize_batch_norms(nn::Module& model, std::uint64_t seed) {
    NoGradGuard no_grad;
    for (auto& [name, module] : model.named_modules()) {
        auto* bn = dynamic_cast<nn::BatchNorm*>(module);
        if (bn == nullptr) continue;
        const struct {
            Tensor tensor;
            double low, high;
        } fills[] = {{bn->running_mean(), -0.5, 0.5},
                     {bn->running_var(), 0.5, 2.0},
                     {bn->weight(), 0.5, 1.5},
                     {bn->bias(), -0.5, 0.5}};
        for (const auto& fill : fills) {
            if (fill.tensor.defined()) Tensor(fill.tensor).fill_uniform_(fill.low, fill.high, seed++);
        }
    }
}

double module_gradcheck_error(nn::Module& module, const Tensor& input, std::uint64_t seed) {
    // Where the input sits within a step of a kink that all entries reach (about 1 draw in 200 for
    // a residual block), the check moves it by a random shift far larger than the step and tries
    // again. Whether it moves depends on the function alone, never on the analytic gradient, so a
    // wrong gradient fails at whichever point is judged.
    constexpr int kPoints = 4;
    for (int point = 0; point < kPoints; ++point) {
        const Tensor at =
            point == 0 ? input
                       : add(input, Tensor::uniform(input.shape(), -0.1, 0.1, seed + point, input.dtype()));
        if (const std::optional<double> error = module_gradcheck_error_at(module, at, seed)) return *error;
    }
    return 1.0;
}

std::string test_name(std::string text) {
    for (char& ch : text) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    }
    return text;
}

std::string dims_text(const std::vector<std::int64_t>& dims) {
    // A stream, not string operator+: GCC 12 raises a false -Wrestrict on the latter.
    std::ostringstream text;
    for (std::size_t i = 0; i < dims.size(); ++i) text << (i ? "x" : "") << dims[i];
    return text.str();
}

Shape image_shape(std::int64_t n, std::int64_t c, const std::vector<std::int64_t>& spatial) {
    std::vector<std::int64_t> dims{n, c};
    dims.insert(dims.end(), spatial.begin(), spatial.end());
    return Shape(dims);
}

Tensor random_tensor(const Shape& shape, std::mt19937_64& rng) {
    return Tensor::uniform(shape, -1.0, 1.0, rng(), DType::Float64);
}

Tensor random_exact_in(DType dtype, const Shape& shape, std::mt19937_64& rng) {
    return random_tensor(shape, rng).to(dtype).to(DType::Float64);
}

Tensor to_float32(const Tensor& t) { return t.defined() ? t.to(DType::Float32) : Tensor(); }

double norm(const Tensor& t) { return std::sqrt(dot(t, t)); }

double inner_product_mismatch(const Tensor& u1, const Tensor& v1, const Tensor& u2, const Tensor& v2) {
    const double scale = std::max(norm(u1) * norm(v1), norm(u2) * norm(v2));
    const double difference = std::fabs(dot(u1, v1) - dot(u2, v2));
    return scale > 0 ? difference / scale : difference;
}

}  // namespace convkit::testing
