// A first look at convkit: tensors, a convolution as a feature detector, the convolution
// arithmetic exercise, and what GPU (if any) this machine has.
#include <cstdio>
#include <exception>

#include "convkit/convkit.h"

using namespace convkit;

namespace {
void section(const char* title) { std::printf("\n== %s ==\n", title); }

void show_tensors() {
    section("Tensors");
    const Tensor ramp = Tensor::from_vector(Shape{2, 3}, std::vector<float>{0, 1, 2, 3, 4, 5});
    std::printf("%s\n", ramp.to_string().c_str());
    const Tensor noise = Tensor::normal(Shape{1, 1, 3, 4}, 0.0, 1.0, /*seed=*/42);
    std::printf("%s\n", noise.to_string().c_str());
}

// A vertical edge in a 6x8 image, and a Sobel-like kernel that responds only where it is.
void show_edge_detector() {
    section("A kernel as a feature detector");
    Tensor image = Tensor::zeros(Shape{1, 1, 6, 8});
    for (std::int64_t h = 0; h < 6; ++h)
        for (std::int64_t w = 4; w < 8; ++w) image.at<float>({0, 0, h, w}) = 1.0f;
    const Tensor kernel = Tensor::from_vector(Shape{1, 1, 3, 3}, std::vector<float>{-1, 0, 1, -2, 0, 2, -1, 0, 1});
    std::printf("image (dark left, bright right):\n%s\n", image.to_string().c_str());
    const Tensor response = conv_forward(image, kernel, ConvParams(2));
    std::printf("response of a vertical-edge kernel (non-zero only at the edge):\n%s\n",
                response.to_string().c_str());
    const Tensor pooled = max_pool_forward(response, PoolParams(2, 2));
    std::printf("after 2x2 max pooling:\n%s\n", pooled.to_string().c_str());
}

void show_arithmetic() {
    section("Convolution arithmetic");
    const std::int64_t conv = conv_output_size(256, /*kernel=*/3, /*stride=*/2, /*padding=*/1);
    const std::int64_t pool = pool_output_size(conv, /*kernel=*/4, /*stride=*/1, /*padding=*/0);
    std::printf("256x256 image -> conv(k=3, s=2, p=1) -> %lldx%lld -> max_pool(k=4, s=1, p=0) -> %lldx%lld\n",
                static_cast<long long>(conv), static_cast<long long>(conv), static_cast<long long>(pool),
                static_cast<long long>(pool));
    const std::int64_t up = conv_transpose_output_size(pool, /*kernel=*/4, /*stride=*/2, /*padding=*/1);
    std::printf("conv_transpose(k=4, s=2, p=1) of %lld -> %lld (doubles the size)\n", static_cast<long long>(pool),
                static_cast<long long>(up));
}

void show_gpu() {
    section("Build and GPU");
    std::printf("%s", build_info().c_str());
    if (!cuda_is_available()) {
        std::printf("No GPU found: everything above ran on the host reference backend.\n");
        return;
    }
    const Tensor on_gpu = Tensor::uniform(Shape{2, 2}, -1, 1, 7, DType::Float32, Device::cuda());
    std::printf("A tensor on the GPU:\n%s\n", on_gpu.to_string().c_str());
}
}  // namespace

int main() {
    try {
        std::printf("convkit %s demo\n", version_string().c_str());
        show_tensors();
        show_edge_detector();
        show_arithmetic();
        show_gpu();
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
