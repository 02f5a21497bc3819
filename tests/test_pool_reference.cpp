// The host pooling reference (max, average, adaptive and global average; 1-D to 3-D; forward and
// backward) checked against definitions written out again here, on fresh random inputs every run.
// The reference is the oracle for every GPU backend, so it is never trusted to check itself: the
// definitions below restate PyTorch's documented rules in another form (explicitly padded arrays,
// window element lists, windows counted one by one, float floor/ceil for adaptive bounds) and
// share no code or loop structure with src/backends/host/pool_reference.cpp.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <numeric>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {

using testing::fresh_seed;
using testing::pick;
using Index = std::vector<std::int64_t>;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

using testing::kFloat32VsFloat64Tolerance;
using testing::kFloat64Tolerance;
using testing::kGradientTolerance;

// ---- Small N-D helpers --------------------------------------------------------------------------

std::int64_t product(const Index& dims) {
    return std::accumulate(dims.begin(), dims.end(), std::int64_t{1}, std::multiplies<>());
}

// Row-major flat index of `index` in an array of `dims`.
std::int64_t flat(const Index& index, const Index& dims) {
    std::int64_t f = 0;
    for (std::size_t i = 0; i < dims.size(); ++i) f = f * dims[i] + index[i];
    return f;
}

// Calls f(index) for every multi-index below `dims`, last dim fastest. An odometer over any
// rank, so the definitions do not mirror the library's fixed three-deep loop nests.
template <typename F>
void for_each_index(const Index& dims, F&& f) {
    if (std::any_of(dims.begin(), dims.end(), [](std::int64_t d) { return d <= 0; })) return;
    Index index(dims.size(), 0);
    while (true) {
        f(static_cast<const Index&>(index));
        std::size_t i = dims.size();
        while (i > 0) {
            --i;
            if (++index[i] < dims[i]) break;
            index[i] = 0;
            if (i == 0) return;
        }
        if (dims.empty()) return;
    }
}

std::string join(const Index& dims, const char* separator) {
    std::ostringstream s;
    for (std::size_t i = 0; i < dims.size(); ++i) s << (i ? separator : "") << dims[i];
    return s.str();
}


std::vector<double> values_of(const Tensor& t) { return t.to_vector(); }

// Element-by-element exact comparison (NaN matches only NaN), naming the first few mismatches.
void expect_same_values(const std::vector<double>& actual, const std::vector<double>& expected, const char* what) {
    ASSERT_EQ(actual.size(), expected.size()) << what;
    int reported = 0;
    for (std::size_t i = 0; i < actual.size(); ++i) {
        const bool same = (std::isnan(actual[i]) && std::isnan(expected[i])) || actual[i] == expected[i];
        if (!same && reported++ < 5) {
            ADD_FAILURE() << what << ": element " << i << " is " << actual[i] << ", expected " << expected[i];
        }
    }
    EXPECT_EQ(reported, 0) << what << ": " << reported << " elements differ";
}

// ||a - b|| / ||b|| over plain vectors, as testing::relative_error does for tensors; NaN (so that
// any `< tol` fails) when the lengths differ.
double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return kNaN;
    double diff = 0.0;
    double norm = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        diff += (a[i] - b[i]) * (a[i] - b[i]);
        norm += b[i] * b[i];
    }
    return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

// ---- One pooling case and its geometry, restated in the test's own terms ------------------------

struct PoolCase {
    Index shape;  // [N, C, spatial...]
    PoolParams params;
};

std::string shape_text(const Index& shape) {
    std::ostringstream s;
    s << "n" << shape[0] << "_c" << shape[1] << "_in" << join(Index(shape.begin() + 2, shape.end()), "x");
    return s.str();
}

std::string case_name(const PoolCase& c) { return testing::test_name(shape_text(c.shape) + "_" + c.params.to_string()); }

void PrintTo(const PoolCase& c, std::ostream* os) { *os << case_name(c); }

// The number of windows along one dim, counted one window at a time from PyTorch's rules rather
// than from the closed formula: floor mode keeps the windows that lie inside the padded input;
// ceil mode also keeps a last, partial window while the one before it left padded elements
// uncovered, but never one that starts in the right padding.
std::int64_t count_windows(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t d,
                           bool ceil_mode) {
    const std::int64_t extent = d * (k - 1) + 1;
    const std::int64_t padded = in + 2 * p;
    std::int64_t n = 0;
    if (!ceil_mode) {
        while (n * s + extent <= padded) ++n;
    } else {
        while ((n == 0 || (n - 1) * s + extent < padded) && n * s - p < in) ++n;
    }
    return n;
}

struct Windows {
    std::int64_t planes = 1;
    Index in, out, kernel, stride, padding, dilation;
    bool count_include_pad = true;

    // Padded-array dims: `padding` on the left; on the right whichever is further, the padding
    // or the end of the last (ceil-mode) window.
    Index padded_dims() const {
        Index dims(in.size());
        for (std::size_t i = 0; i < in.size(); ++i) {
            dims[i] = std::max(in[i] + 2 * padding[i], (out[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1);
        }
        return dims;
    }
    Index output_shape(const Index& input_shape) const {
        Index s{input_shape[0], input_shape[1]};
        s.insert(s.end(), out.begin(), out.end());
        return s;
    }
};

Windows windows_of(const PoolCase& c) {
    Windows w;
    const auto rank = static_cast<std::size_t>(c.params.spatial_rank);
    w.planes = c.shape[0] * c.shape[1];
    w.count_include_pad = c.params.count_include_pad;
    for (std::size_t i = 0; i < rank; ++i) {
        w.in.push_back(c.shape[2 + i]);
        w.kernel.push_back(c.params.kernel[i]);
        w.stride.push_back(c.params.stride[i]);
        w.padding.push_back(c.params.padding[i]);
        w.dilation.push_back(c.params.dilation[i]);
        w.out.push_back(count_windows(w.in[i], w.kernel[i], w.stride[i], w.padding[i], w.dilation[i],
                                      c.params.ceil_mode));
    }
    return w;
}

// Copies every plane of x into an explicitly padded array filled with `fill` elsewhere.
std::vector<double> pad_planes(const std::vector<double>& x, const Windows& w, double fill) {
    const Index pdims = w.padded_dims();
    const std::int64_t in_size = product(w.in);
    const std::int64_t padded_size = product(pdims);
    std::vector<double> padded(static_cast<std::size_t>(w.planes * padded_size), fill);
    for (std::int64_t plane = 0; plane < w.planes; ++plane) {
        for_each_index(w.in, [&](const Index& i) {
            Index q = i;
            for (std::size_t d = 0; d < q.size(); ++d) q[d] += w.padding[d];
            padded[static_cast<std::size_t>(plane * padded_size + flat(q, pdims))] =
                x[static_cast<std::size_t>(plane * in_size + flat(i, w.in))];
        });
    }
    return padded;
}

// Padded coordinates of the window elements of output `o`, in scan order (kernel row-major).
std::vector<Index> window_positions(const Windows& w, const Index& o) {
    std::vector<Index> positions;
    for_each_index(w.kernel, [&](const Index& k) {
        Index q(o.size());
        for (std::size_t d = 0; d < o.size(); ++d) q[d] = o[d] * w.stride[d] + k[d] * w.dilation[d];
        positions.push_back(q);
    });
    return positions;
}

// Flat input index of padded position q, or -1 where q lies in the padding or beyond.
std::int64_t input_of(const Windows& w, std::int64_t plane, const Index& q) {
    Index i(q.size());
    for (std::size_t d = 0; d < q.size(); ++d) {
        i[d] = q[d] - w.padding[d];
        if (i[d] < 0 || i[d] >= w.in[d]) return -1;
    }
    return plane * product(w.in) + flat(i, w.in);
}

// ---- Independent definitions --------------------------------------------------------------------

// Max pooling: the padding holds -inf, so it never wins; a NaN anywhere in the window wins.
std::vector<double> max_pool_definition(const std::vector<double>& x, const Windows& w) {
    const Index pdims = w.padded_dims();
    const std::vector<double> padded = pad_planes(x, w, -kInf);
    std::vector<double> y;
    for (std::int64_t plane = 0; plane < w.planes; ++plane) {
        for_each_index(w.out, [&](const Index& o) {
            std::vector<double> window;
            for (const Index& q : window_positions(w, o)) {
                window.push_back(padded[static_cast<std::size_t>(plane * product(pdims) + flat(q, pdims))]);
            }
            const bool has_nan = std::any_of(window.begin(), window.end(), [](double v) { return std::isnan(v); });
            y.push_back(has_nan ? kNaN : *std::max_element(window.begin(), window.end()));
        });
    }
    return y;
}

// Max pooling backward: the window's value is found first, then the gradient goes to the first
// input element (scan order) holding it; a window with no input element passes nothing on.
std::vector<double> max_pool_backward_definition(const std::vector<double>& x, const std::vector<double>& grad_out,
                                                 const Windows& w) {
    const std::vector<double> y = max_pool_definition(x, w);
    std::vector<double> grad_in(x.size(), 0.0);
    std::size_t out_index = 0;
    for (std::int64_t plane = 0; plane < w.planes; ++plane) {
        for_each_index(w.out, [&](const Index& o) {
            const double m = y[out_index];
            for (const Index& q : window_positions(w, o)) {
                const std::int64_t i = input_of(w, plane, q);
                if (i < 0) continue;
                const double v = x[static_cast<std::size_t>(i)];
                if (v == m || (std::isnan(m) && std::isnan(v))) {
                    grad_in[static_cast<std::size_t>(i)] += grad_out[out_index];
                    break;
                }
            }
            ++out_index;
        });
    }
    return grad_in;
}

// PyTorch's average-pool divisor. With count_include_pad: the window clipped to the padded input
// [0, in + 2p) (so a ceil-mode window overhanging the right padding counts less than k); without:
// the number of input elements in the window.
double avg_divisor(const Windows& w, std::int64_t plane, const Index& o) {
    if (w.count_include_pad) {
        double divisor = 1;
        for (std::size_t d = 0; d < o.size(); ++d) {
            const std::int64_t start = o[d] * w.stride[d];
            divisor *= static_cast<double>(std::min(start + w.kernel[d], w.in[d] + 2 * w.padding[d]) - start);
        }
        return divisor;
    }
    double count = 0;
    for (const Index& q : window_positions(w, o)) count += input_of(w, plane, q) >= 0 ? 1 : 0;
    return count;
}

// Average pooling: zeros in an explicitly padded copy, the whole k-element window summed.
std::vector<double> avg_pool_definition(const std::vector<double>& x, const Windows& w) {
    const Index pdims = w.padded_dims();
    const std::vector<double> padded = pad_planes(x, w, 0.0);
    std::vector<double> y;
    for (std::int64_t plane = 0; plane < w.planes; ++plane) {
        for_each_index(w.out, [&](const Index& o) {
            double sum = 0;
            for (const Index& q : window_positions(w, o)) {
                sum += padded[static_cast<std::size_t>(plane * product(pdims) + flat(q, pdims))];
            }
            y.push_back(sum / avg_divisor(w, plane, o));
        });
    }
    return y;
}

// The adjoint of avg_pool_definition: each window hands grad / divisor to its input elements.
std::vector<double> avg_pool_backward_definition(const std::vector<double>& grad_out, const Windows& w) {
    std::vector<double> grad_in(static_cast<std::size_t>(w.planes * product(w.in)), 0.0);
    std::size_t out_index = 0;
    for (std::int64_t plane = 0; plane < w.planes; ++plane) {
        for_each_index(w.out, [&](const Index& o) {
            const double share = grad_out[out_index++] / avg_divisor(w, plane, o);
            for (const Index& q : window_positions(w, o)) {
                const std::int64_t i = input_of(w, plane, q);
                if (i >= 0) grad_in[static_cast<std::size_t>(i)] += share;
            }
        });
    }
    return grad_in;
}

// Adaptive window of output o along a dim: [floor(o * in / out), ceil((o + 1) * in / out)),
// evaluated in floating point. Exact here: a quotient of small integers that is not an integer
// lies at least 1/out away from one, far more than the rounding of the division.
std::pair<std::int64_t, std::int64_t> adaptive_bounds(std::int64_t o, std::int64_t in, std::int64_t out) {
    const auto n = static_cast<double>(out);
    return {static_cast<std::int64_t>(std::floor(static_cast<double>(o * in) / n)),
            static_cast<std::int64_t>(std::ceil(static_cast<double>((o + 1) * in) / n))};
}

// Calls f(output flat index, list of input flat indices of its window) for adaptive pooling.
template <typename F>
void for_each_adaptive_window(const Index& shape, const Index& out, F&& f) {
    const Index in(shape.begin() + 2, shape.end());
    const std::int64_t planes = shape[0] * shape[1];
    std::int64_t out_index = 0;
    for (std::int64_t plane = 0; plane < planes; ++plane) {
        for_each_index(out, [&](const Index& o) {
            Index begin(o.size()), extent(o.size());
            for (std::size_t d = 0; d < o.size(); ++d) {
                const auto [b, e] = adaptive_bounds(o[d], in[d], out[d]);
                begin[d] = b;
                extent[d] = e - b;
            }
            std::vector<std::int64_t> members;
            for_each_index(extent, [&](const Index& k) {
                Index i(k.size());
                for (std::size_t d = 0; d < k.size(); ++d) i[d] = begin[d] + k[d];
                members.push_back(plane * product(in) + flat(i, in));
            });
            f(out_index++, members);
        });
    }
}

std::vector<double> adaptive_avg_pool_definition(const std::vector<double>& x, const Index& shape, const Index& out) {
    std::vector<double> y;
    for_each_adaptive_window(shape, out, [&](std::int64_t, const std::vector<std::int64_t>& members) {
        double sum = 0;
        for (std::int64_t i : members) sum += x[static_cast<std::size_t>(i)];
        y.push_back(sum / static_cast<double>(members.size()));
    });
    return y;
}

std::vector<double> adaptive_avg_pool_backward_definition(const std::vector<double>& grad_out, const Index& shape,
                                                          const Index& out) {
    std::vector<double> grad_in(static_cast<std::size_t>(product(shape)), 0.0);
    for_each_adaptive_window(shape, out, [&](std::int64_t o, const std::vector<std::int64_t>& members) {
        const double share = grad_out[static_cast<std::size_t>(o)] / static_cast<double>(members.size());
        for (std::int64_t i : members) grad_in[static_cast<std::size_t>(i)] += share;
    });
    return grad_in;
}

// ---- Inputs -------------------------------------------------------------------------------------

// Distinct values far apart: a random permutation of 0..n-1, times 0.1, plus noise below 0.001.
// A finite-difference step of 1e-6 then never changes which element of a window is maximal.
Tensor distinct_tensor(const Index& shape, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<double> v(static_cast<std::size_t>(product(shape)));
    std::iota(v.begin(), v.end(), 0.0);
    std::shuffle(v.begin(), v.end(), rng);
    std::uniform_real_distribution<double> noise(-1e-3, 1e-3);
    for (double& e : v) e = 0.1 * e + noise(rng);
    return Tensor::from_vector(Shape(shape), v);
}

// ---- Max pooling vs the definition, over named cases --------------------------------------------

PoolParams P(int rank, std::initializer_list<std::int64_t> kernel) { return PoolParams(rank, kernel); }

// Cases chosen to cover: strides below, equal to and above the kernel; padding up to kernel / 2;
// dilation; ceil-mode windows that overhang the right padding and ones that the ceil rule drops
// (k4 s3 p2 on 7); odd and unequal sizes; non-square kernels; a kernel of 1; a size-1 dim.
std::vector<PoolCase> max_pool_cases() {
    return {
        {{1, 3, 9}, P(1, {2})},
        {{1, 5, 10}, P(1, {3}).set_stride(1).set_padding(1)},
        {{2, 7, 10}, P(1, {3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{1, 3, 8}, P(1, {3}).set_stride(2).set_padding(1).set_dilation(2)},
        {{1, 5, 7}, P(1, {4}).set_stride(3).set_padding(2).set_ceil_mode()},
        {{1, 7, 5}, P(1, {1}).set_stride(2)},
        {{1, 3, 12}, P(1, {5}).set_stride(2).set_padding(2).set_dilation(3).set_ceil_mode()},
        {{1, 3, 8, 10}, P(2, {3, 3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{1, 5, 8, 6}, P(2, {2, 3}).set_stride({1, 2}).set_padding({1, 1})},
        {{2, 3, 9, 7}, P(2, {3, 2}).set_stride({2, 1}).set_padding({1, 0}).set_dilation({2, 1})},
        {{1, 7, 5, 5}, P(2, {2, 2}).set_stride(1)},
        {{1, 3, 6, 7}, P(2, {3, 3}).set_stride({3, 2}).set_padding(1).set_dilation({1, 2}).set_ceil_mode()},
        {{1, 5, 12, 12}, P(2, {4, 4}).set_stride(1)},
        {{1, 3, 1, 9}, P(2, {1, 3}).set_stride({1, 2})},
        {{1, 3, 11, 9}, P(2, {3, 5}).set_stride({2, 3}).set_padding({1, 2}).set_ceil_mode()},
        {{1, 3, 5, 6, 7}, P(3, {2, 2, 2})},
        {{1, 5, 6, 5, 6}, P(3, {3, 3, 3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{2, 3, 4, 7, 6}, P(3, {2, 3, 2}).set_stride({1, 2, 2}).set_padding({1, 1, 0}).set_dilation({1, 1, 2})},
        {{1, 7, 3, 4, 5}, P(3, {1, 2, 3}).set_stride(1).set_padding({0, 1, 1}).set_ceil_mode()},
    };
}

class MaxPoolReference : public ::testing::TestWithParam<PoolCase> {};

TEST_P(MaxPoolReference, ForwardMatchesDefinitionExactly) {
    const PoolCase& c = GetParam();
    const Windows w = windows_of(c);
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    EXPECT_EQ(pool_output_shape(Shape(c.shape), c.params), Shape(w.output_shape(c.shape)));
    for (DType dtype : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(dtype_name(dtype));
        const Tensor x = Tensor::uniform(Shape(c.shape), -1.0, 1.0, seed, dtype);
        const Tensor y = max_pool_forward(x, c.params);
        ASSERT_EQ(y.shape(), Shape(w.output_shape(c.shape)));
        ASSERT_EQ(y.dtype(), dtype);
        // Max selects an input value, so the result is exact in either dtype.
        expect_same_values(values_of(y), max_pool_definition(values_of(x), w), "max_pool_forward");
    }
}

TEST_P(MaxPoolReference, BackwardMatchesFirstMaximumDefinitionExactlyWithTies) {
    const PoolCase& c = GetParam();
    const Windows w = windows_of(c);
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    for (DType dtype : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(dtype_name(dtype));
        // Integers in [-1, 1]: most windows hold ties, so the first-maximum rule decides; the
        // integer gradients keep every accumulated sum exact.
        const Tensor x = testing::small_integer_tensor(Shape(c.shape), seed, 1, dtype);
        const Tensor g = testing::small_integer_tensor(Shape(w.output_shape(c.shape)), seed ^ 0x9e3779b97f4a7c15ULL, 4,
                                                       dtype);
        const Tensor grad = max_pool_backward(g, x, c.params);
        ASSERT_EQ(grad.shape(), Shape(c.shape));
        expect_same_values(values_of(grad), max_pool_backward_definition(values_of(x), values_of(g), w),
                           "max_pool_backward");
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, MaxPoolReference, ::testing::ValuesIn(max_pool_cases()),
                         [](const ::testing::TestParamInfo<PoolCase>& info) { return case_name(info.param); });

// ---- Average pooling vs the definition, over named cases ----------------------------------------

std::vector<PoolCase> avg_pool_cases() {
    std::vector<PoolCase> base = {
        // ceil-mode windows overhanging the right padding: [7, 10) on 8 + p1 counts 2 (clipped
        // to in + p), not 3, with count_include_pad.
        {{1, 3, 8}, P(1, {3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{1, 5, 6}, P(1, {3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{2, 7, 10}, P(1, {4}).set_stride(3).set_padding(2).set_ceil_mode()},  // the ceil rule drops one
        {{1, 3, 9}, P(1, {2})},
        {{1, 3, 11}, P(1, {5}).set_stride(2).set_padding(2)},
        {{1, 3, 6, 8}, P(2, {3, 3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{1, 5, 7, 5}, P(2, {2, 3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{2, 3, 10, 10}, P(2, {3, 3}).set_ceil_mode()},  // no padding: overhangs the input itself
        {{1, 7, 4, 4}, P(2, {2, 2}).set_stride(1).set_padding(1)},
        {{1, 3, 5, 8}, P(2, {3, 1}).set_stride({1, 2}).set_padding({1, 0})},
        {{1, 3, 5, 6, 7}, P(3, {3, 3, 3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{2, 5, 4, 4, 6}, P(3, {2, 2, 3}).set_stride({2, 1, 2}).set_padding({1, 0, 1}).set_ceil_mode()},
        {{1, 3, 6, 5, 4}, P(3, {2, 2, 2})},
    };
    // Every case both with and without count_include_pad.
    std::vector<PoolCase> cases;
    for (const PoolCase& c : base) {
        cases.push_back(c);
        PoolCase excluded = c;
        excluded.params.set_count_include_pad(false);
        cases.push_back(excluded);
    }
    return cases;
}

class AvgPoolReference : public ::testing::TestWithParam<PoolCase> {};

TEST_P(AvgPoolReference, ForwardMatchesDefinition) {
    const PoolCase& c = GetParam();
    const Windows w = windows_of(c);
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    EXPECT_EQ(pool_output_shape(Shape(c.shape), c.params, PoolKind::Average), Shape(w.output_shape(c.shape)));
    for (DType dtype : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(dtype_name(dtype));
        // Offset from zero so that a wrong divisor cannot hide behind a near-zero mean.
        const Tensor x = Tensor::uniform(Shape(c.shape), 0.5, 2.0, seed, dtype);
        const Tensor y = avg_pool_forward(x, c.params);
        ASSERT_EQ(y.shape(), Shape(w.output_shape(c.shape)));
        EXPECT_LT(relative_error(values_of(y), avg_pool_definition(values_of(x), w)),
                  dtype == DType::Float64 ? kFloat64Tolerance : kFloat32VsFloat64Tolerance);
    }
}

TEST_P(AvgPoolReference, BackwardMatchesDefinition) {
    const PoolCase& c = GetParam();
    const Windows w = windows_of(c);
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    for (DType dtype : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(dtype_name(dtype));
        const Tensor g = Tensor::uniform(Shape(w.output_shape(c.shape)), 0.5, 2.0, seed, dtype);
        const Tensor grad = avg_pool_backward(g, Shape(c.shape), c.params);
        ASSERT_EQ(grad.shape(), Shape(c.shape));
        EXPECT_LT(relative_error(values_of(grad), avg_pool_backward_definition(values_of(g), w)),
                  dtype == DType::Float64 ? kFloat64Tolerance : kFloat32VsFloat64Tolerance);
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, AvgPoolReference, ::testing::ValuesIn(avg_pool_cases()),
                         [](const ::testing::TestParamInfo<PoolCase>& info) { return case_name(info.param); });

// ---- Adaptive average pooling vs the definition -------------------------------------------------

struct AdaptiveCase {
    Index shape;  // [N, C, spatial...]
    Index out;    // output spatial sizes
};

std::string adaptive_name(const AdaptiveCase& c) { return testing::test_name(shape_text(c.shape) + "_out" + join(c.out, "x")); }
void PrintTo(const AdaptiveCase& c, std::ostream* os) { *os << adaptive_name(c); }

// Smaller, equal and larger outputs, with sizes that do not divide (7 -> 3, 5 -> 3, 10 -> 4)
// so that neighbouring windows overlap or differ in length.
std::vector<AdaptiveCase> adaptive_cases() {
    return {
        {{1, 3, 7}, {3}},           {{1, 5, 5}, {3}},           {{2, 3, 10}, {4}},
        {{1, 3, 4}, {4}},           {{1, 7, 3}, {5}},           {{1, 3, 1}, {3}},
        {{1, 3, 6}, {1}},           {{1, 3, 7, 5}, {3, 3}},     {{1, 5, 10, 6}, {4, 6}},
        {{2, 3, 4, 3}, {6, 5}},     {{1, 3, 9, 9}, {2, 4}},     {{1, 3, 5, 7, 10}, {3, 3, 4}},
        {{1, 5, 3, 4, 2}, {5, 4, 3}}, {{1, 3, 4, 4, 4}, {1, 1, 1}},
    };
}

class AdaptiveAvgPoolReference : public ::testing::TestWithParam<AdaptiveCase> {};

TEST_P(AdaptiveAvgPoolReference, ForwardAndBackwardMatchDefinition) {
    const AdaptiveCase& c = GetParam();
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    Index out_shape{c.shape[0], c.shape[1]};
    out_shape.insert(out_shape.end(), c.out.begin(), c.out.end());
    for (DType dtype : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(dtype_name(dtype));
        const double tol = dtype == DType::Float64 ? kFloat64Tolerance : kFloat32VsFloat64Tolerance;
        const Tensor x = Tensor::uniform(Shape(c.shape), 0.5, 2.0, seed, dtype);
        const Tensor y = adaptive_avg_pool_forward(x, c.out);
        ASSERT_EQ(y.shape(), Shape(out_shape));
        EXPECT_LT(relative_error(values_of(y), adaptive_avg_pool_definition(values_of(x), c.shape, c.out)), tol);

        const Tensor g = Tensor::uniform(Shape(out_shape), 0.5, 2.0, seed + 1, dtype);
        const Tensor grad = adaptive_avg_pool_backward(g, Shape(c.shape));
        ASSERT_EQ(grad.shape(), Shape(c.shape));
        EXPECT_LT(relative_error(values_of(grad), adaptive_avg_pool_backward_definition(values_of(g), c.shape, c.out)),
                  tol);
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, AdaptiveAvgPoolReference, ::testing::ValuesIn(adaptive_cases()),
                         [](const ::testing::TestParamInfo<AdaptiveCase>& info) { return adaptive_name(info.param); });

TEST(AdaptiveAvgPool, WindowsOfNonDivisibleSizesByHand) {
    // 7 -> 3: [0, 3), [2, 5), [4, 7) overlap by one; 5 -> 3: [0, 2), [1, 4), [3, 5);
    // 2 -> 3 (larger): [0, 1), [0, 2), [1, 2).
    const Tensor a = Tensor::from_vector(Shape{1, 1, 7}, std::vector<double>{1, 2, 3, 4, 5, 6, 7});
    expect_same_values(values_of(adaptive_avg_pool_forward(a, {3})), {2, 4, 6}, "7 -> 3");
    const Tensor b = Tensor::from_vector(Shape{1, 1, 5}, std::vector<double>{1, 2, 4, 8, 16});
    expect_same_values(values_of(adaptive_avg_pool_forward(b, {3})), {1.5, 14.0 / 3.0, 12}, "5 -> 3");
    const Tensor c = Tensor::from_vector(Shape{1, 1, 2}, std::vector<double>{2, 6});
    expect_same_values(values_of(adaptive_avg_pool_forward(c, {3})), {2, 4, 6}, "2 -> 3");
    // 10 -> 4: [0, 3), [2, 5), [5, 8), [7, 10).
    std::vector<double> ten(10);
    std::iota(ten.begin(), ten.end(), 0.0);
    expect_same_values(values_of(adaptive_avg_pool_forward(Tensor::from_vector(Shape{1, 1, 10}, ten), {4})),
                       {1, 3, 6, 8}, "10 -> 4");
}

TEST(GlobalAvgPool, EqualsThePlainMeanOverSpatialDims) {
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    for (const Index& shape : {Index{2, 3, 11}, Index{1, 5, 7, 9}, Index{2, 7, 3, 5, 4}}) {
        SCOPED_TRACE(shape_text(shape));
        for (DType dtype : {DType::Float64, DType::Float32}) {
            const Tensor x = Tensor::normal(Shape(shape), 1.0, 2.0, seed, dtype);
            const Tensor y = global_avg_pool_forward(x);
            Index out_shape(shape.size(), 1);
            out_shape[0] = shape[0];
            out_shape[1] = shape[1];
            ASSERT_EQ(y.shape(), Shape(out_shape));
            const std::vector<double> v = values_of(x);
            const std::int64_t spatial = product(Index(shape.begin() + 2, shape.end()));
            std::vector<double> mean;
            for (std::int64_t plane = 0; plane < shape[0] * shape[1]; ++plane) {
                const auto first = v.begin() + plane * spatial;
                mean.push_back(std::accumulate(first, first + spatial, 0.0) / static_cast<double>(spatial));
            }
            EXPECT_LT(relative_error(values_of(y), mean), dtype == DType::Float64 ? kFloat64Tolerance : kFloat32VsFloat64Tolerance);
            // Backward spreads each plane's gradient evenly.
            const Tensor g = Tensor::uniform(Shape(out_shape), -1.0, 1.0, seed + 1, dtype);
            const std::vector<double> gv = values_of(g);
            std::vector<double> expected;
            for (std::int64_t plane = 0; plane < shape[0] * shape[1]; ++plane) {
                expected.insert(expected.end(), static_cast<std::size_t>(spatial),
                                gv[static_cast<std::size_t>(plane)] / static_cast<double>(spatial));
            }
            EXPECT_LT(relative_error(values_of(global_avg_pool_backward(g, Shape(shape))), expected),
                      dtype == DType::Float64 ? kFloat64Tolerance : kFloat32VsFloat64Tolerance);
        }
    }
}

// ---- Fresh shapes and parameters every run ------------------------------------------------------
// The named cases above have fixed geometry (their names must not change between runs); these
// sweeps also draw the geometry afresh.

PoolCase random_case(std::mt19937_64& rng, PoolKind kind) {
    const int rank = static_cast<int>(pick(rng, 1, 3));
    static constexpr std::int64_t kChannels[] = {3, 5, 7};
    PoolCase c{{pick(rng, 1, 2), kChannels[pick(rng, 0, 2)]}, PoolParams(rank, 1)};
    for (std::size_t i = 0; i < static_cast<std::size_t>(rank); ++i) {
        const std::int64_t k = pick(rng, 1, rank == 3 ? 3 : 5);
        const std::int64_t d = kind == PoolKind::Max ? pick(rng, 1, 3) : 1;
        const std::int64_t p = pick(rng, 0, k / 2);
        const std::int64_t extent = d * (k - 1) + 1;
        c.params.kernel[i] = k;
        c.params.dilation[i] = d;
        c.params.padding[i] = p;
        c.params.stride[i] = pick(rng, 1, 3);
        // Down to the smallest input the dilated kernel fits (inside the padding) and a little beyond.
        c.shape.push_back(pick(rng, std::max<std::int64_t>(1, extent - 2 * p), extent + (rank == 3 ? 4 : 9)));
    }
    c.params.ceil_mode = pick(rng, 0, 1) == 1;
    c.params.count_include_pad = pick(rng, 0, 1) == 1;
    return c;
}

TEST(PoolRandomSweep, MaxAndAverageMatchDefinitionsOnFreshGeometry) {
    CONVKIT_SEEDED_RNG(rng);
    for (int trial = 0; trial < 400; ++trial) {
        for (PoolKind kind : {PoolKind::Max, PoolKind::Average}) {
            const PoolCase c = random_case(rng, kind);
            SCOPED_TRACE(case_name(c) + (kind == PoolKind::Max ? " max" : " avg"));
            const Windows w = windows_of(c);
            const Tensor x = Tensor::uniform(Shape(c.shape), 0.5, 2.0, rng_seed + static_cast<std::uint64_t>(trial));
            if (kind == PoolKind::Max) {
                expect_same_values(values_of(max_pool_forward(x, c.params)), max_pool_definition(values_of(x), w),
                                   "max_pool_forward");
                const Tensor xi = testing::small_integer_tensor(Shape(c.shape), rng_seed + 7 * trial, 1);
                const Tensor g = testing::small_integer_tensor(Shape(w.output_shape(c.shape)), rng_seed + 13 * trial, 4);
                expect_same_values(values_of(max_pool_backward(g, xi, c.params)),
                                   max_pool_backward_definition(values_of(xi), values_of(g), w), "max_pool_backward");
            } else {
                const Tensor y = avg_pool_forward(x, c.params);
                ASSERT_EQ(y.shape(), Shape(w.output_shape(c.shape)));
                EXPECT_LT(relative_error(values_of(y), avg_pool_definition(values_of(x), w)), kFloat32VsFloat64Tolerance);
                const Tensor g = Tensor::uniform(y.shape(), 0.5, 2.0, rng_seed + 3 * trial, DType::Float64);
                EXPECT_LT(relative_error(values_of(avg_pool_backward(g, Shape(c.shape), c.params)),
                                         avg_pool_backward_definition(values_of(g), w)),
                          kFloat64Tolerance);
            }
            if (::testing::Test::HasFailure()) return;  // one failing geometry is enough to read
        }
    }
}

TEST(PoolRandomSweep, AdaptiveMatchesDefinitionOnFreshGeometry) {
    CONVKIT_SEEDED_RNG(rng);
    for (int trial = 0; trial < 200; ++trial) {
        const int rank = static_cast<int>(pick(rng, 1, 3));
        Index shape{pick(rng, 1, 2), pick(rng, 1, 4)};
        Index out;
        for (int i = 0; i < rank; ++i) {
            shape.push_back(pick(rng, 1, rank == 3 ? 7 : 13));
            out.push_back(pick(rng, 1, rank == 3 ? 7 : 13));  // smaller, equal or larger than the input
        }
        SCOPED_TRACE(adaptive_name({shape, out}));
        const Tensor x = Tensor::uniform(Shape(shape), 0.5, 2.0, rng_seed + static_cast<std::uint64_t>(trial),
                                         DType::Float64);
        EXPECT_LT(relative_error(values_of(adaptive_avg_pool_forward(x, out)),
                                 adaptive_avg_pool_definition(values_of(x), shape, out)),
                  kFloat64Tolerance);
        Index out_shape{shape[0], shape[1]};
        out_shape.insert(out_shape.end(), out.begin(), out.end());
        const Tensor g = Tensor::uniform(Shape(out_shape), 0.5, 2.0, rng_seed + 5 * trial, DType::Float64);
        EXPECT_LT(relative_error(values_of(adaptive_avg_pool_backward(g, Shape(shape))),
                                 adaptive_avg_pool_backward_definition(values_of(g), shape, out)),
                  kFloat64Tolerance);
        if (::testing::Test::HasFailure()) return;
    }
}

// ---- Gradients by central differences (float64) -------------------------------------------------

// loss(x) = <pool(x), r>, so d loss / d x = pool_backward(r): the library's backward against the
// numeric derivative of the library's forward.
void expect_gradient_matches(const std::function<Tensor(const Tensor&)>& forward, const Tensor& x,
                             const std::function<Tensor(const Tensor&)>& backward, std::uint64_t seed) {
    const Tensor r = Tensor::uniform(forward(x).shape(), -1.0, 1.0, seed, DType::Float64);
    const Tensor numeric =
        testing::numeric_gradient([&](const Tensor& probe) { return testing::dot(forward(probe), r); }, x, 1e-6);
    const Tensor analytic = backward(r);
    ASSERT_EQ(analytic.shape(), x.shape());
    EXPECT_LT(testing::relative_error(analytic, numeric), kGradientTolerance);
    EXPECT_GT(testing::dot(numeric, numeric), 0.0);  // a vacuous all-zero gradient proves nothing
}

TEST(PoolGradient, MaxPoolMatchesFiniteDifferences) {
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const std::vector<PoolCase> cases = {
        {{1, 3, 11}, P(1, {3}).set_stride(1).set_padding(1)},  // overlapping windows accumulate
        {{1, 3, 10}, P(1, {3}).set_stride(2).set_padding(1).set_dilation(2).set_ceil_mode()},
        {{1, 3, 6, 7}, P(2, {3, 2}).set_stride({2, 1}).set_padding({1, 1}).set_ceil_mode()},
        {{1, 5, 5, 6}, P(2, {2, 2}).set_stride(1).set_dilation({2, 1})},
        {{1, 3, 4, 5, 4}, P(3, {2, 3, 2}).set_stride({1, 2, 1}).set_padding({1, 1, 0}).set_ceil_mode()},
    };
    for (const PoolCase& c : cases) {
        SCOPED_TRACE(case_name(c));
        const Tensor x = distinct_tensor(c.shape, seed);
        expect_gradient_matches([&](const Tensor& t) { return max_pool_forward(t, c.params); }, x,
                                [&](const Tensor& g) { return max_pool_backward(g, x, c.params); }, seed);
    }
}

TEST(PoolGradient, AvgPoolMatchesFiniteDifferencesForEveryOptionCombination) {
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const std::vector<PoolCase> base = {
        {{1, 3, 8}, P(1, {3}).set_stride(2).set_padding(1)},
        {{1, 3, 6, 7}, P(2, {3, 2}).set_stride({2, 1}).set_padding(1)},
        {{1, 3, 4, 5, 4}, P(3, {3, 2, 2}).set_stride(2).set_padding(1)},
    };
    for (const PoolCase& b : base) {
        for (bool ceil_mode : {false, true}) {
            for (bool include_pad : {true, false}) {
                PoolCase c = b;
                c.params.set_ceil_mode(ceil_mode).set_count_include_pad(include_pad);
                SCOPED_TRACE(case_name(c));
                const Tensor x = Tensor::uniform(Shape(c.shape), -1.0, 1.0, seed, DType::Float64);
                expect_gradient_matches([&](const Tensor& t) { return avg_pool_forward(t, c.params); }, x,
                                        [&](const Tensor& g) { return avg_pool_backward(g, Shape(c.shape), c.params); },
                                        seed + 1);
            }
        }
    }
}

TEST(PoolGradient, AdaptiveAndGlobalAvgPoolMatchFiniteDifferences) {
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    for (const AdaptiveCase& c : std::vector<AdaptiveCase>{{{1, 3, 7}, {3}},            // smaller
                                                           {{1, 3, 5, 4}, {5, 4}},      // equal
                                                           {{1, 3, 3, 2}, {5, 3}},      // larger
                                                           {{1, 2, 3, 5, 4}, {2, 3, 3}}}) {
        SCOPED_TRACE(adaptive_name(c));
        const Tensor x = Tensor::uniform(Shape(c.shape), -1.0, 1.0, seed, DType::Float64);
        expect_gradient_matches([&](const Tensor& t) { return adaptive_avg_pool_forward(t, c.out); }, x,
                                [&](const Tensor& g) { return adaptive_avg_pool_backward(g, Shape(c.shape)); }, seed);
    }
    for (const Index& shape : {Index{2, 3, 7}, Index{1, 3, 4, 5}, Index{1, 2, 3, 3, 4}}) {
        SCOPED_TRACE("global " + shape_text(shape));
        const Tensor x = Tensor::uniform(Shape(shape), -1.0, 1.0, seed, DType::Float64);
        expect_gradient_matches([](const Tensor& t) { return global_avg_pool_forward(t); }, x,
                                [&](const Tensor& g) { return global_avg_pool_backward(g, Shape(shape)); }, seed);
    }
}

// ---- Max pooling backward: where the gradient goes ----------------------------------------------

TEST(MaxPoolBackward, EachOutputSendsItsGradientToExactlyOneElementAndOverlapsAccumulate) {
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const Index shape{1, 3, 6, 7};
    const PoolParams params = P(2, {3, 3}).set_stride(1).set_padding(1);  // every element in up to 9 windows
    const Windows w = windows_of({shape, params});
    const Tensor x = distinct_tensor(shape, seed);
    const std::vector<double> xv = values_of(x);
    const Shape out_shape(w.output_shape(shape));

    // One output at a time: exactly one input element receives exactly that output's gradient,
    // and it holds the window's maximum.
    const std::vector<double> y = max_pool_definition(xv, w);
    for (std::int64_t j = 0; j < out_shape.numel(); ++j) {
        std::vector<double> one_hot(static_cast<std::size_t>(out_shape.numel()), 0.0);
        one_hot[static_cast<std::size_t>(j)] = 1.0;
        const Tensor g = Tensor::from_vector(out_shape, one_hot);
        const std::vector<double> grad = values_of(max_pool_backward(g, x, params));
        const auto receivers = std::count_if(grad.begin(), grad.end(), [](double v) { return v != 0.0; });
        ASSERT_EQ(receivers, 1) << "output " << j;
        const auto at = std::find(grad.begin(), grad.end(), 1.0);
        ASSERT_NE(at, grad.end()) << "output " << j;
        EXPECT_EQ(xv[static_cast<std::size_t>(at - grad.begin())], y[static_cast<std::size_t>(j)]) << "output " << j;
    }

    // All outputs at once: nothing is lost or duplicated, and the plane's largest element (the
    // maximum of every window that contains it) collects the sum of all those windows' gradients.
    const Tensor g = Tensor::uniform(out_shape, 0.5, 1.5, seed + 1, DType::Float64);
    const std::vector<double> grad = values_of(max_pool_backward(g, x, params));
    const std::vector<double> gv = values_of(g);
    EXPECT_NEAR(std::accumulate(grad.begin(), grad.end(), 0.0), std::accumulate(gv.begin(), gv.end(), 0.0), 1e-12);
    const auto plane0_max = std::max_element(xv.begin(), xv.begin() + 42) - xv.begin();
    const Index position{plane0_max / 7, plane0_max % 7};
    double expected = 0;
    std::int64_t windows = 0;
    for_each_index(w.out, [&](const Index& o) {
        // Window o covers rows o0 - 1 .. o0 + 1 and columns o1 - 1 .. o1 + 1.
        if (std::abs(o[0] - position[0]) <= 1 && std::abs(o[1] - position[1]) <= 1) {
            expected += gv[static_cast<std::size_t>(flat(o, w.out))];
            ++windows;
        }
    });
    EXPECT_GE(windows, 4);
    EXPECT_NEAR(grad[static_cast<std::size_t>(plane0_max)], expected, 1e-12);
}

TEST(MaxPoolBackward, TiesSendTheGradientToTheFirstMaximumInScanOrder) {
    // 1-D, k3 s1: windows [1 3 3], [3 3 2], [3 2 3] have their first maxima at 1, 1 and 2.
    const Tensor x = Tensor::from_vector(Shape{1, 1, 5}, std::vector<double>{1, 3, 3, 2, 3});
    const Tensor g = Tensor::from_vector(Shape{1, 1, 3}, std::vector<double>{1, 10, 100});
    expect_same_values(values_of(max_pool_backward(g, x, P(1, {3}).set_stride(1))), {0, 11, 100, 0, 0}, "1-D");

    // 2-D, k2 s2 on a 2x4 plane: window 0 ties (0,1) with (1,0), row-major scan picks (0,1);
    // window 1 is all equal and picks its top-left element (0,2).
    const Tensor x2 = Tensor::from_vector(Shape{1, 1, 2, 4}, std::vector<double>{0, 5, 7, 7, 5, 1, 7, 7});
    const Tensor g2 = Tensor::from_vector(Shape{1, 1, 1, 2}, std::vector<double>{2, 3});
    expect_same_values(values_of(max_pool_backward(g2, x2, P(2, {2, 2}))), {0, 2, 3, 0, 0, 0, 0, 0}, "2-D");

    // 3-D, k2 on a 2x2x2 cube of equal values: scan order D, H, W picks the first element.
    const Tensor x3 = Tensor::full(Shape{1, 1, 2, 2, 2}, 4.0, DType::Float64);
    const Tensor g3 = Tensor::full(Shape{1, 1, 1, 1, 1}, 1.5, DType::Float64);
    expect_same_values(values_of(max_pool_backward(g3, x3, P(3, {2, 2, 2}))), {1.5, 0, 0, 0, 0, 0, 0, 0}, "3-D");

    // A window of -inf only (padding never counts) still routes to its first input element, as
    // PyTorch's kernels do (their index starts at the first in-bounds element).
    const Tensor xi = Tensor::full(Shape{1, 1, 3}, -kInf, DType::Float64);
    const Tensor gi = Tensor::from_vector(Shape{1, 1, 2}, std::vector<double>{1, 2});
    expect_same_values(values_of(max_pool_forward(xi, P(1, {2}).set_stride(2).set_padding(1))), {-kInf, -kInf},
                       "all -inf forward");
    expect_same_values(values_of(max_pool_backward(gi, xi, P(1, {2}).set_stride(2).set_padding(1))), {1, 2, 0},
                       "all -inf backward");
}

// ---- NaN ----------------------------------------------------------------------------------------

TEST(MaxPoolNaN, PropagatesToEveryWindowContainingItAndTakesTheGradient) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<PoolCase> cases = {
        {{1, 3, 7, 8}, P(2, {3, 3}).set_stride(1).set_padding(1)},
        // Dilation 2 with stride 2 reads only the odd rows: a NaN on an even row reaches no window.
        {{1, 3, 9, 9}, P(2, {3, 2}).set_stride(2).set_padding(1).set_dilation({2, 1}).set_ceil_mode()},
        {{1, 3, 5, 6, 4}, P(3, {2, 3, 2}).set_stride({1, 2, 1}).set_padding({1, 1, 0})},
        {{2, 5, 11}, P(1, {4}).set_stride(2).set_padding(2).set_ceil_mode()},
    };
    for (const PoolCase& c : cases) {
        SCOPED_TRACE(case_name(c));
        const Windows w = windows_of(c);
        // readers[i]: the windows that read input element i, found by walking every window's element list.
        std::vector<std::vector<std::int64_t>> readers(static_cast<std::size_t>(product(c.shape)));
        std::int64_t out_index = 0;
        for (std::int64_t plane = 0; plane < w.planes; ++plane) {
            for_each_index(w.out, [&](const Index& o) {
                for (const Index& q : window_positions(w, o)) {
                    const std::int64_t i = input_of(w, plane, q);
                    if (i >= 0) readers[static_cast<std::size_t>(i)].push_back(out_index);
                }
                ++out_index;
            });
        }
        std::vector<std::int64_t> read, unread;
        for (std::size_t i = 0; i < readers.size(); ++i) {
            (readers[i].empty() ? unread : read).push_back(static_cast<std::int64_t>(i));
        }
        for (DType dtype : {DType::Float64, DType::Float32}) {
            SCOPED_TRACE(dtype_name(dtype));
            const auto draw = [&](const std::vector<std::int64_t>& from) {
                return from[static_cast<std::size_t>(pick(rng, 0, static_cast<std::int64_t>(from.size()) - 1))];
            };
            // A NaN where some window reads it, and (where the geometry leaves any) one where none does.
            std::vector<std::int64_t> poison{draw(read)};
            if (!unread.empty()) poison.push_back(draw(unread));
            for (const std::int64_t poisoned : poison) {
                std::vector<double> xv = values_of(distinct_tensor(c.shape, rng()));
                xv[static_cast<std::size_t>(poisoned)] = kNaN;
                const Tensor x = Tensor::from_vector(Shape(c.shape), xv).to(dtype);
                const std::vector<double> y = values_of(max_pool_forward(x, c.params));
                const std::vector<double> clean = max_pool_definition(values_of(x), w);
                const auto& hit = readers[static_cast<std::size_t>(poisoned)];
                for (std::size_t j = 0; j < y.size(); ++j) {
                    if (std::find(hit.begin(), hit.end(), static_cast<std::int64_t>(j)) != hit.end()) {
                        EXPECT_TRUE(std::isnan(y[j])) << "output " << j << " reads the NaN at " << poisoned;
                    } else {
                        EXPECT_EQ(y[j], clean[j]) << "output " << j << " does not read the NaN at " << poisoned;
                    }
                }
                // NaN counts as maximal: every window reading it sends its gradient there.
                const std::vector<double> ones(y.size(), 1.0);
                const Tensor g = Tensor::from_vector(Shape(w.output_shape(c.shape)), ones).to(dtype);
                const std::vector<double> grad = values_of(max_pool_backward(g, x, c.params));
                EXPECT_EQ(grad[static_cast<std::size_t>(poisoned)], static_cast<double>(hit.size()));
            }
        }
    }
}

TEST(MaxPoolNaN, SeveralNaNsInOneWindowSendTheGradientToTheLast) {
    // PyTorch's kernels scan with `val > max || isnan(val)`, so the last NaN of a window wins; the
    // output is NaN and the gradient goes to exactly that one element, never to a number.
    const Tensor x = Tensor::from_vector(Shape{1, 1, 5}, std::vector<double>{2, kNaN, 9, kNaN, 1});
    const Tensor y = max_pool_forward(x, P(1, {5}));
    ASSERT_EQ(y.numel(), 1);
    EXPECT_TRUE(std::isnan(y.item(0)));
    const std::vector<double> grad =
        values_of(max_pool_backward(Tensor::full(Shape{1, 1, 1}, 3.0, DType::Float64), x, P(1, {5})));
    EXPECT_EQ(grad, (std::vector<double>{0, 0, 0, 3, 0}));
}

TEST(PoolArithmetic, CeilModeWindowMayOverhangAnInputSmallerThanTheKernel) {
    // PyTorch gives max_pool1d(k=3, s=2, ceil_mode=True) of a size-2 input one output: the only
    // window starts at 0 and overhangs the input; floor mode has none and is an error.
    EXPECT_EQ(pool_output_size(2, 3, 2, 0, 1, true), 1);
    EXPECT_THROW(pool_output_size(2, 3, 2, 0, 1, false), InvalidArgument);
    const Tensor x = Tensor::from_vector(Shape{1, 1, 2}, std::vector<double>{4, 7});
    EXPECT_EQ(values_of(max_pool_forward(x, P(1, {3}).set_stride(2).set_ceil_mode())), (std::vector<double>{7}));
    // The divisor is clipped to input + padding = 2 whether or not padding counts.
    EXPECT_EQ(values_of(avg_pool_forward(x, P(1, {3}).set_stride(2).set_ceil_mode())), (std::vector<double>{5.5}));
}

// ---- The classic exercise -----------------------------------------------------------------------

TEST(PoolArithmetic, ClassicExerciseConvThenMaxPoolGives125) {
    // A 256x256 image through conv (k3, s2, p1) gives 128x128; max pooling (k4, s1, p0) of that
    // gives 128 - 4 + 1 = 125.
    EXPECT_EQ(conv_output_size(256, 3, 2, 1), 128);
    const PoolParams params = P(2, {4, 4}).set_stride(1).set_padding(0);
    EXPECT_EQ(pool_output_shape(Shape{1, 1, 128, 128}, params), (Shape{1, 1, 125, 125}));
    EXPECT_EQ(count_windows(128, 4, 1, 0, 1, false), 125);
    const Tensor y = max_pool_forward(Tensor::zeros(Shape{1, 1, 128, 128}, DType::Float32), params);
    EXPECT_EQ(y.shape(), (Shape{1, 1, 125, 125}));
}

// ---- Small examples computed by hand ------------------------------------------------------------

TEST(PoolHandExamples, MaxPool1dCeilModeKeepsAPartialLastWindow) {
    const Tensor x = Tensor::from_vector(Shape{1, 1, 5}, std::vector<double>{1, 5, 2, 8, 3});
    // k2 s2: floor gives [1 5] [2 8]; ceil adds [3], which starts inside the input.
    expect_same_values(values_of(max_pool_forward(x, P(1, {2}))), {5, 8}, "floor");
    expect_same_values(values_of(max_pool_forward(x, P(1, {2}).set_ceil_mode())), {5, 8, 3}, "ceil");

    // k3 s2 p1 on 6: windows start at -1, 1, 3 and (ceil only) 5; the last covers input 5, the
    // padding at 6 and position 7 past the padding.
    const Tensor x6 = Tensor::from_vector(Shape{1, 1, 6}, std::vector<double>{1, 5, 2, 8, 3, 7});
    expect_same_values(values_of(max_pool_forward(x6, P(1, {3}).set_stride(2).set_padding(1))), {5, 8, 8}, "floor p1");
    expect_same_values(values_of(max_pool_forward(x6, P(1, {3}).set_stride(2).set_padding(1).set_ceil_mode())),
                       {5, 8, 8, 7}, "ceil p1");
    // k1 s2 ceil on 6x7 (PyTorch issue #45357): ceil((6 - 1) / 2) + 1 = 4 rows, but row 3 would
    // start at 6, past the input, so it is dropped: 3x4 and no window of padding only.
    const Tensor x67 = Tensor::uniform(Shape{1, 1, 6, 7}, -1.0, 1.0, 1, DType::Float64);
    const Tensor y67 = max_pool_forward(x67, P(2, {1, 1}).set_stride(2).set_ceil_mode());
    ASSERT_EQ(y67.shape(), (Shape{1, 1, 3, 4}));
    for (std::int64_t i = 0; i < 3; ++i) {
        for (std::int64_t j = 0; j < 4; ++j) {
            EXPECT_EQ(y67.at<double>({0, 0, i, j}), x67.at<double>({0, 0, 2 * i, 2 * j}));
        }
    }
    // Negative values: the padding is not a zero that could win.
    const Tensor neg = Tensor::from_vector(Shape{1, 1, 6}, std::vector<double>{-1, -5, -2, -8, -3, -7});
    expect_same_values(values_of(max_pool_forward(neg, P(1, {3}).set_stride(2).set_padding(1).set_ceil_mode())),
                       {-1, -2, -3, -7}, "ceil p1 negative");
}

TEST(PoolHandExamples, AvgPool1dWithPaddingCountIncludePadOrNot) {
    // k3 s2 p1 on [1 2 3 4 5]: windows [pad 1 2], [2 3 4], [4 5 pad] sum to 3, 9, 9.
    const Tensor x = Tensor::from_vector(Shape{1, 1, 5}, std::vector<double>{1, 2, 3, 4, 5});
    const PoolParams params = P(1, {3}).set_stride(2).set_padding(1);
    expect_same_values(values_of(avg_pool_forward(x, params)), {1, 3, 3}, "count_include_pad");
    expect_same_values(values_of(avg_pool_forward(x, PoolParams(params).set_count_include_pad(false))), {1.5, 3, 4.5},
                       "exclude pad");

    // ceil mode on [1..6]: the extra window [5, 8) holds input 5, the padding at 6, and 7 past
    // it. PyTorch divides by 2 (clipped to in + p) with count_include_pad, by 1 without.
    const Tensor x6 = Tensor::from_vector(Shape{1, 1, 6}, std::vector<double>{1, 2, 3, 4, 5, 6});
    const PoolParams ceil_params = PoolParams(params).set_ceil_mode();
    expect_same_values(values_of(avg_pool_forward(x6, ceil_params)), {1, 3, 5, 3}, "ceil include");
    expect_same_values(values_of(avg_pool_forward(x6, PoolParams(ceil_params).set_count_include_pad(false))),
                       {1.5, 3, 5, 6}, "ceil exclude");
    // Backward of the same: each window hands grad / divisor to its input elements.
    const Tensor g = Tensor::from_vector(Shape{1, 1, 4}, std::vector<double>{6, 6, 6, 6});
    expect_same_values(values_of(avg_pool_backward(g, Shape{1, 1, 6}, ceil_params)), {2, 4, 2, 4, 2, 5},
                       "ceil include backward");
}

TEST(PoolHandExamples, AvgPool2dCeilModeDivisorBelowKernelArea) {
    // 5x5 plane 1..25, k2 s2 ceil: 3x3 windows; the right column and bottom row are cut by the
    // input edge (no padding), so their divisors are 2 and the corner's is 1 in either mode.
    std::vector<double> v(25);
    std::iota(v.begin(), v.end(), 1.0);
    const Tensor x = Tensor::from_vector(Shape{1, 1, 5, 5}, v);
    const std::vector<double> expected{4, 6, 7.5, 14, 16, 17.5, 21.5, 23.5, 25};
    expect_same_values(values_of(avg_pool_forward(x, P(2, {2, 2}).set_ceil_mode())), expected, "include");
    expect_same_values(values_of(avg_pool_forward(x, P(2, {2, 2}).set_ceil_mode().set_count_include_pad(false))),
                       expected, "exclude");

    // 4x4 plane 1..16, k3 s2 p1 ceil: windows start at -1, 1, 3 per dim; the last one covers
    // input 3, padding 4 and position 5 past the padding, so its divisor per dim is 2 with
    // count_include_pad (not 3) and 1 without. Window sums by rows {0,1}, {1,2,3}, {3} x
    // columns likewise: 14 30 12 / 57 99 36 / 27 45 16.
    std::vector<double> v16(16);
    std::iota(v16.begin(), v16.end(), 1.0);
    const Tensor x16 = Tensor::from_vector(Shape{1, 1, 4, 4}, v16);
    const PoolParams params = P(2, {3, 3}).set_stride(2).set_padding(1).set_ceil_mode();
    expect_same_values(values_of(avg_pool_forward(x16, params)),
                       {14.0 / 9, 30.0 / 9, 2, 57.0 / 9, 11, 6, 4.5, 7.5, 4}, "k3 s2 p1 include");
    expect_same_values(values_of(avg_pool_forward(x16, PoolParams(params).set_count_include_pad(false))),
                       {3.5, 5, 6, 9.5, 11, 12, 13.5, 15, 16}, "k3 s2 p1 exclude");
}

TEST(PoolHandExamples, DilatedMaxPool) {
    // k3 d2 s1 on 8: windows read {0,2,4}, {1,3,5}, {2,4,6}, {3,5,7}.
    const Tensor x = Tensor::from_vector(Shape{1, 1, 8}, std::vector<double>{3, 1, 4, 1, 5, 9, 2, 6});
    expect_same_values(values_of(max_pool_forward(x, P(1, {3}).set_stride(1).set_dilation(2))), {5, 9, 5, 9}, "1-D");
    // With p1 s2: windows read {-1,1,3}, {1,3,5}, {3,5,7}.
    expect_same_values(values_of(max_pool_forward(x, P(1, {3}).set_stride(2).set_padding(1).set_dilation(2))),
                       {1, 9, 9}, "1-D p1");

    // 2-D, k2 d2 s1 on 4x4: window (i, j) reads rows i, i+2 and columns j, j+2.
    const Tensor x2 = Tensor::from_vector(Shape{1, 1, 4, 4},
                                          std::vector<double>{1, 8, 3, 2, 7, 0, 6, 4, 5, 9, -1, 10, 11, 2, 12, 0});
    const PoolParams params = P(2, {2, 2}).set_stride(1).set_dilation(2);
    expect_same_values(values_of(max_pool_forward(x2, params)), {5, 10, 12, 4}, "2-D");
    const Tensor g = Tensor::from_vector(Shape{1, 1, 2, 2}, std::vector<double>{1, 2, 3, 4});
    expect_same_values(values_of(max_pool_backward(g, x2, params)), {0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 2, 0, 0, 3, 0},
                       "2-D backward");

    // k2 d3 p1 on 2: the only window reads positions -1 and 2, both outside the input; PyTorch
    // gives -inf there (max over nothing).
    const Tensor x3 = Tensor::from_vector(Shape{1, 1, 2}, std::vector<double>{5, 7});
    expect_same_values(values_of(max_pool_forward(x3, P(1, {2}).set_stride(1).set_padding(1).set_dilation(3))), {-kInf},
                       "window in padding only");
}

// ---- float32 and float64 agree ------------------------------------------------------------------

TEST(PoolDTypes, Float32AndFloat64Agree) {
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const Index shape{2, 3, 9, 10};
    const Tensor x64 = Tensor::uniform(Shape(shape), -1.0, 1.0, seed, DType::Float64);
    const Tensor x32 = x64.to(DType::Float32);
    const auto agree = [](const Tensor& a32, const Tensor& a64, const char* what) {
        EXPECT_EQ(a32.dtype(), DType::Float32) << what;
        EXPECT_LT(testing::relative_error(a32, a64), kFloat32VsFloat64Tolerance) << what;
    };
    const PoolParams max_params = P(2, {3, 3}).set_stride(2).set_padding(1).set_dilation({1, 2}).set_ceil_mode();
    const PoolParams avg_params =
        P(2, {3, 2}).set_stride(2).set_padding(1).set_ceil_mode().set_count_include_pad(false);
    agree(max_pool_forward(x32, max_params), max_pool_forward(x64, max_params), "max forward");
    agree(avg_pool_forward(x32, avg_params), avg_pool_forward(x64, avg_params), "avg forward");
    agree(adaptive_avg_pool_forward(x32, {4, 3}), adaptive_avg_pool_forward(x64, {4, 3}), "adaptive forward");
    agree(global_avg_pool_forward(x32), global_avg_pool_forward(x64), "global forward");

    const Tensor gm = Tensor::uniform(pool_output_shape(Shape(shape), max_params), -1.0, 1.0, seed + 1, DType::Float64);
    agree(max_pool_backward(gm.to(DType::Float32), x32, max_params), max_pool_backward(gm, x64, max_params),
          "max backward");
    const Tensor ga = Tensor::uniform(pool_output_shape(Shape(shape), avg_params, PoolKind::Average), -1.0, 1.0,
                                      seed + 2, DType::Float64);
    agree(avg_pool_backward(ga.to(DType::Float32), Shape(shape), avg_params),
          avg_pool_backward(ga, Shape(shape), avg_params), "avg backward");
    const Tensor gd = Tensor::uniform(Shape{2, 3, 4, 3}, -1.0, 1.0, seed + 3, DType::Float64);
    agree(adaptive_avg_pool_backward(gd.to(DType::Float32), Shape(shape)), adaptive_avg_pool_backward(gd, Shape(shape)),
          "adaptive backward");
}

}  // namespace
}  // namespace convkit
