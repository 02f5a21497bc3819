#include "convkit/data/transforms.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <utility>

#include "backend_api/dtype_dispatch.h"
#include "convkit/error.h"
#include "core/check.h"
#include "data/random_draws.h"

namespace convkit::data {

namespace {

using sampling::uniform;
using sampling::uniform01;

// A host [C, H, W] image of float32 or float64: what every image transform takes.
void check_image(const Tensor& x, const char* op) {
    CONVKIT_REQUIRE(x.defined(), op, "the input is undefined");
    CONVKIT_REQUIRE(x.device().is_host(), op, "the input must be a host tensor, it is on ", x.device().to_string());
    CONVKIT_REQUIRE(x.rank() == 3, op, "the input must be an image [C, H, W], got shape ", x.shape().to_string());
    CONVKIT_REQUIRE(is_floating_point(x.dtype()), op, "the input must be float32 or float64, it is ",
                    dtype_name(x.dtype()));
    if (is_reduced_precision(x.dtype())) {
        throw NotSupported(std::string(op) + ": the input is " + dtype_name(x.dtype()) +
                           "; image transforms run float32 and float64 only");
    }
}

void check_parameter(bool ok, const char* op, const char* name, double value, const char* range) {
    CONVKIT_REQUIRE(ok, op, name, " must be ", range, ", got ", value);
}

// Calls f(T{}) with T the element type of a floating-point tensor.
template <typename F>
decltype(auto) with_float_type(DType dtype, F&& f) {
    switch (dtype) {
        case DType::Float32: return f(float{});
        case DType::Float64: return f(double{});
        case DType::Int64:
        case DType::BFloat16:
        case DType::Float16: break;
    }
    ::convkit::detail::throw_dtype_not_supported("image transform", dtype);
}

struct ImageGeometry {
    std::int64_t channels, height, width;
    explicit ImageGeometry(const Shape& shape) : channels(shape[0]), height(shape[1]), width(shape[2]) {}
    std::int64_t plane() const { return height * width; }
};

// Bilinear sample of one channel plane at (y, x) in pixel coordinates, zero outside: a convex
// combination of the four neighbours, with the ones outside the image counting as 0.
template <typename T>
double bilinear_zero_padded(const T* plane, std::int64_t height, std::int64_t width, double y, double x) {
    const double y_floor = std::floor(y);
    const double x_floor = std::floor(x);
    const auto y0 = static_cast<std::int64_t>(y_floor);
    const auto x0 = static_cast<std::int64_t>(x_floor);
    const double dy = y - y_floor;
    const double dx = x - x_floor;
    double sum = 0.0;
    for (int i = 0; i < 2; ++i) {
        for (int j = 0; j < 2; ++j) {
            const std::int64_t yy = y0 + i;
            const std::int64_t xx = x0 + j;
            const double weight = (i == 0 ? 1.0 - dy : dy) * (j == 0 ? 1.0 - dx : dx);
            if (weight == 0.0 || yy < 0 || yy >= height || xx < 0 || xx >= width) continue;
            sum += weight * static_cast<double>(plane[yy * width + xx]);
        }
    }
    return sum;
}

}  // namespace

Transform compose(std::vector<Transform> transforms) {
    for (std::size_t i = 0; i < transforms.size(); ++i) {
        CONVKIT_REQUIRE(static_cast<bool>(transforms[i]), "compose", "transform ", i, " is empty");
    }
    return [transforms = std::move(transforms)](const Tensor& input, std::mt19937_64& rng) {
        Tensor x = input;
        for (const Transform& t : transforms) x = t(x, rng);
        return x;
    };
}

Transform scale_to_unit(double max_value) {
    check_parameter(std::isfinite(max_value) && max_value > 0, "scale_to_unit", "max_value", max_value,
                    "positive and finite");
    return [max_value](const Tensor& x, std::mt19937_64&) {
        CONVKIT_REQUIRE(x.defined() && x.device().is_host(), "scale_to_unit", "the input must be a defined host tensor");
        const DType out_type = x.dtype() == DType::Int64 ? DType::Float32 : x.dtype();
        Tensor y = Tensor::empty(x.shape(), out_type);
        const std::int64_t n = x.numel();
        with_float_type(out_type, [&](auto zero) {
            using T = decltype(zero);
            T* out = y.data<T>();
            if (x.dtype() == DType::Int64) {
                const std::int64_t* in = x.data<std::int64_t>();
                for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(static_cast<double>(in[i]) / max_value);
            } else {
                const T* in = x.data<T>();
                for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(static_cast<double>(in[i]) / max_value);
            }
        });
        return y;
    };
}

Transform normalize(std::vector<double> mean, std::vector<double> stddev) {
    CONVKIT_REQUIRE(!mean.empty() && !stddev.empty(), "normalize", "mean and stddev need at least one value each");
    for (double s : stddev) check_parameter(std::isfinite(s) && s > 0, "normalize", "every stddev", s, "positive and finite");
    for (double m : mean) check_parameter(std::isfinite(m), "normalize", "every mean", m, "finite");
    return [mean = std::move(mean), stddev = std::move(stddev)](const Tensor& x, std::mt19937_64&) {
        check_image(x, "normalize");
        const ImageGeometry g(x.shape());
        for (const auto& [values, name] : {std::pair{&mean, "mean"}, std::pair{&stddev, "stddev"}}) {
            CONVKIT_REQUIRE(values->size() == 1 || static_cast<std::int64_t>(values->size()) == g.channels, "normalize",
                            name, " has ", values->size(), " values but the image has ", g.channels,
                            " channels (give one value, or one per channel)");
        }
        Tensor y = Tensor::empty(x.shape(), x.dtype());
        with_float_type(x.dtype(), [&](auto zero) {
            using T = decltype(zero);
            const T* in = x.data<T>();
            T* out = y.data<T>();
            for (std::int64_t c = 0; c < g.channels; ++c) {
                const double m = mean[mean.size() == 1 ? 0 : static_cast<std::size_t>(c)];
                const double s = stddev[stddev.size() == 1 ? 0 : static_cast<std::size_t>(c)];
                for (std::int64_t i = c * g.plane(); i < (c + 1) * g.plane(); ++i) {
                    out[i] = static_cast<T>((static_cast<double>(in[i]) - m) / s);
                }
            }
        });
        return y;
    };
}

Transform random_crop(std::int64_t height, std::int64_t width, std::int64_t padding) {
    CONVKIT_REQUIRE(height >= 1 && width >= 1, "random_crop", "the crop size must be at least 1 x 1, got ", height, " x ",
                    width);
    CONVKIT_REQUIRE(padding >= 0, "random_crop", "padding must be 0 or more, got ", padding);
    return [height, width, padding](const Tensor& x, std::mt19937_64& rng) {
        check_image(x, "random_crop");
        const ImageGeometry g(x.shape());
        CONVKIT_REQUIRE(height <= g.height + 2 * padding && width <= g.width + 2 * padding, "random_crop", "a ", height,
                        " x ", width, " crop does not fit an image ", x.shape().to_string(), " padded by ", padding);
        // The window's corner in input coordinates (negative: inside the padding).
        const auto top = static_cast<std::int64_t>(sampling::uniform_below(rng, g.height + 2 * padding - height + 1)) - padding;
        const auto left = static_cast<std::int64_t>(sampling::uniform_below(rng, g.width + 2 * padding - width + 1)) - padding;
        Tensor y = Tensor::empty(Shape{g.channels, height, width}, x.dtype());
        with_float_type(x.dtype(), [&](auto zero) {
            using T = decltype(zero);
            const T* in = x.data<T>();
            T* out = y.data<T>();
            for (std::int64_t c = 0; c < g.channels; ++c) {
                for (std::int64_t i = 0; i < height; ++i) {
                    const std::int64_t row = top + i;
                    for (std::int64_t j = 0; j < width; ++j) {
                        const std::int64_t column = left + j;
                        const bool inside = row >= 0 && row < g.height && column >= 0 && column < g.width;
                        out[(c * height + i) * width + j] = inside ? in[c * g.plane() + row * g.width + column] : T{0};
                    }
                }
            }
        });
        return y;
    };
}

Transform random_horizontal_flip(double p) {
    check_parameter(p >= 0.0 && p <= 1.0, "random_horizontal_flip", "p", p, "in [0, 1]");
    return [p](const Tensor& x, std::mt19937_64& rng) {
        check_image(x, "random_horizontal_flip");
        if (uniform01(rng) >= p) return x;
        const ImageGeometry g(x.shape());
        Tensor y = Tensor::empty(x.shape(), x.dtype());
        with_float_type(x.dtype(), [&](auto zero) {
            using T = decltype(zero);
            const T* in = x.data<T>();
            T* out = y.data<T>();
            for (std::int64_t row = 0; row < g.channels * g.height; ++row) {
                std::reverse_copy(in + row * g.width, in + (row + 1) * g.width, out + row * g.width);
            }
        });
        return y;
    };
}

Transform random_affine(double degrees, double translate) {
    check_parameter(std::isfinite(degrees) && degrees >= 0 && degrees <= 180, "random_affine", "degrees", degrees,
                    "in [0, 180]");
    check_parameter(translate >= 0.0 && translate <= 1.0, "random_affine", "translate", translate, "in [0, 1]");
    return [degrees, translate](const Tensor& x, std::mt19937_64& rng) {
        check_image(x, "random_affine");
        const ImageGeometry g(x.shape());
        const double angle = uniform(rng, -degrees, degrees) * std::numbers::pi / 180.0;
        const double shift_x = uniform(rng, -translate, translate) * static_cast<double>(g.width);
        const double shift_y = uniform(rng, -translate, translate) * static_cast<double>(g.height);
        const double cos_a = std::cos(angle);
        const double sin_a = std::sin(angle);
        const double centre_y = (static_cast<double>(g.height) - 1.0) / 2.0;
        const double centre_x = (static_cast<double>(g.width) - 1.0) / 2.0;
        Tensor y = Tensor::empty(x.shape(), x.dtype());
        with_float_type(x.dtype(), [&](auto zero) {
            using T = decltype(zero);
            const T* in = x.data<T>();
            T* out = y.data<T>();
            for (std::int64_t i = 0; i < g.height; ++i) {
                for (std::int64_t j = 0; j < g.width; ++j) {
                    // Output pixel = R (source - centre) + centre + shift; so the source is
                    // R^-1 (output - centre - shift) + centre, R^-1 the rotation by -angle.
                    const double u = static_cast<double>(j) - centre_x - shift_x;
                    const double v = static_cast<double>(i) - centre_y - shift_y;
                    const double source_x = cos_a * u + sin_a * v + centre_x;
                    const double source_y = -sin_a * u + cos_a * v + centre_y;
                    for (std::int64_t c = 0; c < g.channels; ++c) {
                        out[c * g.plane() + i * g.width + j] = static_cast<T>(
                            bilinear_zero_padded(in + c * g.plane(), g.height, g.width, source_y, source_x));
                    }
                }
            }
        });
        return y;
    };
}

Transform gaussian_noise(double stddev) {
    check_parameter(std::isfinite(stddev) && stddev >= 0, "gaussian_noise", "stddev", stddev, "0 or more and finite");
    return [stddev](const Tensor& x, std::mt19937_64& rng) {
        check_image(x, "gaussian_noise");
        Tensor y = Tensor::empty(x.shape(), x.dtype());
        with_float_type(x.dtype(), [&](auto zero) {
            using T = decltype(zero);
            const T* in = x.data<T>();
            T* out = y.data<T>();
            for (std::int64_t i = 0; i < x.numel(); ++i) {
                out[i] = static_cast<T>(static_cast<double>(in[i]) + stddev * sampling::standard_normal(rng));
            }
        });
        return y;
    };
}

Transform brightness_contrast(double brightness, double contrast) {
    check_parameter(brightness >= 0.0 && brightness <= 1.0, "brightness_contrast", "brightness", brightness, "in [0, 1]");
    check_parameter(contrast >= 0.0 && contrast <= 1.0, "brightness_contrast", "contrast", contrast, "in [0, 1]");
    return [brightness, contrast](const Tensor& x, std::mt19937_64& rng) {
        check_image(x, "brightness_contrast");
        const double factor = uniform(rng, 1.0 - brightness, 1.0 + brightness);
        const double gain = uniform(rng, 1.0 - contrast, 1.0 + contrast);
        Tensor y = Tensor::empty(x.shape(), x.dtype());
        with_float_type(x.dtype(), [&](auto zero) {
            using T = decltype(zero);
            const T* in = x.data<T>();
            T* out = y.data<T>();
            const std::int64_t n = x.numel();
            double sum = 0.0;
            for (std::int64_t i = 0; i < n; ++i) sum += static_cast<double>(in[i]) * factor;
            const double mean = n > 0 ? sum / static_cast<double>(n) : 0.0;
            for (std::int64_t i = 0; i < n; ++i) {
                const double brightened = static_cast<double>(in[i]) * factor;
                out[i] = static_cast<T>(std::clamp(mean + (brightened - mean) * gain, 0.0, 1.0));
            }
        });
        return y;
    };
}

}  // namespace convkit::data
