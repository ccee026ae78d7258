/*
 * ref_ops.c — the kernel lab's references (llm.c's dev/ in spirit): plain loops, accumulation in
 * double, no BLAS, no threads. Not part of libclipmod: the tests and benchmarks link this file and
 * hold the library's kernels (through the backend table) to it. A reference may allocate and
 * abort on failure (test code).
 */
#include "ref_ops.h"
#include "kernels/ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void ref_oom(void) {
    fprintf(stderr, "ref_ops: out of memory\n");
    abort();
}

static float *rounded_copy(const float *x, size_t n) {
    float *y = malloc(sizeof(float) * (n ? n : 1));
    if (!y) ref_oom();
    for (size_t i = 0; i < n; i++) y[i] = cm_bf16_round(x[i]);
    return y;
}

// ---------------------------------------------------------------------------------------------
// linear, activations, softmax, layernorm

void cm_linear_forward_ref(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC) {
    for (int i = 0; i < M; i++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int c = 0; c < C; c++) s += (double)inp[(size_t)i * C + c] * W[(size_t)o * C + c];
            out[(size_t)i * OC + o] = (float)s;
        }
}

void cm_linear_backward_ref(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                         const float *W, int M, int C, int OC) {
    if (dinp)
        for (int i = 0; i < M; i++)
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int o = 0; o < OC; o++) s += (double)dout[(size_t)i * OC + o] * W[(size_t)o * C + c];
                dinp[(size_t)i * C + c] += (float)s;
            }
    if (dW)
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int i = 0; i < M; i++) s += (double)dout[(size_t)i * OC + o] * inp[(size_t)i * C + c];
                dW[(size_t)o * C + c] += (float)s;
            }
    if (db)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int i = 0; i < M; i++) s += dout[(size_t)i * OC + o];
            db[o] += (float)s;
        }
}

void cm_gelu_forward_ref(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        out[i] = (float)(0.5 * x * (1.0 + erf(x / sqrt(2.0))));
    }
}

void cm_gelu_backward_ref(float *dinp, const float *inp, const float *dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        double d = 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
        dinp[i] += (float)(d * dout[i]);
    }
}

void cm_quickgelu_forward_ref(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        out[i] = (float)(x / (1.0 + exp(-1.702 * x)));
    }
}

void cm_quickgelu_backward_ref(float *dinp, const float *inp, const float *dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double x = inp[i], s = 1.0 / (1.0 + exp(-1.702 * x));
        dinp[i] += (float)((s + 1.702 * x * s * (1.0 - s)) * dout[i]);
    }
}

void cm_softmax_forward_ref(float *out, const float *inp, int M, int N) {
    for (int i = 0; i < M; i++) {
        const float *x = inp + (size_t)i * N;
        double m = -INFINITY, s = 0;
        for (int j = 0; j < N; j++) if (x[j] > m) m = x[j];
        for (int j = 0; j < N; j++) s += exp((double)x[j] - m);
        for (int j = 0; j < N; j++) out[(size_t)i * N + j] = (float)(exp((double)x[j] - m) / s);
    }
}

void cm_softmax_backward_ref(float *dinp, const float *out, const float *dout, int M, int N) {
    for (int i = 0; i < M; i++) {
        const float *y = out + (size_t)i * N, *dy = dout + (size_t)i * N;
        double dot = 0;
        for (int j = 0; j < N; j++) dot += (double)dy[j] * y[j];
        for (int j = 0; j < N; j++) dinp[(size_t)i * N + j] += (float)(y[j] * (dy[j] - dot));
    }
}

void cm_layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int M, int C) {
    for (int i = 0; i < M; i++) {
        const float *x = inp + (size_t)i * C;
        double s = 0, v = 0;
        for (int c = 0; c < C; c++) s += x[c];
        double m = s / C;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        double r = 1.0 / sqrt(v / C + 1e-5);
        for (int c = 0; c < C; c++) out[(size_t)i * C + c] = (float)((x[c] - m) * r * w[c] + b[c]);
        mean[i] = (float)m;
        rstd[i] = (float)r;
    }
}

void cm_layernorm_backward_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const float *mean, const float *rstd, int M, int C) {
    for (int i = 0; i < M; i++) {
        const float *x = inp + (size_t)i * C, *dy = dout + (size_t)i * C;
        double m = mean[i], r = rstd[i], sg = 0, sgx = 0;
        for (int c = 0; c < C; c++) {
            double xh = (x[c] - m) * r, g = (double)dy[c] * w[c];
            sg += g;
            sgx += g * xh;
            if (dw) dw[c] += (float)(dy[c] * xh);
            if (db) db[c] += dy[c];
        }
        sg /= C;
        sgx /= C;
        if (dinp)
            for (int c = 0; c < C; c++) {
                double xh = (x[c] - m) * r;
                dinp[(size_t)i * C + c] += (float)(r * ((double)dy[c] * w[c] - sg - xh * sgx));
            }
    }
}

// ---------------------------------------------------------------------------------------------
// bf16 linears: round to bf16 (nearest even), then the fp32 reference in double

void cm_linear_forward_bf16_ref(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC) {
    float *x = rounded_copy(inp, (size_t)M * C), *w = rounded_copy(W, (size_t)OC * C);
    cm_linear_forward_ref(out, x, w, b, M, C, OC);
    free(x); free(w);
}

void cm_linear_backward_bf16_ref(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                              const float *W, int M, int C, int OC) {
    if (db) cm_linear_backward_ref(NULL, NULL, db, dout, inp, W, M, C, OC);
    float *d = rounded_copy(dout, (size_t)M * OC), *x = rounded_copy(inp, (size_t)M * C);
    float *w = rounded_copy(W, (size_t)OC * C);
    cm_linear_backward_ref(dinp, dW, NULL, d, x, w, M, C, OC);
    free(d); free(x); free(w);
}

// ---------------------------------------------------------------------------------------------
// attention (padded [B,T] layout)

void cm_attention_forward_ref(float *out, float *att, const float *qkv, int B, int T, int C, int NH, bool causal) {
    if (NH <= 0 || C % NH) abort();
    int hs = C / NH, C3 = 3 * C;
    double scale = 1.0 / sqrt((double)hs);
    double *s = malloc(sizeof(double) * (T > 0 ? T : 1));
    if (!s) ref_oom();
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                const float *q = qkv + ((size_t)b * T + i) * C3 + h * hs;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    if (causal && j > i) { s[j] = -INFINITY; continue; }
                    const float *k = qkv + ((size_t)b * T + j) * C3 + C + h * hs;
                    double d = 0;
                    for (int e = 0; e < hs; e++) d += (double)q[e] * k[e];
                    s[j] = d * scale;
                    if (s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < T; j++) { s[j] = exp(s[j] - mx); sum += s[j]; }
                float *a = att + (((size_t)b * NH + h) * T + i) * T;
                for (int j = 0; j < T; j++) { s[j] /= sum; a[j] = (float)s[j]; }
                for (int e = 0; e < hs; e++) {
                    double o = 0;
                    for (int j = 0; j < T; j++) o += s[j] * qkv[((size_t)b * T + j) * C3 + 2 * C + h * hs + e];
                    out[((size_t)b * T + i) * C + h * hs + e] = (float)o;
                }
            }
    free(s);
}

void cm_attention_backward_ref(float *dqkv, const float *dout, const float *qkv, const float *att,
                            int B, int T, int C, int NH, bool causal) {
    if (NH <= 0 || C % NH) abort();
    int hs = C / NH, C3 = 3 * C;
    double scale = 1.0 / sqrt((double)hs);
    double *dA = malloc(sizeof(double) * (T > 0 ? T : 1));
    if (!dA) ref_oom();
#define QKV(b, t, part, e) ((((size_t)(b) * T + (t)) * C3) + (part) * C + h * hs + (e))
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                const float *a = att + (((size_t)b * NH + h) * T + i) * T;
                const float *dO = dout + ((size_t)b * T + i) * C + h * hs;
                double dot = 0;
                for (int j = 0; j < T; j++) {
                    double d = 0;
                    for (int e = 0; e < hs; e++) d += (double)dO[e] * qkv[QKV(b, j, 2, e)];
                    dA[j] = d;
                    dot += d * a[j];
                    for (int e = 0; e < hs; e++) dqkv[QKV(b, j, 2, e)] += (float)((double)a[j] * dO[e]);
                }
                for (int j = 0; j < T; j++) {
                    if (causal && j > i) continue;
                    double ds = a[j] * (dA[j] - dot) * scale;
                    for (int e = 0; e < hs; e++) {
                        dqkv[QKV(b, i, 0, e)] += (float)(ds * qkv[QKV(b, j, 1, e)]);
                        dqkv[QKV(b, j, 1, e)] += (float)(ds * qkv[QKV(b, i, 0, e)]);
                    }
                }
            }
#undef QKV
    free(dA);
}

// ---------------------------------------------------------------------------------------------
// contrastive loss

float cm_contrastive_forward_ref(float *p_img, float *p_txt, const float *U, const float *V, float s,
                             const int32_t *labels, int N, int D) {
    if (N <= 0) return 0.0f;
    double *S = malloc(sizeof(double) * (size_t)N * N);
    if (!S) ref_oom();
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double d = 0;
            for (int e = 0; e < D; e++) d += (double)U[(size_t)i * D + e] * V[(size_t)j * D + e];
            S[(size_t)i * N + j] = (double)s * d;
        }
    double total = 0;
    int cnt = 0;
    for (int pass = 0; pass < 2; pass++) {  // pass 0: rows of S (image), pass 1: rows of S^T (text)
        float *P = pass ? p_txt : p_img;
        for (int i = 0; i < N; i++) {
            double m = -INFINITY, z = 0;
            for (int j = 0; j < N; j++) {
                double x = pass ? S[(size_t)j * N + i] : S[(size_t)i * N + j];
                if (x > m) m = x;
            }
            for (int j = 0; j < N; j++) z += exp((pass ? S[(size_t)j * N + i] : S[(size_t)i * N + j]) - m);
            for (int j = 0; j < N; j++)
                P[(size_t)i * N + j] = (float)(exp((pass ? S[(size_t)j * N + i] : S[(size_t)i * N + j]) - m) / z);
            if (labels[i] == 0) {
                total += m + log(z) - S[(size_t)i * N + i];
                cnt += pass == 0;
            }
        }
    }
    free(S);
    return cnt ? (float)(total / (2.0 * cnt)) : 0.0f;
}

void cm_contrastive_backward_ref(float *dU, float *dV, float *dscale, const float *p_img, const float *p_txt,
                              const float *U, const float *V, float s, const int32_t *labels, int N, int D,
                              float dloss) {
    int cnt = 0;
    for (int i = 0; i < N; i++) cnt += labels[i] == 0;
    if (cnt == 0) return;
    double c = (double)dloss / (2.0 * cnt), ds = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double eye = i == j, g = 0;
            if (labels[i] == 0) g += c * (p_img[(size_t)i * N + j] - eye);
            if (labels[j] == 0) g += c * (p_txt[(size_t)j * N + i] - eye);
            double d = 0;
            for (int e = 0; e < D; e++) {
                d += (double)U[(size_t)i * D + e] * V[(size_t)j * D + e];
                if (dU) dU[(size_t)i * D + e] += (float)(s * g * V[(size_t)j * D + e]);
                if (dV) dV[(size_t)j * D + e] += (float)(s * g * U[(size_t)i * D + e]);
            }
            ds += g * d;
        }
    if (dscale) *dscale += (float)ds;
}
