#pragma once
// Pooling as the tests restate it (tests/test_pool_reference.cpp, tests/test_pool_examples.cpp):
// definitions written out again from PyTorch's documented rules in another form than the host
// reference's (explicitly padded arrays, window element lists, windows counted one by one, float
// floor/ceil for adaptive bounds), sharing no code or loop structure with
// src/backends/host/pool_reference.cpp, and the small N-D helpers and inputs they use.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "test_util.h"
#include "tolerances.h"

namespace convkit::pool_test {

using testing::fresh_seed;
using testing::pick;
using Index = std::vector<std::int64_t>;

inline constexpr double kInf = std::numeric_limits<double>::infinity();
inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

using testing::kFloat32VsFloat64Tolerance;
using testing::kFloat64Tolerance;
using testing::kGradientTolerance;

// ---- Small N-D helpers --------------------------------------------------------------------------

inline std::int64_t product(const Index& dims) {
    return std::accumulate(dims.begin(), dims.end(), std::int64_t{1}, std::multiplies<>());
}

// Row-major flat index of `index` in an array of `dims`.
inline std::int64_t flat(const Index& index, const Index& dims) {
    std::int64_t f = 0;
    for (std::size_t i = 0; i < dims.size(); ++i) f = f * dims[i] + index[i];
    return f;
}

// Calls f(index) for every multi-index below `dims`, last dim fastest. An odometer over any
// rank, so the definitions do not mirror the library's fixed three-deep loop nests.
template <typename F>
inline void for_each_index(const Index& dims, F&& f) {
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

inline std::string join(const Index& dims, const char* separator) {
    std::ostringstream s;
    for (std::size_t i = 0; i < dims.size(); ++i) s << (i ? separator : "") << dims[i];
    return s.str();
}

inline std::vector<double> values_of(const Tensor& t) {
    return t.to_vector();
}

// Element-by-element exact comparison (NaN matches only NaN), naming the first few mismatches.
inline void expect_same_values(const std::vector<double>& actual, const std::vector<double>& expected,
                               const char* what) {
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
inline double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
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

inline std::string shape_text(const Index& shape) {
    std::ostringstream s;
    s << "n" << shape[0] << "_c" << shape[1] << "_in" << join(Index(shape.begin() + 2, shape.end()), "x");
    return s.str();
}

inline std::string case_name(const PoolCase& c) {
    return testing::test_name(shape_text(c.shape) + "_" + c.params.to_string());
}

inline void PrintTo(const PoolCase& c, std::ostream* os) {
    *os << case_name(c);
}

// An adaptive pooling case: the input and the output spatial sizes.
struct AdaptiveCase {
    Index shape;  // [N, C, spatial...]
    Index out;    // output spatial sizes
};

inline std::string adaptive_name(const AdaptiveCase& c) {
    return testing::test_name(shape_text(c.shape) + "_out" + join(c.out, "x"));
}
inline void PrintTo(const AdaptiveCase& c, std::ostream* os) {
    *os << adaptive_name(c);
}

// The number of windows along one dim, counted one window at a time from PyTorch's rules rather
// than from the closed formula: floor mode keeps the windows that lie inside the padded input;
// ceil mode also keeps a last, partial window while the one before it left padded elements
// uncovered, but never one that starts in the right padding.
inline std::int64_t count_windows(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t d,
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

inline Windows windows_of(const PoolCase& c) {
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
        w.out.push_back(
            count_windows(w.in[i], w.kernel[i], w.stride[i], w.padding[i], w.dilation[i], c.params.ceil_mode));
    }
    return w;
}

// Copies every plane of x into an explicitly padded array filled with `fill` elsewhere.
inline std::vector<double> pad_planes(const std::vector<double>& x, const Windows& w, double fill) {
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
inline std::vector<Index> window_positions(const Windows& w, const Index& o) {
    std::vector<Index> positions;
    for_each_index(w.kernel, [&](const Index& k) {
        Index q(o.size());
        for (std::size_t d = 0; d < o.size(); ++d) q[d] = o[d] * w.stride[d] + k[d] * w.dilation[d];
        positions.push_back(q);
    });
    return positions;
}

// Flat input index of padded position q, or -1 where q lies in the padding or beyond.
inline std::int64_t input_of(const Windows& w, std::int64_t plane, const Index& q) {
    Index i(q.size());
    for (std::size_t d = 0; d < q.size(); ++d) {
        i[d] = q[d] - w.padding[d];
        if (i[d] < 0 || i[d] >= w.in[d]) return -1;
    }
    return plane * product(w.in) + flat(i, w.in);
}

// ---- Independent definitions --------------------------------------------------------------------

// Max pooling: the padding holds -inf, so it never wins; a NaN anywhere in the window wins.
inline std::vector<double> max_pool_definition(const std::vector<double>& x, const Windows& w) {
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
inline std::vector<double> max_pool_backward_definition(const std::vector<double>& x,
                                                        const std::vector<double>& grad_out, const Windows& w) {
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
inline double avg_divisor(const Windows& w, std::int64_t plane, const Index& o) {
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
inline std::vector<double> avg_pool_definition(const std::vector<double>& x, const Windows& w) {
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
inline std::vector<double> avg_pool_backward_definition(const std::vector<double>& grad_out, const Windows& w) {
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
inline std::pair<std::int64_t, std::int64_t> adaptive_bounds(std::int64_t o, std::int64_t in, std::int64_t out) {
    const auto n = static_cast<double>(out);
    return {static_cast<std::int64_t>(std::floor(static_cast<double>(o * in) / n)),
            static_cast<std::int64_t>(std::ceil(static_cast<double>((o + 1) * in) / n))};
}

// Calls f(output flat index, list of input flat indices of its window) for adaptive pooling.
template <typename F>
inline void for_each_adaptive_window(const Index& shape, const Index& out, F&& f) {
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

inline std::vector<double> adaptive_avg_pool_definition(const std::vector<double>& x, const Index& shape,
                                                        const Index& out) {
    std::vector<double> y;
    for_each_adaptive_window(shape, out, [&](std::int64_t, const std::vector<std::int64_t>& members) {
        double sum = 0;
        for (std::int64_t i : members) sum += x[static_cast<std::size_t>(i)];
        y.push_back(sum / static_cast<double>(members.size()));
    });
    return y;
}

inline std::vector<double> adaptive_avg_pool_backward_definition(const std::vector<double>& grad_out,
                                                                 const Index& shape, const Index& out) {
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
inline Tensor distinct_tensor(const Index& shape, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<double> v(static_cast<std::size_t>(product(shape)));
    std::iota(v.begin(), v.end(), 0.0);
    std::shuffle(v.begin(), v.end(), rng);
    std::uniform_real_distribution<double> noise(-1e-3, 1e-3);
    for (double& e : v) e = 0.1 * e + noise(rng);
    return Tensor::from_vector(Shape(shape), v);
}

inline PoolParams P(int rank, std::initializer_list<std::int64_t> kernel) {
    return PoolParams(rank, kernel);
}

}  // namespace convkit::pool_test
