// Uses the installed convkit as an application would: one include, one op, the version.
//   consumer                   the host path must give the right result; prints build_info()
//   consumer --without-cuda    also: run where neither a driver, the CUDA runtime nor cuDNN can
//                              be found (tests/install/run-relocated-test): a CUDA tensor must be
//                              refused with NotSupported naming the missing driver, and the build
//                              information must say that cuDNN was not loaded and why
#include <convkit/convkit.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {
bool contains(const std::string& text, const char* part) {
    return text.find(part) != std::string::npos;
}

bool cuda_is_refused_for_want_of_a_driver() {
    try {
        convkit::Tensor::zeros(convkit::Shape{4}, convkit::DType::Float32, convkit::Device::cuda());
    } catch (const convkit::NotSupported& error) {
        std::printf("cuda refused: %s\n", error.what());
        return contains(error.what(), "no NVIDIA driver was found");
    }
    std::printf("a CUDA tensor was made without a driver\n");
    return false;
}
}  // namespace

int main(int argc, char** argv) {
    using namespace convkit;
    const Tensor image = Tensor::full(Shape{1, 1, 5, 5}, 1.0);
    const Tensor kernel = Tensor::full(Shape{1, 1, 3, 3}, 1.0);
    const Tensor out = conv_forward(image, kernel, ConvParams(2).set_padding(1));
    // The centre sees all nine ones, a corner four.
    bool ok =
        out.shape() == Shape{1, 1, 5, 5} && out.at<float>({0, 0, 2, 2}) == 9.0f && out.at<float>({0, 0, 0, 0}) == 4.0f;
    std::printf("convkit %s consumer: %s\n", version_string().c_str(), ok ? "ok" : "WRONG RESULT");
    const std::string info = build_info();
    std::printf("%s", info.c_str());
    if (argc > 1 && std::strcmp(argv[1], "--without-cuda") == 0) {
        const bool cudnn_reported =
            !contains(info, "cuDNN compiled") || contains(info, "not loaded: cuDNN: cannot load");
        if (!cudnn_reported) std::printf("build_info does not say that cuDNN could not be loaded\n");
        ok = ok && cuda_is_refused_for_want_of_a_driver() && cudnn_reported;
    }
    return ok ? 0 : 1;
}
