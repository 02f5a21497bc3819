#include "convkit/nn/init.h"

#include <atomic>
#include <cmath>

#include "convkit/autograd.h"
#include "core/check.h"
#include "core/random.h"

namespace convkit::nn::init {

namespace {
std::atomic<std::uint64_t> seed_base{0x5eed};
std::atomic<std::uint64_t> seed_counter{0};

double leaky_relu_gain(double a) { return std::sqrt(2.0 / (1.0 + a * a)); }
}  // namespace

void manual_seed(std::uint64_t seed) {
    seed_base = seed;
    seed_counter = 0;
}

std::uint64_t next_seed() { return detail::mix64(seed_base.load() + 0x9e3779b97f4a7c15ULL * ++seed_counter); }

std::pair<std::int64_t, std::int64_t> fan_in_and_fan_out(const Tensor& weight) {
    CONVKIT_REQUIRE(weight.defined() && weight.rank() >= 2, "init::fan_in_and_fan_out",
                    "needs a weight of rank 2 or more, got ",
                    weight.defined() ? weight.shape().to_string() : std::string("an undefined tensor"));
    std::int64_t receptive = 1;
    for (int d = 2; d < weight.rank(); ++d) receptive *= weight.size(d);
    return {weight.size(1) * receptive, weight.size(0) * receptive};
}

void uniform_(Tensor& t, double low, double high) {
    NoGradGuard no_grad;
    t.fill_uniform_(low, high, next_seed());
}

void normal_(Tensor& t, double mean, double stddev) {
    NoGradGuard no_grad;
    t.fill_normal_(mean, stddev, next_seed());
}

void constant_(Tensor& t, double value) {
    NoGradGuard no_grad;
    t.fill_(value);
}

void kaiming_uniform_(Tensor& t, double a) {
    const double fan_in = static_cast<double>(fan_in_and_fan_out(t).first);
    const double bound = fan_in > 0 ? leaky_relu_gain(a) * std::sqrt(3.0 / fan_in) : 0.0;
    uniform_(t, -bound, bound);
}

void kaiming_normal_(Tensor& t, double a) {
    const double fan_in = static_cast<double>(fan_in_and_fan_out(t).first);
    normal_(t, 0.0, fan_in > 0 ? leaky_relu_gain(a) / std::sqrt(fan_in) : 0.0);
}

void xavier_uniform_(Tensor& t, double gain) {
    const auto [fan_in, fan_out] = fan_in_and_fan_out(t);
    const double bound = fan_in + fan_out > 0 ? gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out)) : 0.0;
    uniform_(t, -bound, bound);
}

}  // namespace convkit::nn::init
