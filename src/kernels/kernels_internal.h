/*
 * kernels_internal.h — helpers shared between the kernel files (not part of the ops.h contract).
 */
#ifndef CM_KERNELS_INTERNAL_H
#define CM_KERNELS_INTERNAL_H

/* y[0..n) = softmax(x[0..n)), max-subtracted; y may alias x. Serial (call inside a parallel loop). */
void cm_softmax_row(float *y, const float *x, int n);

#endif
