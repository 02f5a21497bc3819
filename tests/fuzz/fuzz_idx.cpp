// libFuzzer harness for the IDX reader (plain and gzip): any input must load or raise a
// convkit::Error. Run by scripts/run-fuzzers.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "convkit/data/idx.h"
#include "convkit/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::string path = "/tmp/convkit-fuzz-idx-" + std::to_string(::getpid());
    std::FILE* file = std::fopen(path.c_str(), "wb");
    if (file == nullptr) return 0;
    std::fwrite(data, 1, size, file);
    std::fclose(file);
    try {
        const convkit::data::IdxArray array = convkit::data::read_idx_array(path);
        (void)array.numel();
        (void)convkit::data::read_idx(path).numel();
    } catch (const convkit::Error&) {
        // A rejected file: what the reader must do with bad input.
    }
    return 0;
}
