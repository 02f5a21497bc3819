// The tensor-core implicit-GEMM convolution on a CUDA device (label gpu; a GPU, or the emulated
// device): the emulator suite's own cases and checks (tests/emu/test_emu_igemm.cpp and
// test_emu_igemm_plans.cpp), compiled with each buffer mirrored into device memory around the
// launch (tests/emu/igemm_launch.h), so both builds meet one list.
#define CONVKIT_IGEMM_ON_DEVICE 1
#include "emu/test_emu_igemm.cpp"        // NOLINT(bugprone-suspicious-include): one source, two suites
#include "emu/test_emu_igemm_plans.cpp"  // NOLINT(bugprone-suspicious-include)
