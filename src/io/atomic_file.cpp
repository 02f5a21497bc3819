#include "io/atomic_file.h"

#include "convkit/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <system_error>

#include "convkit/error.h"
#include "core/check.h"

namespace convkit::detail {

namespace {

std::string error_text(int error) { return std::system_category().message(error); }

// Temporary names differ between processes (the pid) and between writers in one process (the
// counter); O_EXCL makes a clash with a leftover file from a crashed run an EEXIST, then retried.
std::string temporary_name(const std::string& directory, const std::string& file_name) {
    static std::atomic<unsigned long> counter{0};
    return concat(directory, "/.", file_name, ".tmp-", ::getpid(), "-", counter.fetch_add(1));
}

// Linux releases the descriptor even when close fails (EINTR included), so it is never retried.
int close_reporting_error(int fd) { return ::close(fd) == 0 ? 0 : errno; }

}  // namespace

AtomicFile::AtomicFile(std::string path, std::string op) : path_(std::move(path)), op_(std::move(op)) {
    const std::size_t slash = path_.find_last_of('/');
    const std::string file_name = slash == std::string::npos ? path_ : path_.substr(slash + 1);
    directory_ = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
    if (file_name.empty() || file_name == "." || file_name == "..") {
        throw IoError(concat(op_, ": cannot write '", path_, "': the path names a directory, not a file"));
    }
    constexpr int kAttempts = 100;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        temporary_path_ = temporary_name(directory_ == "/" ? "" : directory_, file_name);
        // 0666 before the umask: the permissions any new file would get.
        fd_ = ::open(temporary_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd_ >= 0) return;
        if (errno != EEXIST && errno != EINTR) break;
    }
    const int error = errno;
    throw IoError(concat(op_, ": cannot create a temporary file in '", directory_, "' to write '", path_,
                         "': ", error_text(error)));
}

AtomicFile::~AtomicFile() {
    if (!committed_) discard();
}

void AtomicFile::discard() noexcept {
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    if (!temporary_path_.empty()) ::unlink(temporary_path_.c_str());
}

void AtomicFile::fail(const std::string& what, int error) const {
    throw IoError(concat(op_, ": ", what, " '", path_, "': ", error_text(error)));
}

void AtomicFile::write(const void* data, std::size_t size) {
    if (fd_ < 0) throw IoError(concat(op_, ": '", path_, "' was already committed; nothing more can be written"));
    const auto* bytes = static_cast<const unsigned char*>(data);
    while (size > 0) {
        const ssize_t written = ::write(fd_, bytes, size);
        if (written < 0) {
            if (errno == EINTR) continue;
            fail("cannot write", errno);
        }
        bytes += written;
        size -= static_cast<std::size_t>(written);
    }
}

void AtomicFile::commit() {
    if (fd_ < 0) throw IoError(concat(op_, ": '", path_, "' was already committed"));
    if (::fsync(fd_) != 0) fail("cannot flush to the disk", errno);
    const int fd = fd_;
    fd_ = -1;
    // close can report a deferred write error (NFS); the data is then not safely stored.
    if (const int error = close_reporting_error(fd); error != 0) fail("cannot close", error);
    if (::rename(temporary_path_.c_str(), path_.c_str()) != 0) fail("cannot move the new file over", errno);
    committed_ = true;

    // The new file is in place; make the directory entry durable too. File systems that cannot
    // sync a directory (EINVAL) persist renames on their own terms, which is all we can ask.
    const int directory = ::open(directory_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (directory < 0) fail("wrote, but cannot open the directory to flush it for", errno);
    const int sync_error = ::fsync(directory) == 0 ? 0 : errno;
    ::close(directory);
    if (sync_error != 0 && sync_error != EINVAL) fail("wrote, but cannot flush the directory entry of", sync_error);
}

}  // namespace convkit::detail

namespace convkit {

void write_file_atomically(const std::string& path, std::string_view contents, const std::string& op) {
    detail::AtomicFile file(path, op);
    file.write(contents.data(), contents.size());
    file.commit();
}

}  // namespace convkit
