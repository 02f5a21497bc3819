// Tensors and memory on a CUDA device. Label `gpu`: every test skips, saying why, where there
// is no device; scripts/gpu-all runs them (and compute-sanitizer over them) on a GPU machine.
#include <cmath>
#include <limits>

#include "test_util.h"

namespace convkit {
namespace {

class Cuda : public testing::WithCuda<> {};

TEST_F(Cuda, RoundTripKeepsEveryValue) {
    const std::uint64_t seed = testing::fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    for (DType dtype : {DType::Float32, DType::Float64}) {
        const Tensor host = Tensor::normal(Shape{3, 5, 7, 11}, 0.0, 1.0, seed, dtype);
        const Tensor device = host.to(Device::cuda());
        EXPECT_TRUE(device.device().is_cuda());
        EXPECT_TRUE(testing::exactly_equal(device.to(Device::host()), host));
    }
}

TEST_F(Cuda, RandomFillsMatchTheHostForTheSameSeed) {
    const Tensor on_device = Tensor::uniform(Shape{1000}, -1, 1, 1234, DType::Float32, Device::cuda());
    const Tensor on_host = Tensor::uniform(Shape{1000}, -1, 1, 1234, DType::Float32);
    EXPECT_TRUE(testing::exactly_equal(on_device, on_host));
}

TEST_F(Cuda, FillWritesEveryElementOfOddSizes) {
    for (std::int64_t n : {1, 255, 256, 257, 100003}) {
        Tensor t = testing::nan_tensor(Shape{n}, DType::Float32, Device::cuda());
        t.fill_(2.5);
        for (double v : t.to_vector()) ASSERT_EQ(v, 2.5) << "n=" << n;
    }
}

TEST_F(Cuda, DtypeConversionOnTheDevice) {
    const Tensor d = Tensor::from_vector(Shape{3}, std::vector<double>{0.1, -2.0, 1e300}, Device::cuda());
    const Tensor f = d.to(DType::Float32);
    EXPECT_TRUE(f.device().is_cuda());
    const auto v = f.to_vector();
    EXPECT_EQ(v[0], static_cast<double>(0.1f));
    EXPECT_EQ(v[1], -2.0);
    EXPECT_TRUE(std::isinf(v[2]));
}

// bfloat16 and float16 on the device: the convert kernel equals the host conversion bit for bit
// between every pair of floating dtypes, and fills produce the 16-bit value.
TEST_F(Cuda, SixteenBitConversionsMatchTheHost) {
    const Tensor source = Tensor::normal(Shape{1001}, 0.0, 3e4, 5, DType::Float64);
    const std::vector<DType> dtypes{DType::Float32, DType::Float64, DType::BFloat16, DType::Float16};
    for (DType from : dtypes) {
        const Tensor host = source.to(from);
        const Tensor device = host.to(Device::cuda());
        for (DType to : dtypes) {
            SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + dtype_name(to));
            EXPECT_TRUE(testing::exactly_equal(device.to(to).to(Device::host()), host.to(to)));
        }
    }
    for (DType d : {DType::BFloat16, DType::Float16}) {
        const Tensor on_device = Tensor::full(Shape{300}, 1.0 / 3.0, d, Device::cuda());
        EXPECT_TRUE(testing::exactly_equal(on_device.to(Device::host()), Tensor::full(Shape{300}, 1.0 / 3.0, d)));
    }
}

TEST_F(Cuda, DeviceToDeviceCopyAndClone) {
    const Tensor a = Tensor::normal(Shape{64, 64}, 0, 1, 5, DType::Float32, Device::cuda());
    const Tensor b = a.clone();
    Tensor c = Tensor::zeros(Shape{64, 64}, DType::Float32, Device::cuda());
    c.copy_(b);
    EXPECT_TRUE(testing::exactly_equal(c, a));
}

TEST_F(Cuda, FreedMemoryIsReusedWithoutCallingTheDriver) {
    { Tensor warm = Tensor::empty(Shape{1 << 20}, DType::Float32, Device::cuda()); }
    const MemoryStats before = cuda_memory_stats(0);
    for (int step = 0; step < 10; ++step) {
        Tensor t = Tensor::empty(Shape{1 << 20}, DType::Float32, Device::cuda());
        t.fill_(step);
    }
    const MemoryStats after = cuda_memory_stats(0);
    EXPECT_EQ(after.device_mallocs, before.device_mallocs);
    EXPECT_GE(after.cache_hits, before.cache_hits + 10);
}

TEST_F(Cuda, OutOfMemoryIsAnExceptionAndTheLibraryStaysUsable) {
    // Far more than any GPU has: 2^40 floats = 4 TiB.
    EXPECT_THROW(Tensor::empty(Shape{1 << 20, 1 << 20}, DType::Float32, Device::cuda()), OutOfMemory);
    Tensor after = Tensor::full(Shape{1000}, 3.0, DType::Float32, Device::cuda());
    EXPECT_EQ(after.to_vector()[999], 3.0);
    cuda_empty_cache();
    EXPECT_EQ(Tensor::full(Shape{10}, 1.0, DType::Float64, Device::cuda()).to_vector()[9], 1.0);
}

TEST_F(Cuda, FillIndexesPastTwoToTheThirtyOne) {
    CONVKIT_SKIP_ON_EMULATED_DEVICE("2^31 elements (8 GiB) are too many to emulate");
    // 2^31 + 3 float32 elements (8 GiB): indices that overflow 32 bits must still be written.
    const std::int64_t n = (std::int64_t{1} << 31) + 3;
    Tensor t = Tensor::empty(Shape{n}, DType::Float32, Device::cuda());
    t.fill_(7.0);
    const Tensor host = t.to(Device::host());
    EXPECT_EQ(host.item(0), 7.0);
    EXPECT_EQ(host.item(n - 1), 7.0);
    EXPECT_EQ(host.item((std::int64_t{1} << 31) + 1), 7.0);
}

TEST_F(Cuda, OpsRefuseTensorsOnDifferentDevices) {
    const Tensor x = Tensor::zeros(Shape{1, 1, 4, 4}, DType::Float32, Device::cuda());
    const Tensor w = Tensor::zeros(Shape{1, 1, 3, 3}, DType::Float32, Device::host());
    try {
        conv_forward(x, w, ConvParams(2));
        FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("conv2d: weight is on host but input is on cuda:0"), std::string::npos)
            << e.what();
    }
}

TEST_F(Cuda, StreamGuardRestoresThePreviousStream) {
    const Stream before = current_stream(0);
    {
        StreamGuard guard(Stream{reinterpret_cast<void*>(0x1), 0});
        EXPECT_EQ(current_stream(0).handle, reinterpret_cast<void*>(0x1));
    }
    EXPECT_EQ(current_stream(0), before);
}

TEST_F(Cuda, WorkOnACreatedStreamAndItsCacheGoesWithIt) {
    const Stream stream = create_stream(0);
    {
        StreamGuard guard(stream);
        Tensor t = Tensor::empty(Shape{4096}, DType::Float32, Device::cuda());
        t.fill_(5.0);
        synchronize(0);
        EXPECT_EQ(t.to_vector()[4095], 5.0);
    }
    const std::size_t reserved = cuda_memory_stats(0).reserved_bytes;
    destroy_stream(stream);
    EXPECT_LT(cuda_memory_stats(0).reserved_bytes, reserved);
    EXPECT_THROW(destroy_stream(Stream{}), InvalidArgument);
}

TEST_F(Cuda, RecordStreamChecksTheDevice) {
    const Tensor t = Tensor::zeros(Shape{16}, DType::Float32, Device::cuda());
    EXPECT_THROW(record_stream(t, Stream{nullptr, 1}), InvalidArgument);
    EXPECT_THROW(record_stream(Tensor::zeros(Shape{4}), Stream{}), InvalidArgument);
    const Stream other = create_stream(0);
    record_stream(t, other);  // now waits for `other` before reuse
    destroy_stream(other);
}

TEST_F(Cuda, BuildInfoNamesTheGpu) {
    const std::string info = build_info();
    EXPECT_NE(info.find("GPU cuda:0"), std::string::npos) << info;
}

}  // namespace
}  // namespace convkit
