// libFuzzer harness for the safetensors loader: any input must load or raise a convkit::Error;
// any other exception, a crash, a leak or undefined behaviour is a finding. Crashes found become
// regression tests in tests/test_safetensors.cpp. Run by scripts/run-fuzzers.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "convkit/error.h"
#include "convkit/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // The loader reads files (it validates sizes against the file's), so the input goes through one.
    static const std::string path = "/tmp/convkit-fuzz-safetensors-" + std::to_string(::getpid());
    std::FILE* file = std::fopen(path.c_str(), "wb");
    if (file == nullptr) return 0;
    std::fwrite(data, 1, size, file);
    std::fclose(file);
    try {
        std::map<std::string, std::string> metadata;
        const convkit::TensorMap tensors = convkit::load_safetensors(path, &metadata);
        for (const auto& [name, tensor] : tensors) (void)tensor.nbytes();
    } catch (const convkit::Error&) {
        // A rejected file: what the loader must do with bad input.
    }
    return 0;
}
