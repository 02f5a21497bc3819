#include "emu/async_copy.h"

#include <algorithm>
#include <cstring>

namespace convkit::emu {

void AsyncCopies::reset(std::size_t threads) {
    pending_.clear();
    bulk_.clear();
    unfenced_.clear();
    committed_groups_.assign(threads, 0);
}

void AsyncCopies::issue(int thread, void* destination, const void* source, std::size_t bytes,
                        std::size_t source_bytes) {
    auto* d = static_cast<unsigned char*>(destination);
    std::memset(d, 0xFF, bytes);  // poison until the wait
    pending_.push_back(
        {thread, -1, d, static_cast<const unsigned char*>(source), bytes, std::min(bytes, source_bytes)});
}

void AsyncCopies::commit(int thread) {
    const int group = committed_groups_[static_cast<std::size_t>(thread)]++;
    for (Copy& c : pending_)
        if (c.thread == thread && c.group < 0) c.group = group;
}

void AsyncCopies::wait(int thread, int allowed) {
    complete_if(thread, committed_groups_[static_cast<std::size_t>(thread)] - std::max(allowed, 0), false);
}

void AsyncCopies::complete_all(int thread) {
    complete_if(thread, 0x7fffffff, true);
}

void AsyncCopies::complete_if(int thread, int below_group, bool uncommitted_too) {
    auto done = [&](const Copy& c) {
        return c.thread == thread && ((c.group >= 0 && c.group < below_group) || (c.group < 0 && uncommitted_too));
    };
    // Copies land in issue order, so a later copy to the same bytes wins as on the GPU.
    for (const Copy& c : pending_) {
        if (!done(c)) continue;
        std::memcpy(c.destination, c.source, c.source_bytes);
        std::memset(c.destination + c.source_bytes, 0, c.bytes - c.source_bytes);
        unfenced_.push_back({c.thread, c.destination, c.bytes});
    }
    pending_.erase(std::remove_if(pending_.begin(), pending_.end(), done), pending_.end());
}

void AsyncCopies::generic_write(int thread, void* p, std::size_t bytes) {
    unfenced_.push_back({thread, static_cast<const unsigned char*>(p), bytes});
}

void AsyncCopies::fence_proxy_async(int thread) {
    std::erase_if(unfenced_, [&](const Write& w) { return w.thread == thread; });
}

int AsyncCopies::unfenced_writer(const void* p, std::size_t bytes) const {
    const auto* begin = static_cast<const unsigned char*>(p);
    for (const Write& w : unfenced_)
        if (begin < w.begin + w.bytes && w.begin < begin + bytes) return w.thread;
    return -1;
}

int AsyncCopies::pending_writer(const void* p, std::size_t bytes) const {
    const auto* begin = static_cast<const unsigned char*>(p);
    for (const Copy& c : pending_)
        if (begin < c.destination + c.bytes && c.destination < begin + bytes) return c.thread;
    for (const BulkCopy& c : bulk_)
        if (begin < c.destination + c.image.size() && c.destination < begin + bytes) return c.thread;
    return -1;
}

void AsyncCopies::issue_bulk(int thread, void* destination, std::vector<unsigned char> image, const void* barrier) {
    auto* d = static_cast<unsigned char*>(destination);
    std::memset(d, 0xFF, image.size());  // poison until it lands
    bulk_.push_back({thread, d, std::move(image), barrier});
}

std::vector<std::pair<const void*, std::size_t>> AsyncCopies::land_bulk() {
    std::vector<std::pair<const void*, std::size_t>> landed;
    for (const BulkCopy& c : bulk_) {
        std::memcpy(c.destination, c.image.data(), c.image.size());
        landed.emplace_back(c.barrier, c.image.size());
    }
    bulk_.clear();
    return landed;
}

}  // namespace convkit::emu
