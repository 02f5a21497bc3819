#pragma once
// The CPU side of kernels/ptx.cuh: mma.sync, ldmatrix and cp.async, following the PTX ISA's
// per-lane fragment layouts ("Matrix Fragments for mma.m16n8k16 with floating point type",
// "Warp-level matrix load instruction: ldmatrix").
#include <cstddef>
#include <cstdint>
#include <source_location>

namespace convkit::tma {
struct TiledTensorMapSpec;  // kernels/tensor_map.h
struct Im2colTensorMapSpec;
}

namespace convkit::emu::ptx {

enum class MmaInput { BFloat16, Float16, TensorFloat32 };  // mma.sync's 16-bit inputs: the first two
// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32: d = a * b + c over the warp.
// Each product is exact in double and the sum is rounded to float once; the GPU's order and
// rounding of the sum are unspecified, so results may differ from it in the last bits.
void mma_m16n8k16(MmaInput input, float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2],
                  const float (&c)[4], const std::source_location& site);

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32: d = a * b + c over the warp, with the
// fragment layouts of the PTX ISA ("Matrix Fragments for mma.m16n8k8", .tf32). Each operand is
// read as the tensor cores read it, its 13 low mantissa bits ignored (a kernel that forgot to
// round gets truncation, as on the GPU); products and sum as mma_m16n8k16's.
void mma_m16n8k8_tf32(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2], const float (&c)[4],
                      const std::source_location& site);

// A 32-bit register or shared word as the tensor cores read a tf32: the float with its 13 low
// mantissa bits dropped (a kernel that forgot cvt.rna gets truncation, as on the GPU).
float tensor_core_tf32_value(std::uint32_t bits);

// cvt.rna.tf32.f32 on a float's bits: to nearest, ties away from zero, 10 mantissa bits kept;
// overflow to infinity, infinity kept, NaN stays a (quiet) NaN.
std::uint32_t round_to_tf32(std::uint32_t float_bits);

// bar.sync id, threads (a named barrier, ids 1 to 15; 0 is __syncthreads'): waits until
// `threads` threads (a positive multiple of 32, at most the block's) have arrived at barrier `id`,
// then releases them and starts it over. Threads not counted (a producer warpgroup that has
// returned) take no part. Faults on a bad id or count, or arrivals waiting for different counts.
void bar_sync(int id, int threads, const std::source_location& site);

// ld.shared.b32 (4-byte aligned); faults when the word is the destination of a cp.async not
// yet waited for.
std::uint32_t load_shared_b32(const void* p, const std::source_location& site);
// ld.shared.v4.b32, cvt.rna.tf32.f32 of each word, st.shared.v4.b32 (ptx::round_shared_chunk_to_tf32).
void round_shared_chunk_to_tf32(void* chunk, const std::source_location& site);
// fence.proxy.async.shared::cta: the calling thread's generic-proxy shared writes (landed cp.async,
// the stores above) become visible to wgmma (emu/async_copy.h).
void fence_proxy_async_shared();

// ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16: lanes 8i..8i+7 give the rows of
// matrix i (16-byte aligned); every lane receives one 32-bit register per matrix.
void ldmatrix(int matrices, bool transpose, std::uint32_t* registers, const void* row,
              const std::source_location& site);

// cp.async.{ca,cg}.shared.global with src-size; commit_group; wait_group.
void cp_async(void* shared_destination, const void* global_source, std::size_t bytes, std::size_t source_bytes);
void cp_async_commit_group();
void cp_async_wait_group(int allowed_pending);

// ---- mbarrier (PTX ISA "Parallel Synchronization and Communication Instructions: mbarrier"),
// emu/mbarrier.cpp (the wait blocks the thread in the scheduler) ------------------------------
// An 8-byte object in shared memory (8-byte aligned), emulated beside it: init gives each phase
// `count` expected arrivals (1 to 2^20 - 1) and starts phase 0; an arrive counts one against the
// current phase, and the arrival that brings its pending count to 0 completes it: the phase
// advances (its parity flips) and the pending count is `count` again. A wait for parity p returns
// once the current phase's parity differs from p, i.e. the last phase of parity p has completed
// (so a wait for parity 1 on a fresh barrier returns at once): the emulator blocks the thread
// until then (the try_wait loop's first try succeeds), and a block whose every live thread waits is
// a deadlock naming where. Arrive is a release and the wait an acquire: the emulator's threads
// share memory sequentially, so the data written before an arrive is what the waiter reads.
// Faults: a count out of range, init of a barrier already initialised (inval first), arrive or
// wait on one not initialised, an address not 8-byte aligned or outside shared memory.
void mbarrier_init(void* barrier, unsigned count, const std::source_location& site);
// Returns the phase arrived on (mbarrier.arrive's state operand, opaque on a GPU).
std::uint64_t mbarrier_arrive(void* barrier, const std::source_location& site);
void mbarrier_wait_parity(void* barrier, unsigned parity, const std::source_location& site);
void mbarrier_inval(void* barrier, const std::source_location& site);
// fence.mbarrier_init.release.cluster: the barriers this thread initialised become visible to the
// async proxy; a bulk copy completing on a barrier whose init was not fenced (by this or by
// fence.proxy.async) is a fault.
void fence_mbarrier_init();
// mbarrier.arrive.expect_tx: adds `bytes` to the current phase's pending transaction count, then
// arrives. A phase completes when its pending arrivals and its pending transactions are both 0;
// the bulk copies that complete on the barrier (bulk_tensor_load) subtract their bytes, so the
// count may go below 0 before the expect_tx that covers it. Faults: a count past 2^20 - 1 either way.
std::uint64_t mbarrier_arrive_expect_tx(void* barrier, unsigned bytes, const std::source_location& site);

// ---- bulk tensor copy (TMA, sm_90), emu/bulk_tensor.cpp ------------------------------------
// The CPU build's tensor map (kernels/tensor_map.h): `spec` itself in the 128 opaque bytes, after
// a tag that bulk_tensor_load checks (a map the emulator did not encode is a fault).
void encode_tiled_tensor_map(void* map, const tma::TiledTensorMapSpec& spec);
// cp.async.bulk.tensor.Nd.shared::cluster.global.tile.mbarrier::complete_tx::bytes: the box of
// `map` at `coordinates` (`rank` of them, the map's rank) into `shared` (128-byte aligned dynamic
// shared memory), completing box_bytes transactions on `barrier`. As with cp.async, the bytes are
// read when the copy is issued and the destination is poisoned until the copy lands
// (emu/async_copy.h); when it lands depends on the schedule (emu/mbarrier.cpp: at once under
// reverse, at random under random, otherwise only once no thread can run), and landing completes
// its transactions. Its writes are the async proxy's: wgmma reads them without a fence.
void bulk_tensor_load(void* shared, const void* map, const int* coordinates, int rank, void* barrier,
                      const std::source_location& site);
// The same for im2col maps (kernels/tensor_map.h: Im2colTensorMapSpec): ...im2col.mbarrier::complete_tx
// with `rank` coordinates (c, w[, h[, d]], n) and rank - 2 offsets (w[, h[, d]]), the box of
// pixels_per_column rows gathered by the walk Im2colTensorMapSpec describes.
void encode_im2col_tensor_map(void* map, const tma::Im2colTensorMapSpec& spec);
void bulk_tensor_load_im2col(void* shared, const void* map, const int* coordinates, const std::uint16_t* offsets,
                             int rank, void* barrier, const std::source_location& site);

// ---- warpgroup MMA (sm_90a), emu/warpgroup_mma.cpp -----------------------------------------
// Each is .sync.aligned over the calling thread's warpgroup (128 threads, warps 4g..4g+3) and
// completes when all of them have arrived. The mma (m64nNk16 for bf16/f16, m64nNk8 for tf32)
// reads A (64 x k) and B (N x k), each K-major or (16-bit only: the transpose flags
// imm-trans-a/b) MN-major, from the block's dynamic shared memory through the descriptors
// (kernels/wgmma_descriptor.h) and holds d's new value back until a wait_group covers it
// (emu/warpgroup_mma.h).
void wgmma_fence(const std::source_location& site);
void wgmma_mma_async(MmaInput input, int n, float* d, std::uint64_t a_descriptor, std::uint64_t b_descriptor,
                     bool accumulate, bool mn_major_a, bool mn_major_b, const std::source_location& site);
void wgmma_commit_group(const std::source_location& site);
void wgmma_wait_group(int allowed_pending, const std::source_location& site);
// The shared-window address of dynamic shared memory (emu/emulator.h).
std::uint32_t shared_window_address(const void* p);

// cvt.rn.{bf16,f16}.f32 and cvt.f32.f16: round to nearest even, NaN kept (as a quiet NaN),
// overflow to infinity, f16 subnormals kept.
std::uint16_t float_to_bfloat16(float value);
std::uint16_t float_to_float16(float value);
float float16_to_float(std::uint16_t bits);
float bfloat16_to_float(std::uint16_t bits);  // exact

// set.gt.u32.{bf16x2,f16x2} a, b or'ed with set.nan.u32.{bf16x2,f16x2} a, a: per 16-bit half,
// 0xFFFF where a's half is greater than b's (ordered: false when either is NaN) or is NaN, else 0.
std::uint32_t pair_takes_maximum(MmaInput pair, std::uint32_t a, std::uint32_t b);

}  // namespace convkit::emu::ptx
