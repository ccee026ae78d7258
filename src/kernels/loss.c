/*
 * loss.c — mean cross-entropy and the masked contrastive loss of DESIGN §2, forward and backward.
 *
 * Contrastive: s = exp(logit_scale), Limg = s U V^T [N,N], Ltxt = Limg^T, m_i = (labels_i == 0),
 *   L = sum_i m_i (CE(Limg[i,:], i) + CE(Ltxt[i,:], i)) / (2 sum_i m_i), 0 when no m_i.
 * With c = dloss / (2 sum m), the gradient w.r.t. Limg is
 *   G[i,j] = c (m_i (p_img[i,j] - [i==j]) + m_j (p_txt[j,i] - [i==j]))
 * and dU += s G V, dV += s G^T U, dscale += sum_ij G[i,j] (U V^T)[i,j].
 * The losses themselves are computed as logsumexp - target logit in double.
 * Fast paths use cm_matmul (BLAS) for the N x N x D products; the double-precision references live
 * in tests/kernel_lab/. The backward's G [N,N] is the caller's workspace (kernels never allocate).
 */
#include "kernels/ops.h"
#include "kernels/vecmath.h"
#include "kernels/kernels_internal.h"
#include "common/common.h"

// -log softmax(x)[t] in double
static double row_nll(const float *x, int n, int stride, int t) {
    double m = -INFINITY, s = 0;
    for (int j = 0; j < n; j++) if (x[(size_t)j * stride] > m) m = x[(size_t)j * stride];
    for (int j = 0; j < n; j++) s += exp((double)x[(size_t)j * stride] - m);
    return m + log(s) - x[(size_t)t * stride];
}

// forward: probs[M,K] = softmax(logits); returns mean_i -log probs[i, labels_i]
float cm_crossentropy_forward(float *probs, const float *logits, const int32_t *labels, int M, int K) {
    double total = 0;
    #pragma omp parallel for reduction(+:total) if ((size_t)M * K > CM_OMP_MIN)
    for (int i = 0; i < M; i++) {
        CM_ASSERT(labels[i] >= 0 && labels[i] < K);
        const float *x = logits + (size_t)i * K;
        cm_softmax_row(probs + (size_t)i * K, x, K);
        total += row_nll(x, K, 1, labels[i]);
    }
    return M > 0 ? (float)(total / M) : 0.0f;
}

// backward: dlogits[M,K] += dloss * (probs - onehot(labels)) / M
void cm_crossentropy_backward(float *dlogits, const float *probs, const int32_t *labels, int M, int K, float dloss) {
    if (M <= 0) return;
    float c = dloss / M;
    #pragma omp parallel for if ((size_t)M * K > CM_OMP_MIN)
    for (int i = 0; i < M; i++) {
        float *d = dlogits + (size_t)i * K;
        const float *p = probs + (size_t)i * K;
        for (int j = 0; j < K; j++) d[j] += c * (p[j] - (j == labels[i] ? 1.0f : 0.0f));
    }
}

// forward: S = s U V^T; p_img = softmax rows of S, p_txt = softmax rows of S^T
float cm_contrastive_forward(float *p_img, float *p_txt, const float *U, const float *V, float s,
                          const int32_t *labels, int N, int D) {
    if (N <= 0) return 0.0f;
    cm_matmul(false, true, N, N, D, s, U, D, V, D, 0.0f, p_img, N);  // p_img holds S for now
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) p_txt[(size_t)i * N + j] = p_img[(size_t)j * N + i];
    double total = 0;
    int cnt = 0;
    for (int i = 0; i < N; i++) {
        if (labels[i] != 0) continue;
        cnt++;
        total += row_nll(p_img + (size_t)i * N, N, 1, i) + row_nll(p_txt + (size_t)i * N, N, 1, i);
    }
    for (int i = 0; i < N; i++) {
        cm_softmax_row(p_img + (size_t)i * N, p_img + (size_t)i * N, N);
        cm_softmax_row(p_txt + (size_t)i * N, p_txt + (size_t)i * N, N);
    }
    return cnt ? (float)(total / (2.0 * cnt)) : 0.0f;
}

size_t cm_contrastive_backward_workspace(int N) { return sizeof(float) * (size_t)(N > 0 ? N : 0) * (N > 0 ? N : 0); }

void cm_contrastive_backward(float *dU, float *dV, float *dscale, const float *p_img, const float *p_txt,
                          const float *U, const float *V, float s, const int32_t *labels, int N, int D,
                          float dloss, void *ws) {
    int cnt = 0;
    for (int i = 0; i < N; i++) cnt += labels[i] == 0;
    if (cnt == 0 || N <= 0) return;
    if (!dU && !dV && !dscale) return;
    float c = dloss / (2.0f * cnt);
    float *G = ws;   /* [N,N]: cm_contrastive_backward_workspace bytes */
    for (int i = 0; i < N; i++) {
        float mi = labels[i] == 0 ? c : 0.0f;
        for (int j = 0; j < N; j++) {
            float mj = labels[j] == 0 ? c : 0.0f, eye = i == j ? 1.0f : 0.0f;
            G[(size_t)i * N + j] = mi * (p_img[(size_t)i * N + j] - eye) + mj * (p_txt[(size_t)j * N + i] - eye);
        }
    }
    if (dU) cm_matmul(false, false, N, D, N, s, G, N, V, D, 1.0f, dU, D);
    if (dV) cm_matmul(true, false, N, D, N, s, G, N, U, D, 1.0f, dV, D);
    if (dscale) {
        // sum_ij G[i,j] <U_i, V_j> = sum_i <U_i, (G V)_i>
        double acc = 0;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                double g = G[(size_t)i * N + j];
                if (g == 0.0) continue;
                double d = 0;
                for (int e = 0; e < D; e++) d += (double)U[(size_t)i * D + e] * V[(size_t)j * D + e];
                acc += g * d;
            }
        *dscale += (float)acc;
    }
}
