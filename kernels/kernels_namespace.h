#pragma once
// The namespace of everything in kernels/. The CPU build of the kernel sources
// (CONVKIT_CPU_EMULATION, emu/device_api.h) puts it in an inline namespace, so a program can
// link that build beside libconvkit's CUDA build (the emulator tests do) without two
// definitions of one launcher; callers write kernels::name either way. In the emulated CUDA
// device build (CONVKIT_EMULATED_DEVICE) the library's kernels are that CPU build, so every file
// of the library, callers included, sees them there.
#if defined(CONVKIT_CPU_EMULATION) || defined(CONVKIT_EMULATED_DEVICE)
#define CONVKIT_KERNELS_BEGIN    \
    namespace convkit::kernels { \
    inline namespace cpu_emulation {
#define CONVKIT_KERNELS_END \
    }                       \
    }
#else
#define CONVKIT_KERNELS_BEGIN namespace convkit::kernels {
#define CONVKIT_KERNELS_END }
#endif
