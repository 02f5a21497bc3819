#pragma once
// Writing a file so that a crash never leaves a half-written one in its place.
#include <cstddef>
#include <string>

namespace convkit::detail {

// A new file's contents, written to a temporary file beside the target and moved over it only
// once complete and on the disk:
//   1. create "<dir>/.<name>.tmp-<pid>-<n>" (O_EXCL, so two writers never share one);
//   2. write();
//   3. commit(): fsync the file (its data and size reach the disk), close it, rename it over the
//      target (atomic on POSIX: a reader sees the old file or the new one, never a mix), then
//      fsync the directory (so the rename itself survives a power cut).
// Before commit() returns, the target is untouched. If anything fails, or the object is
// destroyed without commit() (an exception while producing the contents), the temporary file is
// removed. Errors are IoError("<op>: ... '<path>' ...: <strerror>").
// Writes go straight to the file descriptor (no user-space buffer), so fsync is the only flush.
class AtomicFile {
public:
    // `op` names the caller in messages ("save_safetensors").
    AtomicFile(std::string path, std::string op);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    void write(const void* data, std::size_t size);
    void commit();

    const std::string& path() const { return path_; }
    const std::string& temporary_path() const { return temporary_path_; }

private:
    [[noreturn]] void fail(const std::string& what, int error) const;
    void discard() noexcept;

    std::string path_;
    std::string op_;
    std::string directory_;
    std::string temporary_path_;
    int fd_ = -1;
    bool committed_ = false;
};

}  // namespace convkit::detail
