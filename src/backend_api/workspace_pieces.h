#pragma once
// Consecutive pieces of a variant's workspace (backend_api/variant.h), each aligned for 16-byte
// vector loads and for cuBLAS: workspace() adds up rounded() sizes, run() takes the same pieces
// in the same order.
#include <cstddef>

#include "backend_api/variant.h"
#include "convkit/error.h"
#include "core/check.h"

namespace convkit::detail {

class WorkspacePieces {
public:
    static constexpr std::size_t kAlignment = 256;
    static std::size_t rounded(std::size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

    explicit WorkspacePieces(WorkspaceView workspace)
        : base_(static_cast<char*>(workspace.data)), bytes_(workspace.bytes) {}
    // Throws Error if the piece would end past the workspace (the last piece need not fill its
    // rounding): run() taking more than workspace() gave (a setting changed between the two
    // calls, or the two disagree) is a bug to report, not memory to overrun.
    void* take(std::size_t bytes) {
        if (bytes == 0) return nullptr;
        if (offset_ + bytes > bytes_) {
            throw Error(concat("workspace: a piece of ", bytes, " bytes at offset ", offset_, " ends past the ", bytes_,
                               " bytes the variant's workspace() asked for"));
        }
        void* piece = base_ + offset_;
        offset_ += rounded(bytes);
        return piece;
    }

private:
    char* base_;
    std::size_t bytes_;
    std::size_t offset_ = 0;
};

}  // namespace convkit::detail
