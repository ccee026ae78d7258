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

/* below this many elements an OpenMP region costs more than it saves */
#define CM_OMP_MIN 16384

#endif
