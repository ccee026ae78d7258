/*
 * vecmath.h — private helpers for the kernels: SIMD declarations of expf/erff so that GCC
 * vectorises `#pragma omp simd` loops with glibc's libmvec (_ZGV*_expf/_erff) even without
 * -ffast-math (glibc only declares them under __FAST_MATH__), plus the OpenMP size threshold.
 * Requires -fno-math-errno (set in the Makefile). Checked by running nm on build/src/kernels/activation.o and grepping for ZGV.
 */
#ifndef CM_KERNELS_VECMATH_H
#define CM_KERNELS_VECMATH_H
#include <math.h>

#pragma omp declare simd notinbranch
extern float expf(float);
#pragma omp declare simd notinbranch
extern float erff(float);

/* CM_HOT marks a hot loop for runtime dispatch (docs/install.md). The default build targets
   x86-64-v3 (AVX2/FMA); GCC then also compiles each CM_HOT function, and the OpenMP regions inside
   it, for x86-64-v4 (AVX-512F/BW/DQ/VL: libmvec's 16-wide expf/erff) and an ifunc resolver picks
   the clone once at load time from the CPU. The clones are named FN.arch_x86_64_v4 and are the only
   code of the default build allowed to use AVX-512 (tests/test_portable.sh checks the objects).
   Not needed (empty) when the build itself targets AVX-512 (NATIVE=1 on such a CPU) or another
   architecture. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX512F__)
#define CM_HOT __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define CM_HOT
#endif

/* below this many elements an OpenMP region costs more than it saves */
#define CM_OMP_MIN 16384

#endif
