// detail::AtomicFile, the write protocol checkpoints rely on: the target changes only at
// commit(), and no temporary file outlives a failed write.
#include <sys/stat.h>

#include <stdexcept>

#include "convkit/io/atomic_file.h"
#include "io/atomic_file.h"
#include "temp_dir.h"
#include "test_util.h"

namespace convkit {
namespace {

using detail::AtomicFile;
using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

TEST(AtomicFile, TheTargetChangesOnlyAtCommit) {
    TempDir dir;
    const std::string path = dir.file("state.bin");
    write_bytes(path, "old contents");
    {
        AtomicFile file(path, "test");
        file.write("new ", 4);
        // The temporary lies beside the target (same file system, so rename is atomic).
        EXPECT_EQ(file.temporary_path().rfind(dir.path() + "/.state.bin.tmp-", 0), 0u) << file.temporary_path();
        EXPECT_EQ(dir.entries().size(), 2u);
        EXPECT_EQ(read_bytes(path), "old contents");
        file.write("contents", 8);
        EXPECT_EQ(read_bytes(file.temporary_path()), "new contents");
        file.commit();
        EXPECT_EQ(read_bytes(path), "new contents");
        EXPECT_THROW(file.write("x", 1), IoError);
        EXPECT_THROW(file.commit(), IoError);
    }
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"state.bin"});
}

TEST(AtomicFile, AnExceptionBeforeCommitLeavesTheTargetAndRemovesTheTemporary) {
    TempDir dir;
    const std::string path = dir.file("state.bin");
    write_bytes(path, "old contents");
    EXPECT_THROW(
        {
            AtomicFile file(path, "test");
            file.write("half of the new", 15);
            throw std::runtime_error("the producer failed");
        },
        std::runtime_error);
    EXPECT_EQ(read_bytes(path), "old contents");
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"state.bin"});
}

TEST(AtomicFile, WritersOfOneTargetUseDistinctTemporaries) {
    TempDir dir;
    const std::string path = dir.file("state.bin");
    AtomicFile first(path, "test");
    AtomicFile second(path, "test");
    EXPECT_NE(first.temporary_path(), second.temporary_path());
    first.write("first", 5);
    second.write("second", 6);
    first.commit();
    second.commit();  // the last commit wins, whole
    EXPECT_EQ(read_bytes(path), "second");
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"state.bin"});
}

TEST(AtomicFile, ANewFileGetsTheUsualPermissions) {
    // Not the 0600 of mkstemp: a checkpoint is as readable as any file the user creates.
    TempDir dir;
    const mode_t previous = ::umask(022);
    {
        AtomicFile file(dir.file("state.bin"), "test");
        file.commit();
    }
    ::umask(previous);
    struct stat info {};
    ASSERT_EQ(::stat(dir.file("state.bin").c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0644u);
}

TEST(AtomicFile, ErrorsNameTheOpThePathAndTheReason) {
    TempDir dir;
    const std::string missing = dir.file("missing/state.bin");
    const std::string message = testing::message_of<IoError>([&] { AtomicFile file(missing, "save_thing"); });
    EXPECT_EQ(message, "save_thing: cannot create a temporary file in '" + dir.file("missing") + "' to write '" +
                           missing + "': No such file or directory");
}

// The public one-call form (samples write their PNGs and metrics with it): whole contents in,
// replaced whole, nothing left beside the target, failures naming the caller's op.
TEST(WriteFileAtomically, WritesAndReplacesWholeFilesAndNamesTheOpOnFailure) {
    TempDir dir;
    const std::string path = dir.file("out.txt");
    write_file_atomically(path, "first version\n");
    EXPECT_EQ(testing::read_bytes(path), "first version\n");
    write_file_atomically(path, std::string("x\0y", 3), "write_png");
    EXPECT_EQ(testing::read_bytes(path), std::string("x\0y", 3));
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.txt"});
    const std::string missing = dir.file("missing/out.txt");
    const std::string message = testing::message_of<IoError>([&] { write_file_atomically(missing, "z", "write_png"); });
    EXPECT_EQ(message.rfind("write_png: cannot create a temporary file in '", 0), 0u) << message;
}

}  // namespace
}  // namespace convkit
