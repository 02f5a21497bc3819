// Memory formats (convkit/memory_format.h): channels-last tensors convert exactly, read in the
// logical order through every accessor, and every public op given channels-last inputs returns
// the contiguous inputs' result bit for bit (converting at its entry, counted) or runs natively
// on the buffers (elementwise ops, keeping the format). Built twice: on the host (test_memory_format)
// and on the CUDA device (test_memory_format_gpu, CONVKIT_MEMORY_FORMAT_CUDA), which the
// emulated-device build runs on the CPU.
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "convkit/convkit.h"
#include "kernel_sweeps.h"
#include "ops/op_support.h"
#include "temp_dir.h"
#include "test_util.h"

namespace convkit {
namespace testing {
// gtest prints parameters with this instead of their bytes (ConvCase's is kernel_sweeps.h's).
void PrintTo(const PoolCase& c, std::ostream* os) { *os << c.name(); }
}  // namespace testing

namespace {

#ifdef CONVKIT_MEMORY_FORMAT_CUDA
using Fixture = testing::WithCuda<>;
Device test_device() {
    return Device::cuda();
}
#else
// On the host reference (the oracle), which runs channels-last convolutions natively; the
// default host-blas converts (ContiguousOnlyVariantNamedConvertsAndCounts).
class Fixture : public ::testing::Test {
    BackendGuard reference_{Backend::Host};
};
Device test_device() {
    return Device::host();
}
#endif

constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

Tensor input(const Shape& shape, std::uint64_t seed, double low = -1.0, double high = 1.0,
             DType dtype = DType::Float32) {
    return Tensor::uniform(shape, low, high, seed, dtype, test_device());
}

// Exact equality of shape, dtype and every value in the logical order.
void expect_same_values(const Tensor& actual, const Tensor& expected, const std::string& what) {
    ASSERT_EQ(actual.shape(), expected.shape()) << what;
    ASSERT_EQ(actual.dtype(), expected.dtype()) << what;
    EXPECT_EQ(actual.to_vector(), expected.to_vector()) << what;
}

using MemoryFormatTest = Fixture;

TEST_F(MemoryFormatTest, ConversionRoundTripsExactlyForEveryRankAndDtype) {
    for (const Shape& shape : {Shape{2, 3, 5}, Shape{2, 3, 4, 5}, Shape{2, 3, 2, 4, 5}, Shape{0, 3, 2, 2}}) {
        for (DType dtype : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16}) {
            const Tensor x = input(shape, 7, -1.0, 1.0, dtype);
            const Tensor cl = x.to(kCL);
            EXPECT_EQ(cl.memory_format(), kCL);
            EXPECT_FALSE(cl.is_contiguous());
            expect_same_values(cl, x, shape.to_string());
            const Tensor back = cl.contiguous();
            EXPECT_TRUE(back.is_contiguous());
            expect_same_values(back, x, shape.to_string());
        }
    }
}

TEST_F(MemoryFormatTest, ChannelsLastBufferIsChannelsInnermost) {
    // [N=1, C=2, H=2, W=3]: values 0..11 in the logical order.
    std::vector<double> values(12);
    for (int i = 0; i < 12; ++i) values[static_cast<std::size_t>(i)] = i;
    const Tensor x = Tensor::from_vector(Shape{1, 2, 2, 3}, values).to(kCL).to(Device::host());
    const double* p = x.physical_data<double>();
    // NHWC: (h, w, c) with c fastest.
    const std::vector<double> expected{0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11};
    EXPECT_EQ(std::vector<double>(p, p + 12), expected);
    EXPECT_EQ(x.at<double>({0, 1, 1, 2}), 11.0);
    EXPECT_EQ(x.at<double>({0, 1, 0, 0}), 6.0);
    EXPECT_EQ(x.item(6), 6.0);
}

TEST_F(MemoryFormatTest, AlreadyInTheFormatSharesStorage) {
    const Tensor x = input(Shape{2, 3, 4, 4}, 1);
    const Tensor cl = x.to(kCL);
    EXPECT_EQ(cl.to(kCL).raw_physical_data(), cl.raw_physical_data());
    EXPECT_EQ(x.contiguous().raw_data(), x.raw_data());
}

TEST_F(MemoryFormatTest, ChannelsLastNeedsRankThreeToFive) {
    EXPECT_THROW(input(Shape{3, 4}, 1).to(kCL), InvalidArgument);
    EXPECT_THROW(input(Shape{1, 1, 1, 1, 1, 2}, 1).to(kCL), InvalidArgument);
    EXPECT_THROW(Tensor::empty(Shape{4}, DType::Float32, test_device(), kCL), InvalidArgument);
}

TEST_F(MemoryFormatTest, FactoriesTakeTheFormat) {
    const Tensor z = Tensor::zeros(Shape{2, 3, 4}, DType::Float32, test_device(), kCL);
    EXPECT_EQ(z.memory_format(), kCL);
    EXPECT_EQ(z.to_vector(), std::vector<double>(24, 0.0));
    Tensor u = Tensor::empty(Shape{2, 3, 4, 4}, DType::Float32, test_device(), kCL);
    u.fill_uniform_(-1.0, 1.0, 5);
    // A random fill draws element i of the logical order, as in a contiguous tensor.
    expect_same_values(u, input(Shape{2, 3, 4, 4}, 5), "fill_uniform_");
}

TEST_F(MemoryFormatTest, ContiguousAccessorsRefuseAChannelsLastBuffer) {
    const Tensor cl = input(Shape{2, 3, 4, 4}, 1).to(kCL);
    EXPECT_THROW(cl.raw_data(), InvalidArgument);
    EXPECT_THROW(cl.data<float>(), InvalidArgument);
    EXPECT_NO_THROW(cl.physical_data<float>());
}

TEST_F(MemoryFormatTest, DeviceDtypeAndCloneKeepTheFormat) {
    const Tensor x = input(Shape{2, 3, 4, 4}, 1);
    const Tensor cl = x.to(kCL);
    for (const Tensor& t : {cl.to(Device::host()), cl.to(DType::Float64), cl.clone(), cl.to(DType::BFloat16)}) {
        EXPECT_EQ(t.memory_format(), kCL);
    }
    expect_same_values(cl.to(Device::host()), x.to(Device::host()), "to(host)");
    expect_same_values(cl.to(DType::Float64), x.to(DType::Float64), "to(float64)");
    expect_same_values(cl.clone(), x, "clone");
}

TEST_F(MemoryFormatTest, CopyBetweenFormatsKeepsTheDestinationFormat) {
    const Tensor x = input(Shape{2, 3, 4, 4}, 1);
    Tensor cl_dest = Tensor::empty(x.shape(), x.dtype(), test_device(), kCL);
    cl_dest.copy_(x);
    EXPECT_EQ(cl_dest.memory_format(), kCL);
    expect_same_values(cl_dest, x, "contiguous into channels-last");
    Tensor dest = Tensor::empty(x.shape(), x.dtype(), Device::host());
    dest.copy_(x.to(kCL));
    expect_same_values(dest, x.to(Device::host()), "channels-last into contiguous (host)");
}

TEST_F(MemoryFormatTest, ReshapeGoesThroughACountedContiguousCopy) {
    const Tensor x = input(Shape{2, 3, 4, 4}, 1);
    const Tensor cl = x.to(kCL);
    reset_layout_conversions();
    const Tensor flat = cl.reshape(Shape{2, 48});
    EXPECT_EQ(layout_conversions(), 1u);
    EXPECT_TRUE(flat.is_contiguous());
    expect_same_values(flat, x.reshape(Shape{2, 48}), "reshape");
}

TEST_F(MemoryFormatTest, PrintingShowsTheLogicalOrderAndTheFormat) {
    const Tensor x = input(Shape{1, 2, 2, 2}, 1);
    const std::string cl_text = x.to(kCL).to_string();
    EXPECT_NE(cl_text.find("memory_format=channels_last"), std::string::npos);
    const std::string values = x.to_string().substr(x.to_string().find('\n'));
    EXPECT_EQ(cl_text.substr(cl_text.find('\n')), values);
}

TEST_F(MemoryFormatTest, SafetensorsWritesTheLogicalOrder) {
    testing::TempDir dir;
    const std::string path = dir.path() + "/cl.safetensors";
    const Tensor x = input(Shape{2, 3, 4, 4}, 1);
    save_safetensors(path, {{"x", x.to(kCL)}});
    const Tensor loaded = load_safetensors(path).at("x");
    EXPECT_TRUE(loaded.is_contiguous());
    expect_same_values(loaded, x.to(Device::host()), "loaded");
}

TEST_F(MemoryFormatTest, SharedCheckRefusesAnUnconvertedChannelsLastTensor) {
    const Tensor cl = input(Shape{2, 3, 4, 4}, 1).to(kCL);
    try {
        detail::check_same_device_and_dtype("some_op", {{"input", cl}});
        FAIL() << "no exception";
    } catch (const std::logic_error& e) {
        EXPECT_NE(std::string(e.what()).find("some_op: input is channels_last"), std::string::npos) << e.what();
    }
    EXPECT_NO_THROW(detail::check_same_device_and_dtype("some_op", {{"input", cl}}, detail::ReducedPrecision::Refused,
                                                        detail::Layouts::Either));
}

// ---- every public op with channels-last inputs ------------------------------------------------

// Where an op runs channels-last inputs without converting them.
enum class Native { Never, Always, OnHost, OnCuda };
constexpr Native kNative = Native::Always;
constexpr Native kNativeOnHost = Native::OnHost;  // the host reference; the CUDA variants convert
constexpr Native kNativeOnCuda = Native::OnCuda;  // the CUDA kernels; the host loops convert

// An op run on inputs given in `format` (rank 3-5 inputs converted, others as they are).
struct OpCase {
    std::string name;
    std::function<Tensor(MemoryFormat)> run;
    Native native = Native::Never;  // natively: no conversion counted
    bool keeps_format = true;       // a native op's result has its inputs' format (not a weight gradient)
};

bool runs_natively(const OpCase& c) {
    return c.native == Native::Always || (c.native == Native::OnHost && test_device().is_host()) ||
           (c.native == Native::OnCuda && !test_device().is_host());
}

// A weight: always contiguous (the op converts a channels-last one, counted).
Tensor weight(const Shape& shape) { return input(shape, 2); }

Tensor in(const Shape& shape, std::uint64_t seed, MemoryFormat format, double low = -1.0, double high = 1.0) {
    const Tensor t = input(shape, seed, low, high);
    return channels_last_rank(shape.rank()) ? t.to(format) : t;
}

std::vector<OpCase> op_cases() {
    const Shape s{2, 3, 4, 4};
    const Shape s1{2, 3, 8};
    const Shape s3{2, 3, 4, 4, 4};
    auto bn = [](const Tensor& x) {
        Tensor running_mean = Tensor::zeros(Shape{x.size(1)}, DType::Float32, test_device());
        Tensor running_var = Tensor::full(Shape{x.size(1)}, 1.0, DType::Float32, test_device());
        return batch_norm(x, input(Shape{x.size(1)}, 2), input(Shape{x.size(1)}, 3), running_mean, running_var, true);
    };
    // Made when a case runs, not here: the cases are listed while the test program starts (and
    // while ctest lists the tests), where a CUDA tensor cannot exist without a GPU.
    const auto targets = [] {
        return Tensor::from_vector(Shape{2, 4, 4}, std::vector<std::int64_t>(32, 1), test_device());
    };
    std::vector<OpCase> cases{
        {"add", [=](MemoryFormat f) { return add(in(s, 1, f), in(s, 2, f)); }, kNative},
        {"sub", [=](MemoryFormat f) { return sub(in(s, 1, f), in(s, 2, f)); }, kNative},
        {"mul", [=](MemoryFormat f) { return mul(in(s, 1, f), in(s, 2, f)); }, kNative},
        {"div", [=](MemoryFormat f) { return div(in(s, 1, f), in(s, 2, f, 1.0, 2.0)); }, kNative},
        // Broadcasting reads each operand in its own format; the result takes the format of the
        // operand of its shape (a's where both are), else contiguous.
        {"mul broadcast", [=](MemoryFormat f) { return mul(in(s, 1, f), in(Shape{4}, 2, f)); }, kNative},
        {"add bias",
         [=](MemoryFormat f) {
             return add(in(s, 1, f), in(Shape{3, 1, 1}, 2, f));
         },
         kNative},
        {"mul per sample scale",
         [=](MemoryFormat f) {
             return mul(in(s, 1, f), in(Shape{2, 3, 1, 1}, 2, f));
         },
         kNative},
        {"sub from a broadcast",
         [=](MemoryFormat f) {
             return sub(in(Shape{1, 3, 1, 4}, 1, f), in(s, 2, f));
         },
         kNative},
        {"div 1d by channel",
         [=](MemoryFormat f) {
             return div(in(s1, 1, f), in(Shape{3, 1}, 2, f, 1.0, 2.0));
         },
         kNative},
        {"add 3d bias",
         [=](MemoryFormat f) {
             return add(in(s3, 1, f), in(Shape{1, 3, 1, 1, 1}, 2, f));
         },
         kNative},
        {"add a plane",
         [=](MemoryFormat f) {
             return add(in(s, 1, f), in(Shape{1, 3, 4, 4}, 2, f));
         },
         kNative},
        {"mul both broadcast",
         [=](MemoryFormat f) {
             return mul(in(Shape{2, 3, 1, 4}, 1, f), in(Shape{2, 1, 4, 1}, 2, f));
         },
         kNative, false},
        {"add lower rank channels last",
         [=](MemoryFormat f) {
             return add(in(s, 1, f), in(Shape{3, 4, 4}, 2, f));
         },
         kNative},
        // One shape in two formats: b converted to a's format.
        {"add mixed formats", [=](MemoryFormat f) { return add(in(s, 1, f), in(s, 2, MemoryFormat::Contiguous)); }},
        {"add mixed formats contiguous first",
         [=](MemoryFormat f) { return add(in(s, 1, MemoryFormat::Contiguous), in(s, 2, f)); }},
        // Summing to a shape reads the buffer as it is where a format of the result orders the
        // kept dims as that buffer does.
        {"sum_to_shape bias",
         [=](MemoryFormat f) {
             return sum_to_shape(in(s, 1, f), Shape{3, 1, 1});
         },
         kNative, false},
        {"sum_to_shape per sample",
         [=](MemoryFormat f) {
             return sum_to_shape(in(s, 1, f), Shape{2, 3, 1, 1});
         },
         kNative, false},
        {"sum_to_shape plane",
         [=](MemoryFormat f) {
             return sum_to_shape(in(s, 1, f), Shape{1, 3, 4, 4});
         },
         kNative},
        {"sum_to_shape 3d bias",
         [=](MemoryFormat f) {
             return sum_to_shape(in(s3, 1, f), Shape{3, 1, 1, 1});
         },
         kNative, false},
        {"sum_to_shape lower rank",
         [=](MemoryFormat f) {
             return sum_to_shape(in(s, 1, f), Shape{3, 4, 4});
         }},
        {"neg", [=](MemoryFormat f) { return neg(in(s, 1, f)); }, kNative},
        {"exp", [=](MemoryFormat f) { return exp(in(s, 1, f)); }, kNative},
        {"log", [=](MemoryFormat f) { return log(in(s, 1, f, 0.5, 2.0)); }, kNative},
        {"sqrt", [=](MemoryFormat f) { return sqrt(in(s, 1, f, 0.5, 2.0)); }, kNative},
        {"square", [=](MemoryFormat f) { return square(in(s, 1, f)); }, kNative},
        {"abs", [=](MemoryFormat f) { return abs(in(s, 1, f)); }, kNative},
        {"add_scalar", [=](MemoryFormat f) { return add_scalar(in(s, 1, f), 0.5); }, kNative},
        {"mul_scalar", [=](MemoryFormat f) { return mul_scalar(in(s, 1, f), 0.5); }, kNative},
        {"div_scalar", [=](MemoryFormat f) { return div_scalar(in(s, 1, f), 3.0); }, kNative},
        {"pow_scalar", [=](MemoryFormat f) { return pow_scalar(in(s, 1, f, 0.5, 2.0), 1.5); }, kNative},
        {"clamp", [=](MemoryFormat f) { return clamp(in(s, 1, f), -0.5, 0.5); }, kNative},
        {"relu", [=](MemoryFormat f) { return relu(in(s, 1, f)); }, kNative},
        {"leaky_relu", [=](MemoryFormat f) { return leaky_relu(in(s, 1, f), 0.1); }, kNative},
        {"sigmoid", [=](MemoryFormat f) { return sigmoid(in(s, 1, f)); }, kNative},
        {"tanh", [=](MemoryFormat f) { return tanh(in(s, 1, f)); }, kNative},
        {"gelu", [=](MemoryFormat f) { return gelu(in(s, 1, f)); }, kNative},
        {"sum", [=](MemoryFormat f) { return sum(in(s, 1, f)); }},
        {"sum dims",
         [=](MemoryFormat f) {
             return sum(in(s, 1, f), {1, 3}, true);
         }},
        {"mean", [=](MemoryFormat f) { return mean(in(s, 1, f)); }},
        {"mean dims", [=](MemoryFormat f) { return mean(in(s, 1, f), {1}); }},
        {"max", [=](MemoryFormat f) { return max(in(s, 1, f)); }},
        {"max dim", [=](MemoryFormat f) { return max(in(s, 1, f), 1); }},
        {"argmax", [=](MemoryFormat f) { return argmax(in(s, 1, f), 1); }},
        {"sum_to_shape",
         [=](MemoryFormat f) {
             return sum_to_shape(in(s, 1, f), Shape{1, 3, 1, 1});
         },
         kNative, false},
        {"sum_to_shape same shape", [=](MemoryFormat f) { return sum_to_shape(in(s, 1, f), s); }, kNative},
        {"softmax", [=](MemoryFormat f) { return softmax(in(s, 1, f), 1); }},
        {"log_softmax", [=](MemoryFormat f) { return log_softmax(in(s, 1, f), 1); }},
        {"softmax_backward", [=](MemoryFormat f) { return softmax_backward(in(s, 1, f), softmax(in(s, 2, f), 1), 1); }},
        {"log_softmax_backward",
         [=](MemoryFormat f) { return log_softmax_backward(in(s, 1, f), log_softmax(in(s, 2, f), 1), 1); }},
        {"dropout", [=](MemoryFormat f) { return dropout(in(s, 1, f), 0.5, true, 3); }},
        // matmul and linear take matrices only, never channels-last: MatrixOpsRefuseChannelsLastAsBadShape.
        // Convolutions with channels-last activations and contiguous weights: native on the host
        // reference; converted on the CUDA variants, which run contiguous buffers only.
        {"conv1d",
         [=](MemoryFormat f) {
             return conv_forward(in(s1, 1, f), weight(Shape{4, 3, 3}), weight(Shape{4}), ConvParams(1));
         },
         kNativeOnHost},
        {"conv2d",
         [=](MemoryFormat f) {
             return conv_forward(in(s, 1, f), weight(Shape{4, 3, 3, 3}), weight(Shape{4}), ConvParams(2));
         },
         kNativeOnHost},
        {"conv3d",
         [=](MemoryFormat f) {
             return conv_forward(in(s3, 1, f), weight(Shape{2, 3, 2, 2, 2}), Tensor(), ConvParams(3));
         },
         kNativeOnHost},
        {"conv2d channels_last weight",
         [=](MemoryFormat f) {
             return conv_forward(in(s, 1, f), in(Shape{4, 3, 3, 3}, 2, f), Tensor(), ConvParams(2));
         }},
        {"conv2d_backward_data",
         [=](MemoryFormat f) {
             return conv_backward_data(in(Shape{2, 4, 2, 2}, 1, f), weight(Shape{4, 3, 3, 3}), s, ConvParams(2));
         },
         kNativeOnHost},
        {"conv2d_backward_filter",
         [=](MemoryFormat f) {
             return conv_backward_filter(in(Shape{2, 4, 2, 2}, 1, f), in(s, 2, f), Shape{4, 3, 3, 3}, ConvParams(2));
         },
         kNativeOnHost, false},
        {"conv2d_backward_filter mixed formats",
         [=](MemoryFormat f) {
             return conv_backward_filter(in(Shape{2, 4, 2, 2}, 1, f), in(s, 2, MemoryFormat::Contiguous),
                                         Shape{4, 3, 3, 3}, ConvParams(2));
         }},
        {"conv_backward_bias", [=](MemoryFormat f) { return conv_backward_bias(in(s, 1, f)); }, kNativeOnHost, false},
        {"conv_transpose2d",
         [=](MemoryFormat f) {
             return conv_transpose_forward(in(s, 1, f), weight(Shape{3, 2, 3, 3}), weight(Shape{2}), ConvParams(2));
         },
         kNativeOnHost},
        {"conv_transpose2d_backward_data",
         [=](MemoryFormat f) {
             return conv_transpose_backward_data(in(Shape{2, 2, 6, 6}, 1, f), weight(Shape{3, 2, 3, 3}), s,
                                                 ConvParams(2));
         },
         kNativeOnHost},
        {"conv_transpose2d_backward_filter",
         [=](MemoryFormat f) {
             return conv_transpose_backward_filter(in(Shape{2, 2, 6, 6}, 1, f), in(s, 2, f), Shape{3, 2, 3, 3},
                                                   ConvParams(2));
         },
         kNativeOnHost, false},
        // Pooling: native on the host reference and on cuda.direct.
        {"max_pool2d", [=](MemoryFormat f) { return max_pool_forward(in(s, 1, f), PoolParams(2, 2)); }, kNative},
        {"max_pool2d_backward",
         [=](MemoryFormat f) {
             return max_pool_backward(in(Shape{2, 3, 2, 2}, 1, f), in(s, 2, f), PoolParams(2, 2));
         },
         kNative},
        {"avg_pool3d", [=](MemoryFormat f) { return avg_pool_forward(in(s3, 1, f), PoolParams(3, 2)); }, kNative},
        {"avg_pool2d_backward",
         [=](MemoryFormat f) {
             return avg_pool_backward(in(Shape{2, 3, 2, 2}, 1, f), s, PoolParams(2, 2));
         },
         kNative},
        {"adaptive_avg_pool2d",
         [=](MemoryFormat f) {
             return adaptive_avg_pool_forward(in(s, 1, f), {3, 3});
         },
         kNative},
        {"adaptive_avg_pool2d_backward",
         [=](MemoryFormat f) {
             return adaptive_avg_pool_backward(in(Shape{2, 3, 3, 3}, 1, f), s);
         },
         kNative},
        {"global_avg_pool", [=](MemoryFormat f) { return global_avg_pool_forward(in(s, 1, f)); }, kNative},
        {"global_avg_pool_backward",
         [=](MemoryFormat f) {
             return global_avg_pool_backward(in(Shape{2, 3, 1, 1}, 1, f), s);
         },
         kNative},
        {"upsample_nearest",
         [=](MemoryFormat f) {
             return upsample_nearest(in(s, 1, f), {2, 2});
         }},
        {"upsample_nearest_to_size",
         [=](MemoryFormat f) {
             return upsample_nearest_to_size(in(s, 1, f), {6, 8});
         }},
        {"batch_norm", [=](MemoryFormat f) { return bn(in(s, 1, f)); }, kNativeOnCuda},
        {"batch_norm3d", [=](MemoryFormat f) { return bn(in(s3, 1, f)); }, kNativeOnCuda},
        {"mse_loss", [=](MemoryFormat f) { return mse_loss(in(s, 1, f), in(s, 2, f)); }},
        {"cross_entropy", [=](MemoryFormat f) { return cross_entropy(in(s, 1, f), targets()); }},
        {"binary_cross_entropy_with_logits",
         [=](MemoryFormat f) { return binary_cross_entropy_with_logits(in(s, 1, f), in(s, 2, f, 0.0, 1.0)); }},
        {"flatten", [=](MemoryFormat f) { return flatten(in(s, 1, f)); }},
        {"concat",
         [=](MemoryFormat f) {
             return concat({in(s, 1, f), in(s, 2, f)}, 1);
         }},
        {"slice", [=](MemoryFormat f) { return slice(in(s, 1, f), 2, 1, 3); }},
        {"split",
         [=](MemoryFormat f) {
             return split(in(s, 1, f), 1, {1, 2})[1];
         }},
        {"reshape",
         [=](MemoryFormat f) {
             return in(s, 1, f).reshape(Shape{6, 16});
         }},
    };
    return cases;
}

void PrintTo(const OpCase& c, std::ostream* out) {
    *out << c.name;
}

class ChannelsLastOps : public Fixture, public ::testing::WithParamInterface<OpCase> {};

TEST_P(ChannelsLastOps, EqualTheContiguousResultBitForBit) {
    const OpCase& c = GetParam();
    const Tensor expected = c.run(MemoryFormat::Contiguous);
    reset_layout_conversions();
    const Tensor actual = c.run(kCL);
    const std::uint64_t conversions = layout_conversions();
    expect_same_values(actual, expected, c.name);
    if (c.native != Native::Never && c.keeps_format) {
        EXPECT_EQ(actual.memory_format(), kCL) << c.name << " keeps the format of its inputs";
    }
    if (runs_natively(c)) {
        EXPECT_EQ(conversions, 0u) << c.name << " runs natively on channels-last buffers";
    } else {
        EXPECT_GT(conversions, 0u) << c.name << " converts its channels-last inputs and counts it";
    }
}

INSTANTIATE_TEST_SUITE_P(EveryOp, ChannelsLastOps, ::testing::ValuesIn(op_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                             std::string name = info.param.name;
                             for (char& ch : name) {
                                 if (ch == ' ') ch = '_';
                             }
                             return name;
                         });

TEST_F(MemoryFormatTest, MetricsReadChannelsLastLogitsInTheLogicalOrder) {
    // Per-pixel logits [N, classes, H, W], as a segmentation network's last convolution gives them.
    const Tensor logits = input(Shape{2, 3, 4, 4}, 1);
    const Tensor targets = Tensor::from_vector(Shape{2, 4, 4}, std::vector<std::int64_t>(32, 1), test_device());
    EXPECT_EQ(accuracy(logits.to(kCL), targets), accuracy(logits, targets));
    expect_same_values(predicted_classes(logits.to(kCL)), predicted_classes(logits), "predicted classes");
    expect_same_values(confusion_matrix(logits.to(kCL), targets, 3), confusion_matrix(logits, targets, 3), "confusion");
}

TEST_F(MemoryFormatTest, SixteenBitLayerOpsOnChannelsLastEqualContiguous) {
    // The 16-bit paths widen to float32 (keeping the format), run the float32 op, round once.
    for (DType dtype : {DType::BFloat16, DType::Float16}) {
        auto run = [&](MemoryFormat f) {
            const Tensor x = input(Shape{2, 3, 6, 6}, 1, -1.0, 1.0, dtype).to(f);
            const Tensor w = input(Shape{4, 3, 3, 3}, 2, -1.0, 1.0, dtype);
            const Tensor y = relu(conv_forward(x, w, Tensor(), ConvParams(2).set_padding(1)));
            return std::vector<Tensor>{y, max_pool_forward(y, PoolParams(2, 2)), softmax(y, 1)};
        };
        const std::vector<Tensor> expected = run(MemoryFormat::Contiguous);
        const std::vector<Tensor> actual = run(kCL);
        for (std::size_t i = 0; i < expected.size(); ++i) {
            expect_same_values(actual[i], expected[i], dtype_name(dtype));
            EXPECT_EQ(actual[i].dtype(), dtype);
        }
        EXPECT_EQ(actual[0].memory_format(), kCL);
        EXPECT_EQ(actual[1].memory_format(), kCL);
    }
}

TEST_F(MemoryFormatTest, MatrixOpsRefuseChannelsLastAsBadShape) {
    // An argument error about the shape, as for a contiguous tensor, never the layout logic error.
    const Tensor x = input(Shape{2, 3, 4, 4}, 1).to(kCL);
    EXPECT_THROW(linear(x, input(Shape{2, 4}, 2), Tensor()), InvalidArgument);
    EXPECT_THROW(matmul(x, input(Shape{4, 2}, 2)), InvalidArgument);
    EXPECT_THROW(linear_backward_bias(x), InvalidArgument);
}

// Runs `passes` on contiguous and on channels-last inputs: each result bit-identical, in the
// format `formats` gives it, and no conversion on the host reference nor, where `native` is
// Always, on CUDA (some where it is OnHost: those CUDA variants run contiguous buffers only).
void expect_channels_last_passes_match(const std::function<std::vector<Tensor>(MemoryFormat)>& passes,
                                       const std::vector<std::pair<const char*, MemoryFormat>>& formats,
                                       Native native) {
    const std::vector<Tensor> expected = passes(MemoryFormat::Contiguous);
    reset_layout_conversions();
    const std::vector<Tensor> actual = passes(kCL);
    const std::uint64_t conversions = layout_conversions();
    ASSERT_EQ(actual.size(), formats.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        const auto& [name, format] = formats[i];
        expect_same_values(actual[i], expected[i], name);
        EXPECT_EQ(actual[i].memory_format(), format) << name;
    }
    if (test_device().is_host() || native == Native::Always) {
        EXPECT_EQ(conversions, 0u);
    } else {
        EXPECT_GT(conversions, 0u);
    }
}

// ---- convolution: every pass over the kernel sweep ----------------------------------------------

// The four passes of one geometry with its activations in `format`: y, dx (or the transposed
// op's gradient of its input), dw, db.
std::vector<Tensor> conv_passes(const testing::ConvCase& c, MemoryFormat format) {
    const Tensor x = input(c.input, 1).to(format);
    const Tensor w = weight(c.weight);
    const std::int64_t out_channels = c.transposed ? c.weight[1] * c.params.groups : c.weight[0];
    const Tensor b = input(Shape{out_channels}, 3);
    const Tensor y = c.transposed ? conv_transpose_forward(x, w, b, c.params) : conv_forward(x, w, b, c.params);
    const Tensor dy = input(y.shape(), 4).to(format);
    const Tensor dx = c.transposed ? conv_transpose_backward_data(dy, w, c.input, c.params)
                                   : conv_backward_data(dy, w, c.input, c.params);
    const Tensor dw = c.transposed ? conv_transpose_backward_filter(dy, x, c.weight, c.params)
                                   : conv_backward_filter(dy, x, c.weight, c.params);
    return {y, dx, dw, conv_backward_bias(dy)};
}

class ChannelsLastConvSweep : public Fixture, public ::testing::WithParamInterface<testing::ConvCase> {};

// The host reference reads and writes channels-last activations in place (no conversion) and
// accumulates in the same order, so every pass is bit-identical to the contiguous one; the CUDA
// variants convert (counted) and give the same bits as their contiguous run.
TEST_P(ChannelsLastConvSweep, EveryPassEqualsContiguous) {
    const testing::ConvCase& c = GetParam();
    constexpr MemoryFormat kContiguous = MemoryFormat::Contiguous;
    expect_channels_last_passes_match([&](MemoryFormat f) { return conv_passes(c, f); },
                                      {{"y", kCL}, {"dx", kCL}, {"dw", kContiguous}, {"db", kContiguous}},
                                      kNativeOnHost);
}

INSTANTIATE_TEST_SUITE_P(KernelSweep, ChannelsLastConvSweep, ::testing::ValuesIn(testing::conv_sweep()),
                         testing::conv_case_name);

// ---- pooling: every op and pass over the kernel sweep ---------------------------------------

// Max and average pooling forward and backward, and adaptive average pooling, of one geometry
// with the activations in `format`.
std::vector<Tensor> pool_passes(const testing::PoolCase& c, MemoryFormat format) {
    const Tensor x = input(c.input, 1).to(format);
    const Tensor max_y = max_pool_forward(x, c.params);
    const PoolParams avg_params = PoolParams(c.params).set_dilation(1);  // average pooling has none
    const Tensor avg_y = avg_pool_forward(x, avg_params);
    const Tensor dy = input(max_y.shape(), 2).to(format);
    const Tensor adaptive_y = adaptive_avg_pool_forward(x, std::vector<std::int64_t>(c.input.rank() - 2, 3));
    const Tensor adaptive_dy = input(adaptive_y.shape(), 3).to(format);
    return {max_y,
            max_pool_backward(dy, x, c.params),
            avg_y,
            avg_pool_backward(input(avg_y.shape(), 4).to(format), c.input, avg_params),
            adaptive_y,
            adaptive_avg_pool_backward(adaptive_dy, c.input)};
}

class ChannelsLastPoolSweep : public Fixture, public ::testing::WithParamInterface<testing::PoolCase> {};

TEST_P(ChannelsLastPoolSweep, EveryPassEqualsContiguous) {
    const testing::PoolCase& c = GetParam();
    expect_channels_last_passes_match([&](MemoryFormat f) { return pool_passes(c, f); },
                                      {{"max", kCL},
                                       {"max backward", kCL},
                                       {"avg", kCL},
                                       {"avg backward", kCL},
                                       {"adaptive", kCL},
                                       {"adaptive backward", kCL}},
                                      kNative);
}

INSTANTIATE_TEST_SUITE_P(KernelSweep, ChannelsLastPoolSweep, ::testing::ValuesIn(testing::pool_sweep()),
                         testing::pool_case_name);

#ifndef CONVKIT_MEMORY_FORMAT_CUDA
// The default host backend, host-blas: its max pooling runs contiguous planes only, so a
// channels-last max pooling converts (and converts back); its average pooling is the reference's.
TEST_F(MemoryFormatTest, HostBlasMaxPoolingConvertsAverageDoesNot) {
#ifndef CONVKIT_WITH_OPENBLAS
    GTEST_SKIP() << "this build has no host-blas";
#endif
    BackendGuard blas(Backend::HostBlas);
    const Tensor x = input(Shape{2, 3, 6, 6}, 1);
    const Tensor max_expected = max_pool_forward(x, PoolParams(2, 2));
    reset_layout_conversions();
    const Tensor max_actual = max_pool_forward(x.to(kCL), PoolParams(2, 2));
    EXPECT_EQ(layout_conversions(), 2u);
    expect_same_values(max_actual, max_expected, "max");
    EXPECT_EQ(max_actual.memory_format(), kCL);
    const Tensor avg_expected = avg_pool_forward(x, PoolParams(2, 2));
    reset_layout_conversions();
    const Tensor avg_actual = avg_pool_forward(x.to(kCL), PoolParams(2, 2));
    EXPECT_EQ(layout_conversions(), 0u);
    expect_same_values(avg_actual, avg_expected, "avg");
}

// A variant that runs contiguous buffers only, named for the call: the op converts the input
// (and the result back), counts both, and gives that variant's contiguous result.
TEST_F(MemoryFormatTest, ContiguousOnlyVariantNamedConvertsAndCounts) {
#ifndef CONVKIT_WITH_OPENBLAS
    GTEST_SKIP() << "this build has no host-blas";
#endif
    const Tensor x = input(Shape{2, 3, 7, 6}, 1);
    const Tensor w = weight(Shape{4, 3, 3, 3});
    const ConvParams params = ConvParams(2).set_padding(1);
    set_conv_variant("host.blas");
    const Tensor expected = conv_forward(x, w, Tensor(), params);
    reset_layout_conversions();
    const Tensor actual = conv_forward(x.to(kCL), w, Tensor(), params);
    const std::uint64_t conversions = layout_conversions();
    set_conv_variant("");
    EXPECT_EQ(conversions, 2u) << "the input to contiguous, the result back to channels-last";
    EXPECT_EQ(actual.memory_format(), kCL);
    expect_same_values(actual, expected, "host.blas");
}

// Each pass of a recorded convolution runs in its own format: with only the weight gradient (and
// then the bias gradient too) on a contiguous-only variant, a channels-last training step runs
// the forward and the input gradient on channels-last buffers and converts just x and dy, once
// each, for the passes that need them (the whole layer ran contiguous before: x, y, the residual,
// dy, dx and the residual's gradient converted, 6 conversions). Every result is the contiguous
// step's, bit for bit, through a fused residual and ReLU (the mask applied to dy before it is
// converted).
TEST_F(MemoryFormatTest, EachPassOfATrainingStepRunsInItsOwnFormat) {
#ifndef CONVKIT_WITH_OPENBLAS
    GTEST_SKIP() << "this build has no host-blas";
#endif
    const ConvParams params = ConvParams(2).set_stride(2).set_padding(1);
    const auto leaf = [](const Tensor& t, MemoryFormat format) {
        Tensor l = t.to(format).detach();
        l.set_requires_grad();
        return l;
    };
    struct Step {
        Tensor y, dx, dw, db, dr;
        std::uint64_t conversions;
    };
    // A convolution 3 -> 4 channels, and a transposed one 4 -> 3 (whose weight gradient swaps the
    // roles of x and dy), each with a residual and ReLU.
    for (const bool transposed : {false, true}) {
        const Tensor x0 = transposed ? input(Shape{2, 4, 4, 3}, 1) : input(Shape{2, 3, 7, 6}, 1);
        const Tensor w0 = input(Shape{4, 3, 3, 3}, 2);
        const Tensor b0 = input(Shape{transposed ? 3 : 4}, 3);
        const auto conv = [&](const Tensor& x, const Tensor& w, const Tensor& b, const ConvEpilogue& epilogue) {
            return transposed ? conv_transpose_forward(x, w, b, params, epilogue)
                              : conv_forward(x, w, b, params, epilogue);
        };
        const Shape y_shape = conv(x0, w0, b0, {}).shape();
        const Tensor r0 = input(y_shape, 4);
        const Tensor dy0 = input(y_shape, 5);
        const auto step = [&](MemoryFormat format) {
            const Tensor x = leaf(x0, format), w = leaf(w0, MemoryFormat::Contiguous),
                         b = leaf(b0, MemoryFormat::Contiguous), r = leaf(r0, format);
            reset_layout_conversions();
            const Tensor y = conv(x, w, b, ConvEpilogue{r, true});
            EXPECT_EQ(y.memory_format(), format);
            y.backward(dy0.to(format));
            EXPECT_EQ(x.grad().memory_format(), format);
            EXPECT_EQ(r.grad().memory_format(), format);
            return Step{y, x.grad(), w.grad(), b.grad(), r.grad(), layout_conversions()};
        };
        for (const bool bias_contiguous_only : {false, true}) {
            SCOPED_TRACE(::testing::Message() << (transposed ? "transposed, " : "")
                                              << (bias_contiguous_only ? "weight and bias gradients on host.blas"
                                                                       : "weight gradient on host.blas"));
            const VariantGuard restore;
            set_conv_variant(ConvPass::BackwardFilter, "host.blas");
            if (bias_contiguous_only) set_conv_variant(ConvPass::BackwardBias, "host.blas");
            const Step expected = step(MemoryFormat::Contiguous);
            const Step actual = step(kCL);
            EXPECT_EQ(expected.conversions, 0u);
            EXPECT_EQ(actual.conversions, 2u) << "x and dy to contiguous, once each";
            expect_same_values(actual.y, expected.y, "y");
            expect_same_values(actual.dx, expected.dx, "dx");
            expect_same_values(actual.dw, expected.dw, "dw");
            expect_same_values(actual.db, expected.db, "db");
            expect_same_values(actual.dr, expected.dr, "d residual");
        }
    }
}
#endif

// ---- autograd ---------------------------------------------------------------------------------

TEST_F(MemoryFormatTest, GradientsArriveInTheFormatOfTheirTensorAndMatchContiguous) {
    const Tensor w = input(Shape{4, 3, 3, 3}, 2);
    auto grads = [&](MemoryFormat format) {
        Tensor x = input(Shape{2, 3, 5, 5}, 1).to(format).detach();
        x.set_requires_grad();
        Tensor y = relu(conv_forward(x, w, Tensor(), ConvParams(2)));
        Tensor loss = sum(mul(y, y));
        loss.backward();
        return x.grad();
    };
    const Tensor expected = grads(MemoryFormat::Contiguous);
    const Tensor actual = grads(kCL);
    EXPECT_EQ(actual.memory_format(), kCL);
    expect_same_values(actual, expected, "dL/dx");
}

TEST_F(MemoryFormatTest, GradcheckThroughAChannelsLastConvolution) {
    if (!test_device().is_host()) GTEST_SKIP() << "gradcheck runs float64 host tensors";
    const Tensor x = Tensor::uniform(Shape{2, 3, 5, 4}, -1, 1, 1, DType::Float64);
    const Tensor w = Tensor::uniform(Shape{4, 3, 3, 2}, -1, 1, 2, DType::Float64);
    const Tensor b = Tensor::uniform(Shape{4}, -1, 1, 3, DType::Float64);
    const ConvParams params = ConvParams(2).set_stride(2).set_padding(1);
    auto f = [&](const std::vector<Tensor>& in) {
        const Tensor y = conv_forward(in[0].to(kCL), in[1], in[2], params);
        EXPECT_EQ(y.memory_format(), kCL);
        return y;
    };
    EXPECT_LT(testing::gradcheck_error(f, {x, w, b}, 11), 1e-7);
}

TEST_F(MemoryFormatTest, ARootGradientInAnotherFormatIsConverted) {
    // softmax returns contiguous; a channels-last gradient handed to backward() must not reach
    // its backward as a channels-last buffer.
    Tensor x = input(Shape{2, 3, 4, 4}, 1).detach();
    x.set_requires_grad();
    const Tensor y = softmax(x, 1);
    const Tensor g = input(y.shape(), 2);
    y.backward(g.to(kCL));
    const Tensor expected = x.grad();
    x.clear_grad();
    softmax(x, 1).backward(g);
    expect_same_values(expected, x.grad(), "dx");
}

TEST_F(MemoryFormatTest, NativeElementwiseGradientKeepsTheFormat) {
    Tensor x = input(Shape{2, 3, 4, 4}, 1).to(kCL).detach();
    x.set_requires_grad();
    reset_layout_conversions();
    Tensor y = mul(tanh(x), x);
    y.backward(Tensor::full(y.shape(), 1.0, DType::Float32, test_device()).to(kCL));
    EXPECT_EQ(layout_conversions(), 0u);
    EXPECT_EQ(x.grad().memory_format(), kCL);
}

}  // namespace
}  // namespace convkit
