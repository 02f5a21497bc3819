#include "common/atomic_write.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "convkit/error.h"

namespace convkit::samples {

void write_file_atomically(const std::string& path, std::string_view contents) {
    // The pid keeps two processes writing the same output from sharing a temporary file.
    const std::string temporary = path + ".tmp-" + std::to_string(::getpid());
    auto fail = [&](const char* what) {
        const std::string reason = std::strerror(errno);
        std::remove(temporary.c_str());
        throw IoError("cannot " + std::string(what) + " '" + path + "': " + reason);
    };
    std::FILE* file = std::fopen(temporary.c_str(), "wb");
    if (file == nullptr) fail("create");
    const bool written = std::fwrite(contents.data(), 1, contents.size(), file) == contents.size();
    const bool flushed = std::fflush(file) == 0 && ::fsync(::fileno(file)) == 0;
    if (std::fclose(file) != 0 || !written || !flushed) fail("write");
    if (std::rename(temporary.c_str(), path.c_str()) != 0) fail("rename a temporary file onto");
}

}  // namespace convkit::samples
