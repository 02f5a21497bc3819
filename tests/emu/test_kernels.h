#pragma once
// Launchers of the kernels written for the emulator's own tests (tests/emu/*.cu): probes of
// the CUDA model's operations, a bf16 tensor-core GEMM, and deliberately broken kernels. The
// .cu files are compiled twice: by nvcc for sm_90 and compute_75 (convkit_emu_cuda_check, so
// they stay valid CUDA) and as C++ for the emulator (test_emu). Pointers are host pointers in
// the emulator build.
#include <cstdint>

#include "kernels/kernels_namespace.h"
#include "kernels/tensor_map.h"

CONVKIT_KERNELS_BEGIN
namespace emu_tests {

// ---- probes (probe_kernels.cu) -------------------------------------------------------------
// One warp of 32 lanes; out holds 32 values per operation, in this order: __shfl_sync from lane
// (l + 3) % 32, __shfl_up_sync by 1, __shfl_down_sync by 2 with width 16, __shfl_xor_sync 5
// with width 8, __ballot_sync(l % 3 == 0), __any_sync(l == 7), __all_sync(l < 40),
// __activemask().
inline constexpr int kWarpProbeOperations = 8;
void warp_operations_probe(int* out);
// `threads` threads in one block: out[0..2] = __syncthreads_count/and/or of (t % 4 == 0), from
// every thread; out[3] = the number of threads that atomically added one.
void block_operations_probe(int threads, int* out);
// Dynamic shared memory of `threads` ints: thread t writes t + 100, then reads its neighbour's.
void dynamic_shared_probe(int threads, int* out, std::size_t dynamic_bytes);
// out[b] = what block b reads from a static __shared__ float before anyone wrote it; block 0
// then writes 42 to it (so a later block would see 42 if shared memory were not per block).
void unwritten_shared_probe(int blocks, float* out);
// order[i] = the linear index (x fastest) of the i-th block of an x by y by z grid to run.
void block_order_probe(unsigned x, unsigned y, unsigned z, unsigned* order);

// ldmatrix of 1, 2 or 4 8x8 b16 matrices from `tile` (rows of 16 bytes at `row_stride_elements`
// elements), transposed or not; out[lane * 4 + i] = register i of each lane.
void ldmatrix_probe(const std::uint16_t* tile, int row_stride_elements, int matrices, bool transpose,
                    std::uint32_t* out);
// One m16n8k16 mma: a 16x16 row-major, b 16x8 row-major (bf16 or f16 bits), c and d 16x8
// row-major float; fragments gathered per the PTX layouts.
void mma_probe(const std::uint16_t* a, const std::uint16_t* b, const float* c, bool bfloat16, float* d);
// One m16n8k8 tf32 mma: a 16x8 row-major, b 8x8 row-major ([k][n]), c and d 16x8 row-major
// float; fragments gathered per the PTX layouts, each rounded by cvt.rna.tf32 first when `round`
// (else handed over as they are, which the tensor cores truncate).
void mma_tf32_probe(const float* a, const float* b, const float* c, bool round, float* d);
// One warp: lane l copies in[4l..4l+3] (in 16-byte aligned) into shared memory with cp.async,
// waits, rounds its chunk to tf32 in place (ptx::round_shared_chunk_to_tf32); then out[4l + i]
// = word i of lane (l + 1) % 32's chunk, after a __syncwarp.
void round_shared_tf32_probe(const float* in, float* out);
// Thread i: out[i] = ptx::pair_takes_maximum<bf16x2 or f16x2>(a[i], b[i]), for i < count.
void pair_takes_maximum_probe(bool bfloat16, const std::uint32_t* a, const std::uint32_t* b, int count,
                              std::uint32_t* out);

// Misuse, each must be a KernelFault naming the kernel, block and thread.
enum class Misuse {
    EarlyReturnBeforeBarrier,   // thread 5 returns; the others wait at __syncthreads
    DifferentWarpOperations,    // lanes 0-15 at __ballot_sync, 16-31 at __shfl_sync
    LaneOutsideItsMask,         // lane 20 shuffles with mask 0x0000ffff
    SourceOutsideTheMask,       // mask 0x0000ffff, lanes read lane 20
    MisalignedLdmatrix,         // lane 3's row is 8 bytes off
    MisalignedPack,             // lane 6 loads a 16-byte pack from a buffer 4 bytes off
    Trap,                       // thread 9 of block 1 calls __trap()
    DifferentBarriers,          // threads 0-15 and 16-31 at two different __syncthreads
    SyncwarpWithoutALane,       // lane 7 returns; the others __syncwarp() with the full mask
    MisalignedTf32Rounding,     // lane 2 rounds a shared chunk 4 bytes off
    Tf32RoundingBeforeTheWait,  // lane 4 rounds its cp.async's destination before the wait
    MbarrierCountZero,          // thread 0 initialises an mbarrier with count 0
    MbarrierNotInitialised,     // lane 3 arrives on an mbarrier nobody initialised
    MbarrierInitialisedTwice,   // thread 0 initialises the same mbarrier twice
    MbarrierNeverCompletes,     // every thread waits on an mbarrier phase that needs one more arrival
};
void misuse_probe(Misuse misuse);
// Named barriers (bar.sync id, count) over 128 threads whose warp 0 returns first: the other 96
// exchange values through shared memory twice at barrier 1 (out[t] for t in 32..127: thread
// t + 1's first value times its second, wrapping at 127 to 32), or misuse one.
enum class NamedBarrierUse {
    Exchange,         // as above; out[0..31] untouched
    IdZero,           // bar.sync 0, 96: 0 is __syncthreads'
    CountNotWarps,    // bar.sync 1, 48
    DifferentCounts,  // warp 1 waits for 64 threads at barrier 2, warps 2-3 for 96
    NeverFills,       // warps 1-3 wait for 128 threads: warp 0 has returned
    PartOfAWarp,      // lanes 0-15 of warps 1 and 2 and all of warp 3 wait for 64 threads
};
void named_barrier_probe(NamedBarrierUse use, int* out);
// A launch of `threads` threads (and `dynamic_bytes`) over `blocks` blocks that does nothing.
void empty_kernel_launch(unsigned blocks, unsigned threads, std::size_t dynamic_bytes);

// ---- bf16 GEMM on tensor cores (gemm_bf16_mma.cu) -----------------------------------------
// c (m x n, float, row-major) = a (m x k) * b (k x n), bf16 bits, row-major; m, n, k multiples
// of 32. mma.sync m16n8k16 with ldmatrix and a two-stage cp.async pipeline. Needs sm_80 on a GPU.
enum class GemmPlant {
    None,
    WrongAccumulatorFragment,  // planted: the accumulator's registers 1 and 2 swapped on store
    ReadBeforeWait,            // planted: no cp.async.wait_group before the tile is read
};
void gemm_bf16_mma(int m, int n, int k, const std::uint16_t* a, const std::uint16_t* b, float* c,
                   GemmPlant plant = GemmPlant::None);

// ---- warpgroup MMA, sm_90a (wgmma_gemm.cu) --------------------------------------------------
// One warpgroup: d (64 x n, float, row-major) = a (64 x k) * b (k x n) [+ c (64 x n), when not
// null], a and b as bf16/f16 bits (std::uint16_t) or tf32 (float bits, the 13 low mantissa bits
// ignored), a row-major and b given transposed (n x k row-major: both K-major, as wgmma reads
// them). Staged in shared memory 128-byte swizzled or as plain core matrices, K-major, or with
// `mn_major` (16-bit, swizzled) MN-major, as the transpose flags read them; one commit group per
// 128 bytes of k. n 64 (every operand) or 128 (bf16), k a multiple of 128 bytes. Needs compute
// capability 9.0 (sm_90a) on a GPU.
enum class WgmmaOperand { BFloat16, Float16, TensorFloat32 };
enum class WgmmaPlant {
    None,
    UnswizzledStaging,    // planted: tiles stored without the swizzle their descriptors name
    TransposedFragment,   // planted: accumulator registers read and written with a transposed 2x2 pairing
    MissingFence,         // planted: no wgmma.fence before the first mma
    ReadBeforeWait,       // planted: the accumulators stored before wgmma.wait_group
    OverwriteBeforeWait,  // planted: thread 0 rewrites an element of A before wgmma.wait_group
    UnfencedCopy,         // planted: thread 0 cp.asyncs a chunk of A after its fence.proxy.async
};
void wgmma_gemm(WgmmaOperand operand, int n, int k, bool swizzle128, const void* a, const void* b, const float* c,
                float* d, WgmmaPlant plant = WgmmaPlant::None, bool mn_major = false);

// ---- mbarrier ring (mbarrier_ring.cu) -------------------------------------------------------
// A producer/consumer ring on mbarriers (ptx::mbarrier_*): one block of 96 threads, warp 0 the
// producer, warps 1 and 2 the consumers; 3 stages of 32 floats in dynamic shared memory, each
// with a full barrier (32 arrivals: the producer's lanes, once their cp.async of the chunk has
// landed) and an empty one (64: the consumers' threads, once they have read it). Chunk c (in[32c
// .. 32c + 31]) goes through stage c % 3; consumer thread w * 32 + l (w = 0, 1) adds element l of
// every chunk in order: out[32 w + l] = in[l] + in[32 + l] + ... (float, left to right). A flaw
// breaks the protocol on purpose (the producer refills a stage without waiting until it is empty,
// or the consumers wait for the wrong phase of the full barrier) for the tests that catch it.
// Needs sm_90 on a GPU (try_wait.parity).
enum class PipelineFlaw { None, NoEmptyWait, WrongFullParity };
void mbarrier_pipeline_probe(const float* in, int chunks, float* out, PipelineFlaw flaw = PipelineFlaw::None);

// ---- bulk tensor copy (bulk_tensor_copy.cu) --------------------------------------------------
// One block of 128 threads copies `boxes` boxes of `map` (rank 3 or 4; coordinates[b * rank ..]
// box b's) through 2 shared stages, 1024-byte aligned: thread 0 covers the stage's `box_bytes`
// on its mbarrier (mbarrier_arrive_expect_tx, the barrier's one arrival) and issues the copy;
// every thread waits for the phase and copies the stage's bytes as they lie in shared memory
// (swizzled) to out[b * box_bytes ..]. A flaw breaks the protocol on purpose: an expect_tx 16
// bytes short (the phase never completes), no wait before reading, or no fence between the
// barriers' init and the copies completing on them. Needs sm_90 on a GPU.
enum class BulkCopyFlaw { None, ShortTransactionCount, NoWait, UnfencedInit };
void bulk_tensor_copy_probe(const tma::TensorMap& map, int rank, const int* coordinates, int boxes, unsigned box_bytes,
                            unsigned char* out, BulkCopyFlaw flaw = BulkCopyFlaw::None);
// The same with an im2col map (rank 3 to 5) and rank - 2 offsets a box (offsets[b * (rank - 2) ..]).
void bulk_im2col_copy_probe(const tma::TensorMap& map, int rank, const int* coordinates, const std::uint16_t* offsets,
                            int boxes, unsigned box_bytes, unsigned char* out);

// ---- deliberately broken kernels (planted_kernels.cu) --------------------------------------
// Each computes, when correct, out[i] = in[i] reversed within blocks of 256 (MissingSyncthreads),
// sums of lane pairs across a warp (MissingSyncwarp), or a copy (OffByOneBound).
enum class Planted { None, MissingSyncthreads, MissingSyncwarp, OffByOneBound };
// Block reversal: out[b*256 + t] = in[b*256 + 255 - t]; count a multiple of 256.
void reverse_blocks(const float* in, float* out, int count, Planted plant);
// One warp: out[l] = in[l ^ 1] + in[(l ^ 1) ^ 2] (a lane's neighbour, then a shuffle).
void warp_pair_sums(const float* in, float* out, Planted plant);
// out[i] = in[i] * 2 for i < count.
void double_elements(const float* in, float* out, int count, Planted plant);

}  // namespace emu_tests
CONVKIT_KERNELS_END
