#pragma once
// The only place with inline PTX. Kernels call these wrappers, never asm: under nvcc each is
// the instruction itself; in the CPU build (CONVKIT_CPU_EMULATION) each is an exact emulation
// following the PTX ISA's per-lane fragment layouts (emu/ptx_emulation.h), so a kernel built on
// them runs in the emulator and a wrong fragment index fails a test there.
//
// Architectures: ldmatrix needs sm_75, bf16/f16 m16n8k16 mma, tf32 m16n8k8 mma, cp.async and cvt to
// bf16 or tf32 sm_80. The build's
// compute_75 PTX target therefore gets __trap() for the sm_80 ones; a launcher must only pick a
// kernel built on them for devices of compute capability 8.0 or later. The warpgroup MMA
// (wgmma.*, fence.proxy.async) exists only in sm_90a code (__CUDA_ARCH_FEAT_SM90_ALL: files
// built for 90a, docs/architecture.md "Build"); everywhere else it is __trap(), so a kernel built
// on it runs on compute capability 9.0 only.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/kernels_namespace.h"
#include "kernels/tensor_map.h"
#include "kernels/wgmma_descriptor.h"
#ifdef CONVKIT_CPU_EMULATION
#include "emu/ptx_emulation.h"
#endif

CONVKIT_KERNELS_BEGIN
namespace ptx {

// The shared-window address of a pointer to shared memory (cvta.to.shared). The emulator maps
// only the dynamic shared memory into its window (emu/emulator.h).
__device__ inline unsigned shared_address(const void* p) {
#if defined(CONVKIT_CPU_EMULATION)
    return emu::ptx::shared_window_address(p);
#elif defined(__CUDA_ARCH__)
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
#else
    (void)p;
    return 0;
#endif
}

// ---- mma.sync.aligned.m16n8k{16,8}.row.col.f32.{bf16,f16,tf32}.{...}.f32 --------------------
// d = a * b + c for the warp, d may be c. m16n8k16 bf16/f16: a is 16x16 (four registers of two
// 16-bit values per lane), b 16x8 (two), c and d 16x8 float (four). m16n8k8 tf32: a is 16x8
// (four registers of one tf32 value each: a0 row g col t, a1 row g + 8 col t, a2 row g col
// t + 4, a3 row g + 8 col t + 4), b 8x8 (b0 row t, b1 row t + 4, column g), c and d as
// m16n8k16's (g = lane / 4, t = lane % 4). The tensor cores read only a tf32's 19 top bits:
// round the operands first (round_to_tf32).

enum class MmaOperands { BFloat16, Float16, TensorFloat32 };

template <MmaOperands Operands>
__device__ inline void mma_m16n8(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2],
                                 const float (&c)[4]) {
#if defined(CONVKIT_CPU_EMULATION)
    if constexpr (Operands == MmaOperands::TensorFloat32) {
        emu::ptx::mma_m16n8k8_tf32(d, a, b, c, std::source_location::current());
    } else {
        emu::ptx::mma_m16n8k16(
            Operands == MmaOperands::BFloat16 ? emu::ptx::MmaInput::BFloat16 : emu::ptx::MmaInput::Float16, d, a, b,
            c, std::source_location::current());
    }
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define CONVKIT_PTX_MMA_M16N8(instruction)                                                                    \
    asm volatile(instruction " {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"         \
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])                                             \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), \
                   "f"(c[2]), "f"(c[3]))
    if constexpr (Operands == MmaOperands::BFloat16) {
        CONVKIT_PTX_MMA_M16N8("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32");
    } else if constexpr (Operands == MmaOperands::Float16) {
        CONVKIT_PTX_MMA_M16N8("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32");
    } else {
        CONVKIT_PTX_MMA_M16N8("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32");
    }
#undef CONVKIT_PTX_MMA_M16N8
#elif defined(__CUDA_ARCH__)
    (void)d, (void)a, (void)b, (void)c;
    __trap();
#else
    (void)d, (void)a, (void)b, (void)c;
#endif
}

__device__ inline void mma_m16n8k16_bf16(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2],
                                         const float (&c)[4]) {
    mma_m16n8<MmaOperands::BFloat16>(d, a, b, c);
}

__device__ inline void mma_m16n8k16_f16(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2],
                                        const float (&c)[4]) {
    mma_m16n8<MmaOperands::Float16>(d, a, b, c);
}

__device__ inline void mma_m16n8k8_tf32(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2],
                                        const float (&c)[4]) {
    mma_m16n8<MmaOperands::TensorFloat32>(d, a, b, c);
}

// cvt.rna.tf32.f32 on a float's bits: to nearest, ties away from zero, 10 mantissa bits kept
// (the low 13 bits zero), as cuBLAS rounds its TF32 operands; truncation would bias every
// product towards zero.
__device__ inline std::uint32_t round_to_tf32(std::uint32_t float_bits) {
#if defined(CONVKIT_CPU_EMULATION)
    return emu::ptx::round_to_tf32(float_bits);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    std::uint32_t rounded;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(rounded) : "f"(__uint_as_float(float_bits)));
    return rounded;
#elif defined(__CUDA_ARCH__)
    (void)float_bits;
    __trap();
    return 0;
#else
    return float_bits;
#endif
}

// ---- ld.shared.b32 -------------------------------------------------------------------------
// One 32-bit word of shared memory (4-byte aligned): the fragments ldmatrix cannot give (a
// tf32 B fragment from a [k][n] tile; ldmatrix.trans transposes 16-bit halves, not words). The
// emulator faults a read of a cp.async destination before the wait that covers it, as it does
// for ldmatrix.

__device__ inline std::uint32_t load_shared_b32(const void* p) {
#if defined(CONVKIT_CPU_EMULATION)
    return emu::ptx::load_shared_b32(p, std::source_location::current());
#else
    return *static_cast<const std::uint32_t*>(p);
#endif
}

// ---- a 16-byte shared chunk rounded to tf32 in place -----------------------------------------
// ld.shared.v4.b32, cvt.rna.tf32.f32 of each word, st.shared.v4.b32: for operands the tensor cores
// read from shared memory themselves (wgmma), where no fragment passes through registers to be
// rounded on the way (round_to_tf32). The emulator faults a chunk not 16-byte aligned, or one still
// the destination of a cp.async before its wait.

__device__ inline void round_shared_chunk_to_tf32(void* chunk) {
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::round_shared_chunk_to_tf32(chunk, std::source_location::current());
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned address = shared_address(chunk);
    std::uint32_t w0, w1, w2, w3;
    asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(w0), "=r"(w1), "=r"(w2), "=r"(w3)
                 : "r"(address)
                 : "memory");
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(address), "r"(round_to_tf32(w0)),
                 "r"(round_to_tf32(w1)), "r"(round_to_tf32(w2)), "r"(round_to_tf32(w3))
                 : "memory");
#elif defined(__CUDA_ARCH__)
    (void)chunk;
    __trap();
#else
    (void)chunk;
#endif
}

// ---- ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16 -------------------------------
// Lanes 8i..8i+7 pass the 16-byte-aligned rows of matrix i (other lanes' addresses are
// ignored but must be valid for x4); register i of lane l gets row l/4, columns 2(l%4) and
// 2(l%4)+1 of matrix i (.trans: rows 2(l%4), 2(l%4)+1 of column l/4).

template <int Matrices, bool Transpose>
__device__ inline void ldmatrix(std::uint32_t (&r)[Matrices], const void* row) {
    static_assert(Matrices == 1 || Matrices == 2 || Matrices == 4, "ldmatrix loads 1, 2 or 4 matrices");
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::ldmatrix(Matrices, Transpose, r, row, std::source_location::current());
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
    const unsigned address = shared_address(row);
    if constexpr (Matrices == 1 && !Transpose) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(address));
    } else if constexpr (Matrices == 1) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(address));
    } else if constexpr (Matrices == 2 && !Transpose) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                     : "=r"(r[0]), "=r"(r[1])
                     : "r"(address));
    } else if constexpr (Matrices == 2) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                     : "=r"(r[0]), "=r"(r[1])
                     : "r"(address));
    } else if constexpr (!Transpose) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(address));
    } else {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(address));
    }
#elif defined(__CUDA_ARCH__)
    (void)r, (void)row;
    __trap();
#else
    (void)r, (void)row;
#endif
}

// ---- cp.async ------------------------------------------------------------------------------
// Bytes (4, 8 or 16) from global to shared memory, asynchronously; the first source_bytes come
// from `global`, the rest are zero. The destination must not be read before a
// cp_async_wait_group that covers the group the copy was committed in (the emulator poisons
// it until then and faults an ldmatrix of it).

template <int Bytes>
__device__ inline void cp_async(void* shared, const void* global, int source_bytes = Bytes) {
    static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async copies 4, 8 or 16 bytes");
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::cp_async(shared, global, Bytes, static_cast<std::size_t>(source_bytes));
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if constexpr (Bytes == 16) {
        // .cg: cache at L2 only; streamed tiles gain nothing from L1 (16 bytes only).
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(shared)), "l"(global),
                     "r"(source_bytes));
    } else {
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(shared_address(shared)), "l"(global),
                     "n"(Bytes), "r"(source_bytes));
    }
#elif defined(__CUDA_ARCH__)
    (void)shared, (void)global, (void)source_bytes;
    __trap();
#else
    (void)shared, (void)global, (void)source_bytes;
#endif
}

__device__ inline void cp_async_commit_group() {
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::cp_async_commit_group();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#elif defined(__CUDA_ARCH__)
    __trap();
#endif
}

// Waits until at most Pending of this thread's committed groups are still in flight.
template <int Pending>
__device__ inline void cp_async_wait_group() {
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::cp_async_wait_group(Pending);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending));
#elif defined(__CUDA_ARCH__)
    __trap();
#endif
}

// ---- bar.sync id, threads: a barrier over some of the block's warps ---------------------------
// Waits until `threads` threads (whole warps: bar.sync is .aligned, the hardware counts warps) have
// arrived at barrier `id` (1-15; 0 is __syncthreads'), ordering memory as __syncthreads does: for
// warpgroups that meet after a producer warpgroup has returned (__syncthreads is undefined then).
__device__ inline void named_barrier_sync(int id, int threads) {
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::bar_sync(id, threads, std::source_location::current());
#elif defined(__CUDA_ARCH__)
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
#else
    (void)id, (void)threads;
#endif
}

// ---- mbarrier -------------------------------------------------------------------------------
// A barrier object of 8 bytes in shared memory (8-byte aligned) that counts arrivals in phases
// (PTX ISA "mbarrier"): init gives each phase `count` expected arrivals and starts phase 0; the
// arrival that completes a phase flips its parity. A wait for parity p returns once the last
// phase of parity p has completed (a wait for 1 on a fresh barrier at once: a producer's first
// wait on an empty slot). Arrive releases, the wait acquires: what a thread wrote to shared or
// global memory before its arrive is visible to a thread past the wait for that phase (for
// wgmma's async-proxy reads the writer still fences: fence_proxy_async_shared before arriving).
// The barrier must be initialised by one thread and made visible to the others by a
// __syncthreads() before any uses it. The emulator blocks a waiting thread until the phase
// completes and reports a deadlock where every thread waits (emu/ptx_emulation.h).
// init, arrive and inval from sm_80; try_wait.parity (the wait) from sm_90.

__device__ inline void mbarrier_init(std::uint64_t* barrier, unsigned count) {
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::mbarrier_init(barrier, count, std::source_location::current());
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mbarrier.init.shared.b64 [%0], %1;\n" ::"r"(shared_address(barrier)), "r"(count) : "memory");
#elif defined(__CUDA_ARCH__)
    (void)barrier, (void)count;
    __trap();
#else
    (void)barrier, (void)count;
#endif
}

// Counts this thread's arrival on the barrier's current phase; returns the state token (the
// emulator: the phase's number).
__device__ inline std::uint64_t mbarrier_arrive(std::uint64_t* barrier) {
    std::uint64_t state = 0;
#if defined(CONVKIT_CPU_EMULATION)
    state = emu::ptx::mbarrier_arrive(barrier, std::source_location::current());
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mbarrier.arrive.shared.b64 %0, [%1];\n" : "=l"(state) : "r"(shared_address(barrier)) : "memory");
#elif defined(__CUDA_ARCH__)
    (void)barrier;
    __trap();
#else
    (void)barrier;
#endif
    return state;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(CONVKIT_CPU_EMULATION)
// One mbarrier.try_wait.parity: whether the phase has completed. It suspends the thread for a
// hardware-chosen time before giving up, so a loop of them waits without spinning hard.
__device__ inline bool mbarrier_try_wait_parity(std::uint64_t* barrier, unsigned parity) {
    unsigned done = 0;
    asm volatile(
        "{\n"
        ".reg .pred complete;\n"
        "mbarrier.try_wait.parity.shared.b64 complete, [%1], %2;\n"
        "selp.u32 %0, 1, 0, complete;\n"
        "}\n"
        : "=r"(done)
        : "r"(shared_address(barrier)), "r"(parity)
        : "memory");
    return done != 0;
}
#endif

// Waits until the barrier's last phase of parity `parity` (0 or 1) has completed. A phase that never
// completes (a wrong parity, a transaction count the copies never reach) hangs the GPU here; the
// emulator reports it as a deadlock. Probes that test the hardware's reading of these rules use
// mbarrier_wait_parity_or_trap instead, so that a misreading costs a test, not a device session.
__device__ inline void mbarrier_wait_parity(std::uint64_t* barrier, unsigned parity) {
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::mbarrier_wait_parity(barrier, parity, std::source_location::current());
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    while (!mbarrier_try_wait_parity(barrier, parity)) {
    }
#elif defined(__CUDA_ARCH__)
    (void)barrier, (void)parity;
    __trap();
#else
    (void)barrier, (void)parity;
#endif
}

// Makes the barriers this thread initialised visible to the other proxies, the async one that the
// bulk copies complete through included (fence.mbarrier_init.release.cluster, sm_90): between the
// inits and the __syncthreads() that publishes them, wherever a bulk copy completes on them.
__device__ inline void fence_mbarrier_init() {
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::fence_mbarrier_init();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#elif defined(__CUDA_ARCH__)
    __trap();
#endif
}

// Adds `bytes` to the barrier's expected transactions of its current phase, then arrives: the
// phase completes once its arrivals are in and the bulk copies completing on it (bulk_tensor_load)
// have landed that many bytes. The issuing thread calls it before the copies it covers (sm_90).
__device__ inline std::uint64_t mbarrier_arrive_expect_tx(std::uint64_t* barrier, unsigned bytes) {
    std::uint64_t state = 0;
#if defined(CONVKIT_CPU_EMULATION)
    state = emu::ptx::mbarrier_arrive_expect_tx(barrier, bytes, std::source_location::current());
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 %0, [%1], %2;\n"
                 : "=l"(state)
                 : "r"(shared_address(barrier)), "r"(bytes)
                 : "memory");
#elif defined(__CUDA_ARCH__)
    (void)barrier, (void)bytes;
    __trap();
#else
    (void)barrier, (void)bytes;
#endif
    return state;
}

// The longest mbarrier_wait_parity_or_trap waits: no stage of a correct kernel waits a thousandth
// of it, even under compute-sanitizer.
inline constexpr std::uint64_t kMbarrierWaitLimitNanoseconds = 10'000'000'000ull;

// mbarrier_wait_parity, but traps (a launch failure the test sees) once the wait has lasted
// kMbarrierWaitLimitNanoseconds by %globaltimer. For test probes: the clock's state costs registers
// the production rings do not spend.
__device__ inline void mbarrier_wait_parity_or_trap(std::uint64_t* barrier, unsigned parity) {
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::mbarrier_wait_parity(barrier, parity, std::source_location::current());
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    std::uint64_t started = 0;
    for (;;) {
        if (mbarrier_try_wait_parity(barrier, parity)) return;
        std::uint64_t now;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
        if (started == 0) {
            started = now;
        } else if (now - started > kMbarrierWaitLimitNanoseconds) {
            __trap();
        }
    }
#elif defined(__CUDA_ARCH__)
    (void)barrier, (void)parity;
    __trap();
#else
    (void)barrier, (void)parity;
#endif
}

// Invalidates an initialised barrier, so that its 8 bytes may be used again (as data, or by
// another mbarrier_init).
__device__ inline void mbarrier_inval(std::uint64_t* barrier) {
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::mbarrier_inval(barrier, std::source_location::current());
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mbarrier.inval.shared.b64 [%0];\n" ::"r"(shared_address(barrier)) : "memory");
#elif defined(__CUDA_ARCH__)
    (void)barrier;
    __trap();
#else
    (void)barrier;
#endif
}

// ---- bulk tensor copy (TMA, sm_90) -----------------------------------------------------------
// cp.async.bulk.tensor.Nd.shared::cluster.global.tile.mbarrier::complete_tx::bytes: the copy
// engine moves the box of `map` (kernels/tensor_map.h: a `const __grid_constant__` kernel
// parameter, whose address this takes) at `coordinates` (innermost first, signed: zeros outside
// the tensor) into `shared` (128-byte aligned), and completes the box's bytes as transactions on
// `barrier`, which the issuing thread has covered with mbarrier_arrive_expect_tx. One thread issues
// it; every reader waits for the barrier's phase. Its writes go through the async proxy: wgmma
// reads them without a fence. Ranks 1 to 5.
template <int Rank>
__device__ inline void bulk_tensor_load(void* shared, const tma::TensorMap& map, const int (&coordinates)[Rank],
                                        std::uint64_t* barrier) {
    static_assert(Rank >= 1 && Rank <= tma::kMaxRank);
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::bulk_tensor_load(shared, &map, coordinates, Rank, barrier, std::source_location::current());
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const unsigned destination = shared_address(shared), mbar = shared_address(barrier);
    const auto tensor = reinterpret_cast<std::uint64_t>(&map);
    if constexpr (Rank == 1) {
        asm volatile(
            "cp.async.bulk.tensor.1d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3}], "
            "[%2];\n" ::"r"(destination),
            "l"(tensor), "r"(mbar), "r"(coordinates[0])
            : "memory");
    } else if constexpr (Rank == 2) {
        asm volatile(
            "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], "
            "[%2];\n" ::"r"(destination),
            "l"(tensor), "r"(mbar), "r"(coordinates[0]), "r"(coordinates[1])
            : "memory");
    } else if constexpr (Rank == 3) {
        asm volatile(
            "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, "
            "%5}], "
            "[%2];\n" ::"r"(destination),
            "l"(tensor), "r"(mbar), "r"(coordinates[0]), "r"(coordinates[1]), "r"(coordinates[2])
            : "memory");
    } else if constexpr (Rank == 4) {
        asm volatile(
            "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, "
            "%6}], [%2];\n" ::"r"(destination),
            "l"(tensor), "r"(mbar), "r"(coordinates[0]), "r"(coordinates[1]), "r"(coordinates[2]), "r"(coordinates[3])
            : "memory");
    } else {
        asm volatile(
            "cp.async.bulk.tensor.5d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, "
            "%6, %7}], [%2];\n" ::"r"(destination),
            "l"(tensor), "r"(mbar), "r"(coordinates[0]), "r"(coordinates[1]), "r"(coordinates[2]), "r"(coordinates[3]),
            "r"(coordinates[4])
            : "memory");
    }
#elif defined(__CUDA_ARCH__)
    (void)shared, (void)map, (void)coordinates, (void)barrier;
    __trap();
#else
    (void)shared, (void)map, (void)coordinates, (void)barrier;
#endif
}

// The same in im2col mode (...global.im2col.mbarrier::complete_tx::bytes): `map` an im2col map
// (kernels/tensor_map.h: Im2colTensorMapSpec), `coordinates` (c, w[, h[, d]], n) the first pixel
// of the walk and `offsets` (w[, h[, d]]: a filter tap times the dilation) where each pixel reads;
// the box is pixels_per_column rows of channels_per_pixel elements. Ranks 3 to 5.
template <int Rank>
__device__ inline void bulk_tensor_load_im2col(void* shared, const tma::TensorMap& map, const int (&coordinates)[Rank],
                                               const std::uint16_t (&offsets)[Rank - 2], std::uint64_t* barrier) {
    static_assert(Rank >= 3 && Rank <= tma::kMaxRank);
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::bulk_tensor_load_im2col(shared, &map, coordinates, offsets, Rank, barrier,
                                      std::source_location::current());
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const unsigned destination = shared_address(shared), mbar = shared_address(barrier);
    const auto tensor = reinterpret_cast<std::uint64_t>(&map);
    if constexpr (Rank == 3) {
        asm volatile(
            "cp.async.bulk.tensor.3d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, "
            "%5}], [%2], {%6};\n" ::"r"(destination),
            "l"(tensor), "r"(mbar), "r"(coordinates[0]), "r"(coordinates[1]), "r"(coordinates[2]), "h"(offsets[0])
            : "memory");
    } else if constexpr (Rank == 4) {
        asm volatile(
            "cp.async.bulk.tensor.4d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, "
            "%5, %6}], [%2], {%7, %8};\n" ::"r"(destination),
            "l"(tensor), "r"(mbar), "r"(coordinates[0]), "r"(coordinates[1]), "r"(coordinates[2]), "r"(coordinates[3]),
            "h"(offsets[0]), "h"(offsets[1])
            : "memory");
    } else {
        asm volatile(
            "cp.async.bulk.tensor.5d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, "
            "%5, %6, %7}], [%2], {%8, %9, %10};\n" ::"r"(destination),
            "l"(tensor), "r"(mbar), "r"(coordinates[0]), "r"(coordinates[1]), "r"(coordinates[2]), "r"(coordinates[3]),
            "r"(coordinates[4]), "h"(offsets[0]), "h"(offsets[1]), "h"(offsets[2])
            : "memory");
    }
#elif defined(__CUDA_ARCH__)
    (void)shared, (void)map, (void)coordinates, (void)offsets, (void)barrier;
    __trap();
#else
    (void)shared, (void)map, (void)coordinates, (void)offsets, (void)barrier;
#endif
}

// ---- warpgroup MMA: wgmma (sm_90a) ---------------------------------------------------------
// A warpgroup (warps 4g..4g+3 of the block, 128 threads) computes D (64 x N, f32) = A (64 x k)
// * B (k x N) [+ D], k = 16 for bf16/f16 and 8 for tf32, A and B read from shared memory through
// 64-bit matrix descriptors (kernels/wgmma_descriptor.h: wgmma_descriptor below builds one), both
// K-major: A as 64 rows of k, B as N rows (its columns) of k. Every call is .sync.aligned: all
// 128 threads execute it together with the same arguments. The accumulator fragment (PTX ISA
// "Register Fragments and Shared Memory Matrix Layouts", the wgmma D figure): thread t of the
// warpgroup holds N / 2 floats, register i at row 16 (t / 32) + (t % 32) / 4 + 8 ((i / 2) % 2),
// column 8 (i / 4) + 2 (t % 4) + i % 2.
//
// The protocol (PTX ISA "Asynchronous Warpgroup Level Matrix Multiply-Accumulate Operation"):
//   shared tiles written by ordinary stores (or cp.async after its wait): fence_proxy_async, then a
//   barrier, so the async proxy that wgmma reads through sees them;
//   wgmma_fence(d) before the first mma and after any other access to d;
//   wgmma_mma_async (several, back to back on the same d); wgmma_commit_group();
//   wgmma_wait_group<n>(d) before d is read or the tiles are overwritten (n: groups left in flight).
// Reading d before the wait is undefined; the emulator gives NaN there.
//
// Instantiations: N = 64 and 128 have device code (add a shape below when a kernel needs it).

enum class WgmmaOperands { BFloat16, Float16, TensorFloat32 };

__device__ inline std::uint64_t wgmma_descriptor(const void* tile_start, std::uint32_t leading_byte_offset,
                                                 std::uint32_t stride_byte_offset, wgmma::Swizzle swizzle) {
    return wgmma::make_descriptor(shared_address(tile_start), leading_byte_offset, stride_byte_offset, swizzle);
}

// Keeps the compiler from moving accesses of the accumulators across the wgmma instructions
// (they are asynchronous: the asm statements alone do not order ordinary register uses).
template <int Count>
__device__ inline void wgmma_fence_operands([[maybe_unused]] float (&d)[Count]) {
#if defined(__CUDA_ARCH__) && !defined(CONVKIT_CPU_EMULATION)
#pragma unroll
    for (int i = 0; i < Count; ++i) asm volatile("" : "+f"(d[i])::"memory");
#endif
}

// wgmma.fence.sync.aligned, after the compiler-level fence on the accumulators `d`.
template <int Count>
__device__ inline void wgmma_fence(float (&d)[Count]) {
    wgmma_fence_operands(d);
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::wgmma_fence(std::source_location::current());
#elif defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#elif defined(__CUDA_ARCH__)
    __trap();
#endif
}

__device__ inline void wgmma_commit_group() {
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::wgmma_commit_group(std::source_location::current());
#elif defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#elif defined(__CUDA_ARCH__)
    __trap();
#endif
}

// wgmma.wait_group.sync.aligned Pending: at most Pending of the warpgroup's newest commit groups
// still in flight; then the accumulators `d` of the finished ones may be read.
template <int Pending, int Count>
__device__ inline void wgmma_wait_group(float (&d)[Count]) {
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::wgmma_wait_group(Pending, std::source_location::current());
#elif defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
#elif defined(__CUDA_ARCH__)
    __trap();
#endif
    wgmma_fence_operands(d);
}

// fence.proxy.async.shared::cta: this thread's generic-proxy writes to shared memory (stores,
// completed cp.async) become visible to the async proxy (wgmma's operand reads, TMA). The emulator
// remembers the writes it sees (landed cp.async, round_shared_chunk_to_tf32's stores) until the
// writing thread's fence and faults a wgmma that reads one; plain stores it cannot see.
__device__ inline void fence_proxy_async_shared() {
#if defined(CONVKIT_CPU_EMULATION)
    emu::ptx::fence_proxy_async_shared();
#elif defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#elif defined(__CUDA_ARCH__)
    __trap();
#endif
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL) && !defined(CONVKIT_CPU_EMULATION)
#define CONVKIT_WGMMA_D8(i)                                                                                     \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
        "+f"(d[i + 7])
#define CONVKIT_WGMMA_D32(i) \
    CONVKIT_WGMMA_D8(i), CONVKIT_WGMMA_D8(i + 8), CONVKIT_WGMMA_D8(i + 16), CONVKIT_WGMMA_D8(i + 24)
// scale-d is a predicate: set from the register operand; imm-scale-a/b 1; `transposes`: ", 0, 0"
// (imm-trans-a/b: K-major) or ", 1, 1" (MN-major) for bf16/f16, "" for tf32 (which has no transpose
// operands: K-major only).
#define CONVKIT_WGMMA(instruction, registers, operands, scale, transposes, ...)                              \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " scale ", 0;\nwgmma.mma_async.sync.aligned." instruction \
                 " " registers ", " operands ", p, 1, 1" transposes ";\n}\n"                                 \
                 : __VA_ARGS__                                                                               \
                 : "l"(a_descriptor), "l"(b_descriptor), "r"(static_cast<int>(accumulate)))
#define CONVKIT_WGMMA_N64(instruction, transposes) \
    CONVKIT_WGMMA(instruction, CONVKIT_WGMMA_REGISTERS_32, "%32, %33", "%34", transposes, CONVKIT_WGMMA_D32(0))
#define CONVKIT_WGMMA_N128(instruction, transposes)                                                             \
    CONVKIT_WGMMA(instruction, CONVKIT_WGMMA_REGISTERS_64, "%64, %65", "%66", transposes, CONVKIT_WGMMA_D32(0), \
                  CONVKIT_WGMMA_D32(32))
#define CONVKIT_WGMMA_REGISTERS_32                                                                               \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
    "%23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define CONVKIT_WGMMA_REGISTERS_64                                                                               \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
    "%23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, "  \
    "%44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#endif

// One k step of wgmma.mma_async.sync.aligned: m64nNk16.f32.{bf16,f16}.{bf16,f16} or
// m64nNk8.f32.tf32.tf32 (operands in shared memory as 32-bit words whose 13 low mantissa bits the
// tensor cores ignore: round them in place first, round_shared_chunk_to_tf32). d = a * b (+ d when `accumulate`,
// the scale-d operand); a and b descriptors of K-major shared tiles (32 bytes of k a row either
// way), or with MnMajor (16-bit operands only: imm-trans-a and imm-trans-b 1, both operands)
// of MN-major ones (kernels/wgmma_descriptor.h: a k16 step is 16 k-rows).
template <WgmmaOperands Operands, int N, bool MnMajor = false>
__device__ inline void wgmma_mma_async(float (&d)[N / 2], std::uint64_t a_descriptor, std::uint64_t b_descriptor,
                                       bool accumulate) {
    static_assert(N == 64 || N == 128, "wgmma_mma_async: device code for N = 64 and 128 only");
    static_assert(!MnMajor || Operands != WgmmaOperands::TensorFloat32, "tf32 operands are K-major only");
#if defined(CONVKIT_CPU_EMULATION)
    constexpr emu::ptx::MmaInput input = Operands == WgmmaOperands::BFloat16  ? emu::ptx::MmaInput::BFloat16
                                         : Operands == WgmmaOperands::Float16 ? emu::ptx::MmaInput::Float16
                                                                              : emu::ptx::MmaInput::TensorFloat32;
    emu::ptx::wgmma_mma_async(input, N, d, a_descriptor, b_descriptor, accumulate, MnMajor, MnMajor,
                              std::source_location::current());
#elif defined(__CUDA_ARCH_FEAT_SM90_ALL)
    if constexpr (N == 64 && Operands == WgmmaOperands::BFloat16) {
        if constexpr (MnMajor) {
            CONVKIT_WGMMA_N64("m64n64k16.f32.bf16.bf16", ", 1, 1");
        } else {
            CONVKIT_WGMMA_N64("m64n64k16.f32.bf16.bf16", ", 0, 0");
        }
    } else if constexpr (N == 64 && Operands == WgmmaOperands::Float16) {
        if constexpr (MnMajor) {
            CONVKIT_WGMMA_N64("m64n64k16.f32.f16.f16", ", 1, 1");
        } else {
            CONVKIT_WGMMA_N64("m64n64k16.f32.f16.f16", ", 0, 0");
        }
    } else if constexpr (N == 64) {
        CONVKIT_WGMMA_N64("m64n64k8.f32.tf32.tf32", "");
    } else if constexpr (Operands == WgmmaOperands::BFloat16) {
        if constexpr (MnMajor) {
            CONVKIT_WGMMA_N128("m64n128k16.f32.bf16.bf16", ", 1, 1");
        } else {
            CONVKIT_WGMMA_N128("m64n128k16.f32.bf16.bf16", ", 0, 0");
        }
    } else if constexpr (Operands == WgmmaOperands::Float16) {
        if constexpr (MnMajor) {
            CONVKIT_WGMMA_N128("m64n128k16.f32.f16.f16", ", 1, 1");
        } else {
            CONVKIT_WGMMA_N128("m64n128k16.f32.f16.f16", ", 0, 0");
        }
    } else {
        CONVKIT_WGMMA_N128("m64n128k8.f32.tf32.tf32", "");
    }
#elif defined(__CUDA_ARCH__)
    (void)d, (void)a_descriptor, (void)b_descriptor, (void)accumulate;
    __trap();
#else
    (void)d, (void)a_descriptor, (void)b_descriptor, (void)accumulate;
#endif
}
#undef CONVKIT_WGMMA_D8
#undef CONVKIT_WGMMA_D32
#undef CONVKIT_WGMMA
#undef CONVKIT_WGMMA_N64
#undef CONVKIT_WGMMA_N128
#undef CONVKIT_WGMMA_REGISTERS_32
#undef CONVKIT_WGMMA_REGISTERS_64

// ---- cvt: float <-> 16-bit floating point, round to nearest even ---------------------------
// The epilogues' output conversions (bf16 needs sm_80, f16 any sm). NaN stays NaN; values past
// the format's range become infinity; f16 keeps its subnormals.

__device__ inline std::uint16_t float_to_bfloat16(float value) {
#if defined(CONVKIT_CPU_EMULATION)
    return emu::ptx::float_to_bfloat16(value);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    std::uint16_t bits;
    asm("cvt.rn.bf16.f32 %0, %1;\n" : "=h"(bits) : "f"(value));
    return bits;
#elif defined(__CUDA_ARCH__)
    (void)value;
    __trap();
#else
    (void)value;
    return 0;
#endif
}

__device__ inline std::uint16_t float_to_float16(float value) {
#if defined(CONVKIT_CPU_EMULATION)
    return emu::ptx::float_to_float16(value);
#elif defined(__CUDA_ARCH__)
    std::uint16_t bits;
    asm("cvt.rn.f16.f32 %0, %1;\n" : "=h"(bits) : "f"(value));
    return bits;
#else
    (void)value;
    return 0;
#endif
}

// Exact (every f16 value is a float).
__device__ inline float float16_to_float(std::uint16_t bits) {
#if defined(CONVKIT_CPU_EMULATION)
    return emu::ptx::float16_to_float(bits);
#elif defined(__CUDA_ARCH__)
    float value;
    asm("cvt.f32.f16 %0, %1;\n" : "=f"(value) : "h"(bits));
    return value;
#else
    (void)bits;
    return 0;
#endif
}

// ---- set.{gt,nan}.u32.{bf16x2,f16x2}: a max-pooling scan over two 16-bit lanes at once -----
// Per 16-bit half: 0xFFFF where a's half would replace b's as a window's maximum by
// detail::max_pool_takes' rule (a > b, ordered; or a is NaN), else 0. Two set instructions and
// an or for two lanes, where widening and comparing each lane as a float takes about six
// instructions a lane. bf16x2 compares need sm_90 (f16x2 sm_53): the compute_75 PTX compares
// each bf16 half as a float instead, with the same result.
enum class HalfPair { BFloat16, Float16 };

// The same for bf16x2 before sm_90 (the compute_75 PTX), each half widened and compared as a float.
__device__ inline std::uint32_t bfloat16_pair_takes_maximum_as_floats(std::uint32_t a, std::uint32_t b) {
    std::uint32_t mask = 0;
    for (int half = 0; half < 2; ++half) {
        const auto value_of = [&](std::uint32_t word) {
            const std::uint32_t widened = (word >> (16 * half)) << 16;  // bf16 is float's top half
            float value;
            memcpy(&value, &widened, sizeof(value));
            return value;
        };
        const float x = value_of(a), y = value_of(b);
        if (x > y || x != x) mask |= 0xFFFFu << (16 * half);
    }
    return mask;
}

template <HalfPair Pair>
__device__ inline std::uint32_t pair_takes_maximum(std::uint32_t a, std::uint32_t b) {
#if defined(CONVKIT_CPU_EMULATION)
    return emu::ptx::pair_takes_maximum(
        Pair == HalfPair::BFloat16 ? emu::ptx::MmaInput::BFloat16 : emu::ptx::MmaInput::Float16, a, b);
#elif defined(__CUDA_ARCH__)
    std::uint32_t greater, nan;
    if constexpr (Pair == HalfPair::Float16) {  // sm_53
        asm("set.gt.u32.f16x2 %0, %1, %2;\n" : "=r"(greater) : "r"(a), "r"(b));
        asm("set.nan.u32.f16x2 %0, %1, %1;\n" : "=r"(nan) : "r"(a));
    } else {
#if __CUDA_ARCH__ >= 900
        asm("set.gt.u32.bf16x2 %0, %1, %2;\n" : "=r"(greater) : "r"(a), "r"(b));
        asm("set.nan.u32.bf16x2 %0, %1, %1;\n" : "=r"(nan) : "r"(a));
#else
        greater = bfloat16_pair_takes_maximum_as_floats(a, b);
        nan = 0;
#endif
    }
    return greater | nan;
#else
    (void)a;
    (void)b;
    return 0;
#endif
}

}  // namespace ptx
CONVKIT_KERNELS_END
