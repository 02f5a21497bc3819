// The host allocator's block cache (src/memory/host_allocator.cpp): large freed blocks are
// reused for the next request of the same size, small ones are left to malloc, and every block
// is 64-byte aligned. Under AddressSanitizer, or with CONVKIT_HOST_CACHE=0, nothing is cached.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "memory/host_allocator.h"
#include "test_util.h"

namespace convkit {
namespace {

bool cache_expected() {
#if defined(__SANITIZE_ADDRESS__)
    return false;
#else
    const char* setting = std::getenv("CONVKIT_HOST_CACHE");
    return !(setting != nullptr && std::strcmp(setting, "0") == 0);
#endif
}

TEST(HostAllocator, ReusesALargeFreedBlockForTheSameSize) {
    if (!cache_expected()) GTEST_SKIP() << "the host block cache is off in this build or environment";
    constexpr std::size_t kBytes = std::size_t{3} << 20;
    void* first = nullptr;
    {
        std::shared_ptr<void> block = detail::allocate_host(kBytes);
        first = block.get();
        std::memset(first, 1, kBytes);  // the whole block is usable
    }
    // A request that rounds to the same page count gets the same block back.
    const std::shared_ptr<void> again = detail::allocate_host(kBytes - 100);
    EXPECT_EQ(again.get(), first);
    // While it is in use, a second request of that size gets another block.
    const std::shared_ptr<void> other = detail::allocate_host(kBytes);
    EXPECT_NE(other.get(), again.get());
}

TEST(HostAllocator, BlocksAreAlignedAndLargeTensorsWork) {
    for (std::size_t bytes : {std::size_t{0}, std::size_t{1}, std::size_t{1000}, std::size_t{300000},
                              (std::size_t{5} << 20) + 3}) {
        const std::shared_ptr<void> block = detail::allocate_host(bytes);
        ASSERT_NE(block.get(), nullptr);
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(block.get()) % 64, 0u) << bytes << " bytes";
    }
    // A reused block holds old values; tensors that promise contents write them.
    for (int i = 0; i < 3; ++i) {
        const Tensor zeros = Tensor::zeros(Shape{512, 1024});
        EXPECT_EQ(zeros.to_vector()[12345], 0.0);
        const Tensor full = Tensor::full(Shape{512, 1024}, 2.0);
        EXPECT_EQ(full.to_vector()[54321], 2.0);
    }
}

}  // namespace
}  // namespace convkit
