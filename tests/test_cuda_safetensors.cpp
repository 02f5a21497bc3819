// Saving CUDA tensors: save_safetensors copies each to the host and writes the same bytes a host
// tensor would give. Label `gpu`: skips, saying why, where there is no device.
#include <cstring>

#include "convkit/io/safetensors.h"
#include "temp_dir.h"
#include "test_util.h"

namespace convkit {
namespace {

class CudaSafetensors : public testing::WithCuda<> {};

TEST_F(CudaSafetensors, SavesTheBytesOfTheHostCopy) {
    CONVKIT_SEEDED_RNG(rng);
    testing::TempDir dir;
    TensorMap on_host;
    TensorMap on_device;
    for (DType dtype : {DType::Float32, DType::Float64, DType::Int64}) {
        for (const Shape& shape : {Shape{}, Shape{3, 5}, Shape{2, 0, 3}, Shape{2, 3, 1, 4, 5}}) {
            Tensor t = Tensor::empty(shape, dtype);
            auto* bytes = static_cast<unsigned char*>(t.raw_data());
            for (std::size_t i = 0; i < t.nbytes(); ++i) bytes[i] = static_cast<unsigned char>(rng());
            const std::string name = std::string(dtype_name(dtype)) + "_" + testing::test_name(shape.to_string());
            on_host[name] = t;
            on_device[name] = t.to(Device::cuda());
        }
    }
    save_safetensors(dir.file("device.safetensors"), on_device);
    save_safetensors(dir.file("host.safetensors"), on_host);
    EXPECT_EQ(testing::read_bytes(dir.file("device.safetensors")), testing::read_bytes(dir.file("host.safetensors")));

    const TensorMap loaded = load_safetensors(dir.file("device.safetensors"));
    ASSERT_EQ(loaded.size(), on_host.size());
    for (const auto& [name, t] : on_host) {
        SCOPED_TRACE(name);
        EXPECT_TRUE(loaded.at(name).device().is_host());
        EXPECT_EQ(loaded.at(name).shape(), t.shape());
        const Tensor back = on_device.at(name).to(Device::host());
        EXPECT_EQ(std::memcmp(back.raw_data(), t.raw_data(), t.nbytes()), 0) << "the device tensor changed";
        EXPECT_EQ(std::memcmp(loaded.at(name).raw_data(), t.raw_data(), t.nbytes()), 0);
    }
}

}  // namespace
}  // namespace convkit
