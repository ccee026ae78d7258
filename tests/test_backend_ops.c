/*
 * test_backend_ops.c — every op of the backend table (kernels/backend.h) x every backend (today:
 * cpu), in the spirit of ggml's test-backend-ops:
 *   forward:  the backend's fp32 result against a double-precision evaluation of the same formula
 *             (written here, independent of the library), within c * sqrt(K) * eps32 * scale,
 *             K the op's reduction length, scale the largest |value| of the reference output;
 *   backward: the backend's gradient (accumulated onto a buffer pre-filled with 1, then 1
 *             subtracted: checks the += contract) against double-precision central differences
 *             of that evaluation, on up to 40 elements of every differentiable input, within
 *             c * sqrt(K) * eps32 * (largest |gradient| of the tensor).
 * The bounds follow from fp32 rounding of a K-term sum (any summation order, any CPU), not from
 * one machine's results. bf16 products are held to the same formula on bf16-rounded operands;
 * int8 to the quantisation bound (its fused GELU to the activation of the unfused result). LoRA ops
 * at ranks 1, 4, 32 and 64.
 */
#include "testlib.h"
#include "kernels/backend.h"
#include "common/rng.h"

#define EPS32 5.9604644775390625e-8   /* 2^-24: unit roundoff of fp32 */
#define MAXIN 5
#define NFD 40                         /* finite-difference probes per input */

typedef struct Case Case;
typedef void (*fwd_fn)(const CmBackend *be, Case *c, float **in, float *out);
typedef void (*bwd_fn)(const CmBackend *be, Case *c, float **in, const float *dout, float **din);
typedef void (*ref_fn)(const Case *c, double **in, double *out);

struct Case {
    char name[96];
    int nin;
    size_t n[MAXIN];
    bool diff[MAXIN];
    float lo[MAXIN], hi[MAXIN];
    size_t nout;
    double Kf, Kb;        /* reduction lengths of the forward / backward sums */
    int p[8];
    float f[4];
    bool flag;
    int32_t *ids, *ids2;
    int *off;
    int64_t *aoff;
    float *mask;          /* attention dropout: the mask the backend drew (a pure function of the key) */
    fwd_fn fwd;
    bwd_fn bwd;
    ref_fn ref;
};

static CmRng g_rng;
static const CmBackend *g_be;

static float *fbuf(size_t n) {
    float *p = g_be->alloc((n ? n : 1) * sizeof(float), "test buffer");
    if (p) g_be->zero(p, (n ? n : 1) * sizeof(float));
    return p;
}
static double *dbuf(size_t n) { return calloc(n ? n : 1, sizeof(double)); }
static float urand(float lo, float hi) { return lo + (hi - lo) * cm_rng_uniform(&g_rng); }

static double maxabs_d(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}
static double maxabs_f(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

/* sum_j R_j * ref(x)_j in double */
static double objective(const Case *c, double **in, const double *R, double *out) {
    c->ref(c, in, out);
    double L = 0;
    for (size_t j = 0; j < c->nout; j++) L += R[j] * out[j];
    return L;
}

static void run_case(Case *c) {
    const double cf = 16, cb = 16;
    float *in[MAXIN] = {0}, *din[MAXIN] = {0};
    double *ind[MAXIN] = {0};
    for (int i = 0; i < c->nin; i++) {
        in[i] = fbuf(c->n[i]);
        ind[i] = dbuf(c->n[i]);
        for (size_t k = 0; k < c->n[i]; k++) {
            in[i][k] = urand(c->lo[i], c->hi[i]);
            ind[i][k] = in[i][k];
        }
    }
    float *out = fbuf(c->nout);
    double *ref = dbuf(c->nout);
    c->fwd(g_be, c, in, out);
    g_be->synchronize();
    c->ref(c, ind, ref);
    double S = maxabs_d(ref, c->nout), worst = 0;
    double tol = cf * sqrt(c->Kf) * EPS32 * (S > 0 ? S : 1);
    size_t bad = 0, at = 0;
    for (size_t j = 0; j < c->nout; j++) {
        double d = fabs(out[j] - ref[j]);
        if (!(d <= tol)) { bad++; at = j; }
        if (d > worst) worst = d;
    }
    CHECK(bad == 0, "%s [%s] forward: %zu of %zu beyond %.3g (e.g. [%zu] %.9g vs %.9g), worst %.3g",
          c->name, g_be->name, bad, c->nout, tol, at, bad ? out[at] : 0.0, bad ? ref[at] : 0.0, worst);
    if (c->bwd) {
        float *R = fbuf(c->nout);
        double *Rd = dbuf(c->nout), *tmp = dbuf(c->nout);
        for (size_t j = 0; j < c->nout; j++) { R[j] = urand(-1, 1); Rd[j] = R[j]; }
        for (int i = 0; i < c->nin; i++)
            if (c->diff[i]) {
                din[i] = fbuf(c->n[i]);
                for (size_t k = 0; k < c->n[i]; k++) din[i][k] = 1.0f;
            }
        c->bwd(g_be, c, in, R, din);
        g_be->synchronize();
        for (int i = 0; i < c->nin; i++) {
            if (!c->diff[i]) continue;
            for (size_t k = 0; k < c->n[i]; k++) din[i][k] -= 1.0f;   /* exact for |g| < 1; else adds <= 1 ulp of 1 */
            double Sg = maxabs_f(din[i], c->n[i]);
            double tolg = cb * sqrt(c->Kb) * EPS32 * (Sg > 0 ? Sg : 1) + 2 * EPS32;
            size_t nbad = 0, probes = c->n[i] < NFD ? c->n[i] : NFD;
            double wg = 0;
            for (size_t q = 0; q < probes; q++) {
                size_t k = c->n[i] <= NFD ? q : (size_t)cm_rng_below(&g_rng, c->n[i]);
                double x0 = ind[i][k], h = 1e-5 * fmax(1.0, fabs(x0));
                ind[i][k] = x0 + h;
                double Lp = objective(c, ind, Rd, tmp);
                ind[i][k] = x0 - h;
                double Lm = objective(c, ind, Rd, tmp);
                ind[i][k] = x0;
                double g = (Lp - Lm) / (2 * h), d = fabs(din[i][k] - g);
                if (d > wg) wg = d;
                if (!(d <= tolg)) {
                    if (!nbad)
                        fprintf(stderr, "    %s [%s] d input %d [%zu]: backend %.9g, finite differences %.9g\n", c->name,
                                g_be->name, i, k, din[i][k], g);
                    nbad++;
                }
            }
            CHECK(nbad == 0, "%s [%s] gradient of input %d: %zu of %zu probes beyond %.3g (worst %.3g)", c->name,
                  g_be->name, i, nbad, probes, tolg, wg);
        }
        g_be->free(R);
        free(Rd);
        free(tmp);
    }
    for (int i = 0; i < c->nin; i++) { g_be->free(in[i]); g_be->free(din[i]); free(ind[i]); }
    g_be->free(out);
    free(ref);
}

static Case mk(const char *name, int nin, size_t nout) {
    Case c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.nin = nin;
    c.nout = nout;
    c.Kf = c.Kb = 1;
    for (int i = 0; i < MAXIN; i++) { c.lo[i] = -1; c.hi[i] = 1; c.diff[i] = true; }
    return c;
}

// ---------------------------------------------------------------------------------------------
// double-precision evaluations (independent of src/kernels)

static void d_linear(double *out, const double *x, const double *W, const double *b, int M, int C, int OC) {
    for (int i = 0; i < M; i++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0;
            for (int k = 0; k < C; k++) s += x[(size_t)i * C + k] * W[(size_t)o * C + k];
            out[(size_t)i * OC + o] = s;
        }
}
static void d_softmax_row(double *y, const double *x, int n) {
    double m = -INFINITY, z = 0;
    for (int j = 0; j < n; j++) m = fmax(m, x[j]);
    for (int j = 0; j < n; j++) z += exp(x[j] - m);
    for (int j = 0; j < n; j++) y[j] = exp(x[j] - m) / z;
}
static double d_nll(const double *x, int n, int t) {
    double m = -INFINITY, z = 0;
    for (int j = 0; j < n; j++) m = fmax(m, x[j]);
    for (int j = 0; j < n; j++) z += exp(x[j] - m);
    return m + log(z) - x[t];
}
/* one sequence of L tokens: qkv rows [L,3C] -> out rows [L,C] */
static void d_attention_seq(double *out, const double *qkv, int L, int C, int NH, bool causal) {
    int hs = C / NH;
    double *s = dbuf(L), *a = dbuf(L);
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < L; i++) {
            int n = causal ? i + 1 : L;
            for (int j = 0; j < n; j++) {
                double d = 0;
                for (int e = 0; e < hs; e++) d += qkv[(size_t)i * 3 * C + h * hs + e] * qkv[(size_t)j * 3 * C + C + h * hs + e];
                s[j] = d / sqrt((double)hs);
            }
            d_softmax_row(a, s, n);
            for (int e = 0; e < hs; e++) {
                double o = 0;
                for (int j = 0; j < n; j++) o += a[j] * qkv[(size_t)j * 3 * C + 2 * C + h * hs + e];
                out[(size_t)i * C + h * hs + e] = o;
            }
        }
    free(s);
    free(a);
}

// ---------------------------------------------------------------------------------------------
// ops: matmul and linear

static void matmul_f(const CmBackend *be, Case *c, float **in, float *out) {
    int M = c->p[0], N = c->p[1], K = c->p[2], tA = c->p[3], tB = c->p[4];
    be->copy(out, in[2], (size_t)M * N * sizeof(float));
    be->matmul(tA, tB, M, N, K, c->f[0], in[0], tA ? M : K, in[1], tB ? K : N, c->f[1], out, N);
}
static void matmul_r(const Case *c, double **in, double *out) {
    int M = c->p[0], N = c->p[1], K = c->p[2], tA = c->p[3], tB = c->p[4];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (tA ? in[0][(size_t)k * M + i] : in[0][(size_t)i * K + k]) * (tB ? in[1][(size_t)j * K + k] : in[1][(size_t)k * N + j]);
            out[(size_t)i * N + j] = c->f[0] * s + c->f[1] * in[2][(size_t)i * N + j];
        }
}

static void linear_f(const CmBackend *be, Case *c, float **in, float *out) {
    be->linear_forward(CM_MM_F32, out, in[0], in[1], c->flag ? in[2] : NULL, c->p[0], c->p[1], c->p[2], NULL, 0);
}
static void linear_b(const CmBackend *be, Case *c, float **in, const float *dout, float **din) {
    be->linear_backward(CM_MM_F32, din[0], din[1], c->flag ? din[2] : NULL, dout, in[0], in[1], c->p[0], c->p[1], c->p[2], NULL, 0);
}
static void linear_r(const Case *c, double **in, double *out) {
    d_linear(out, in[0], in[1], c->flag ? in[2] : NULL, c->p[0], c->p[1], c->p[2]);
}

static void test_matmul_linear(void) {
    const int sh[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 70, 17}, {64, 96, 80}};
    for (int s = 0; s < 4; s++)
        for (int t = 0; t < 4; t++) {
            int M = sh[s][0], N = sh[s][2], K = sh[s][1];
            Case c = mk("", 3, (size_t)M * N);
            snprintf(c.name, sizeof c.name, "matmul M%d N%d K%d tA%d tB%d", M, N, K, t & 1, t >> 1);
            c.n[0] = (size_t)M * K; c.n[1] = (size_t)K * N; c.n[2] = (size_t)M * N;
            c.p[0] = M; c.p[1] = N; c.p[2] = K; c.p[3] = t & 1; c.p[4] = t >> 1;
            c.f[0] = 0.75f; c.f[1] = t == 3 ? 0.0f : 0.5f;
            c.Kf = K + 1;
            c.fwd = matmul_f; c.ref = matmul_r;
            run_case(&c);
        }
    for (int s = 0; s < 4; s++)
        for (int bias = 0; bias < 2; bias++) {
            int M = sh[s][0], C = sh[s][1], OC = sh[s][2];
            Case c = mk("", 3, (size_t)M * OC);
            snprintf(c.name, sizeof c.name, "linear fp32 M%d C%d OC%d bias%d", M, C, OC, bias);
            c.n[0] = (size_t)M * C; c.n[1] = (size_t)OC * C; c.n[2] = OC;
            c.diff[2] = bias;
            c.p[0] = M; c.p[1] = C; c.p[2] = OC; c.flag = bias;
            c.Kf = C + 1; c.Kb = M > OC ? M : OC;
            c.fwd = linear_f; c.bwd = linear_b; c.ref = linear_r;
            run_case(&c);
        }
}

/* bf16 products: the same formula on bf16-rounded operands (dout rounded too in backward), within
   the fp32 bound; and visibly different from the unrounded product */
static void test_linear_bf16(void) {
    const int sh[][3] = {{1, 1, 1}, {7, 13, 5}, {50, 768, 33}, {64, 96, 80}};
    for (int s = 0; s < 4; s++) {
        int M = sh[s][0], C = sh[s][1], OC = sh[s][2];
        size_t nx = (size_t)M * C, nw = (size_t)OC * C, ny = (size_t)M * OC;
        float *x = fbuf(nx), *W = fbuf(nw), *b = fbuf(OC), *y = fbuf(ny), *g = fbuf(ny);
        float *dx = fbuf(nx), *dW = fbuf(nw), *db = fbuf(OC);
        double *xr = dbuf(nx), *Wr = dbuf(nw), *gr = dbuf(ny), *yr = dbuf(ny), *dxr = dbuf(nx), *dWr = dbuf(nw);
        for (size_t i = 0; i < nx; i++) { x[i] = urand(-1, 1); xr[i] = cm_bf16_round(x[i]); }
        for (size_t i = 0; i < nw; i++) { W[i] = urand(-1, 1); Wr[i] = cm_bf16_round(W[i]); }
        for (size_t i = 0; i < ny; i++) { g[i] = urand(-1, 1); gr[i] = cm_bf16_round(g[i]); }
        for (int i = 0; i < OC; i++) b[i] = urand(-1, 1);
        size_t wsb = g_be->plan_linear(CM_MM_BF16, M, C, OC, true, true);   /* planning */
        void *ws = g_be->alloc(wsb + 1, "bf16 workspace");
        REQUIRE(ws, "workspace");
        g_be->linear_forward(CM_MM_BF16, y, x, W, b, M, C, OC, ws, wsb);
        g_be->linear_backward(CM_MM_BF16, dx, dW, db, g, x, W, M, C, OC, ws, wsb);
        g_be->synchronize();
        for (int i = 0; i < M; i++)
            for (int o = 0; o < OC; o++) {
                double s = b[o];
                for (int k = 0; k < C; k++) s += xr[(size_t)i * C + k] * Wr[(size_t)o * C + k];
                yr[(size_t)i * OC + o] = s;
            }
        for (int i = 0; i < M; i++)
            for (int k = 0; k < C; k++) {
                double s = 0;
                for (int o = 0; o < OC; o++) s += gr[(size_t)i * OC + o] * Wr[(size_t)o * C + k];
                dxr[(size_t)i * C + k] = s;
            }
        for (int o = 0; o < OC; o++)
            for (int k = 0; k < C; k++) {
                double s = 0;
                for (int i = 0; i < M; i++) s += gr[(size_t)i * OC + o] * xr[(size_t)i * C + k];
                dWr[(size_t)o * C + k] = s;
            }
        double ty = 16 * sqrt(C + 1.0) * EPS32 * fmax(maxabs_d(yr, ny), 1), tx = 16 * sqrt((double)OC) * EPS32 * fmax(maxabs_d(dxr, nx), 1),
               tw = 16 * sqrt((double)M) * EPS32 * fmax(maxabs_d(dWr, nw), 1);
        double ey = 0, ex = 0, ew = 0, eb = 0;
        for (size_t i = 0; i < ny; i++) ey = fmax(ey, fabs(y[i] - yr[i]));
        for (size_t i = 0; i < nx; i++) ex = fmax(ex, fabs(dx[i] - dxr[i]));
        for (size_t i = 0; i < nw; i++) ew = fmax(ew, fabs(dW[i] - dWr[i]));
        for (int o = 0; o < OC; o++) {   /* db: fp32 column sums of the unrounded dout */
            double s = 0;
            for (int i = 0; i < M; i++) s += g[(size_t)i * OC + o];
            eb = fmax(eb, fabs(db[o] - s));
        }
        CHECK(ey <= ty && ex <= tx && ew <= tw && eb <= 16 * sqrt((double)M) * EPS32 * M,
              "bf16 linear M%d C%d OC%d: y %.3g (tol %.3g) dx %.3g (%.3g) dW %.3g (%.3g) db %.3g", M, C, OC, ey, ty, ex, tx, ew, tw, eb);
        if (C >= 13) {   /* the rounding is really there: the unrounded product differs by ~bf16 eps */
            double eu = 0;
            for (int i = 0; i < M; i++)
                for (int o = 0; o < OC; o++) {
                    double s = b[o];
                    for (int k = 0; k < C; k++) s += (double)x[(size_t)i * C + k] * W[(size_t)o * C + k];
                    eu = fmax(eu, fabs(y[(size_t)i * OC + o] - s));
                }
            CHECK(eu > 10 * ey, "bf16 linear M%d C%d OC%d: unrounded difference %.3g vs rounded %.3g", M, C, OC, eu, ey);
        }
        g_be->free(ws);
        g_be->free(x); g_be->free(W); g_be->free(b); g_be->free(y); g_be->free(g);
        g_be->free(dx); g_be->free(dW); g_be->free(db);
        free(xr); free(Wr); free(gr); free(yr); free(dxr); free(dWr);
    }
}

/* int8 inference linear: within the quantisation bound of per-row activations and per-channel weights */
static void test_linear_int8(void) {
    int M = 9, C = 64, OC = 24;
    float *x = fbuf((size_t)M * C), *W = fbuf((size_t)OC * C), *b = fbuf(OC), *y = fbuf((size_t)M * OC);
    for (int i = 0; i < M * C; i++) x[i] = urand(-1, 1);
    for (int i = 0; i < OC * C; i++) W[i] = urand(-1, 1);
    for (int i = 0; i < OC; i++) b[i] = urand(-1, 1);
    CmInt8Weights q;
    void *mem = g_be->alloc(cm_int8_weights_bytes(OC, C), "int8 weights");
    size_t wsb = g_be->plan_linear_int8(M, C, OC);   /* planning: the products' primitives ahead (or nothing) */
    void *ws = g_be->alloc(wsb, "int8 workspace");
    REQUIRE(mem && ws, "alloc");
    REQ_OK(cm_int8_weights_init(&q, W, OC, C, mem));
    g_be->linear_forward_int8(y, x, &q, b, NULL, M, ws, wsb);
    g_be->synchronize();
    double worst = 0, worst_tol = 0;
    int bad = 0;
    for (int i = 0; i < M; i++) {
        double xm = 0;
        for (int k = 0; k < C; k++) xm = fmax(xm, fabs(x[(size_t)i * C + k]));
        for (int o = 0; o < OC; o++) {
            double s = b[o], wm = 0, sw = 0, sx = 0;
            for (int k = 0; k < C; k++) {
                s += (double)x[(size_t)i * C + k] * W[(size_t)o * C + k];
                wm = fmax(wm, fabs(W[(size_t)o * C + k]));
                sw += fabs(W[(size_t)o * C + k]);
                sx += fabs(x[(size_t)i * C + k]);
            }
            /* each operand is off by at most half a step (max/127/2): first-order bound + fp32 */
            double tol = 0.5 * xm / 127 * sw + 0.5 * wm / 127 * sx + 0.25 * xm * wm / (127.0 * 127.0) * C + 1e-5;
            double d = fabs(y[(size_t)i * OC + o] - s);
            if (d > tol) bad++;
            if (d > worst) { worst = d; worst_tol = tol; }
        }
    }
    CHECK(bad == 0, "int8 linear: %d outputs beyond the quantisation bound (worst %.3g, its bound %.3g)", bad, worst, worst_tol);
    /* the fused activation: gelu / quickgelu of the same pre-activation, evaluated in double here,
       within the rounding of erff / expf and the three operations around it */
    float *g = fbuf((size_t)M * OC);
    for (int quick = 0; quick <= 1; quick++) {
        g_be->linear_gelu_forward_int8(g, x, &q, b, quick, M, ws, wsb);
        g_be->synchronize();
        int gbad = 0;
        for (int i = 0; i < M * OC; i++) {
            double v = y[i], r = quick ? v / (1.0 + exp(-1.702 * v)) : 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
            if (fabs(g[i] - r) > 16 * EPS32 * (fabs(v) + fabs(r)) + 1e-30) gbad++;
        }
        CHECK(gbad == 0, "int8 linear + %s: %d outputs differ from the activation of the int8 linear",
              quick ? "quickgelu" : "gelu", gbad);
    }
    g_be->free(g);
    g_be->free(mem); g_be->free(ws); g_be->free(x); g_be->free(W); g_be->free(b); g_be->free(y);
}

// ---------------------------------------------------------------------------------------------
// normalisation

static void ln_f(const CmBackend *be, Case *c, float **in, float *out) {
    int M = c->p[0], C = c->p[1];
    float *m = fbuf(M), *r = fbuf(M);
    be->layernorm_forward(out, m, r, in[0], in[1], in[2], M, C);
    be->free(m); be->free(r);
}
static void ln_b(const CmBackend *be, Case *c, float **in, const float *dout, float **din) {
    int M = c->p[0], C = c->p[1];
    float *m = fbuf(M), *r = fbuf(M), *y = fbuf((size_t)M * C);
    be->layernorm_forward(y, m, r, in[0], in[1], in[2], M, C);
    be->layernorm_backward(din[0], din[1], din[2], dout, in[0], in[1], m, r, M, C);
    be->free(m); be->free(r); be->free(y);
}
static void ln_r(const Case *c, double **in, double *out) {
    int M = c->p[0], C = c->p[1];
    for (int i = 0; i < M; i++) {
        const double *x = in[0] + (size_t)i * C;
        double mu = 0, var = 0;
        for (int k = 0; k < C; k++) mu += x[k];
        mu /= C;
        for (int k = 0; k < C; k++) var += (x[k] - mu) * (x[k] - mu);
        var /= C;
        double rs = 1 / sqrt(var + 1e-5);
        for (int k = 0; k < C; k++) out[(size_t)i * C + k] = (x[k] - mu) * rs * in[1][k] + in[2][k];
    }
}

static void l2_f(const CmBackend *be, Case *c, float **in, float *out) {
    float *nrm = fbuf(c->p[0]);
    be->l2norm_forward(out, nrm, in[0], c->p[0], c->p[1]);
    be->free(nrm);
}
static void l2_b(const CmBackend *be, Case *c, float **in, const float *dout, float **din) {
    int M = c->p[0], C = c->p[1];
    float *nrm = fbuf(M), *y = fbuf((size_t)M * C);
    be->l2norm_forward(y, nrm, in[0], M, C);
    be->l2norm_backward(din[0], dout, y, nrm, M, C);
    be->free(nrm); be->free(y);
}
static void l2_r(const Case *c, double **in, double *out) {
    int M = c->p[0], C = c->p[1];
    for (int i = 0; i < M; i++) {
        double s = 0;
        for (int k = 0; k < C; k++) s += in[0][(size_t)i * C + k] * in[0][(size_t)i * C + k];
        s = fmax(sqrt(s), 1e-12);
        for (int k = 0; k < C; k++) out[(size_t)i * C + k] = in[0][(size_t)i * C + k] / s;
    }
}

static void sm_f(const CmBackend *be, Case *c, float **in, float *out) { be->softmax_forward(out, in[0], c->p[0], c->p[1]); }
static void sm_b(const CmBackend *be, Case *c, float **in, const float *dout, float **din) {
    float *y = fbuf((size_t)c->p[0] * c->p[1]);
    be->softmax_forward(y, in[0], c->p[0], c->p[1]);
    be->softmax_backward(din[0], y, dout, c->p[0], c->p[1]);
    be->free(y);
}
static void sm_r(const Case *c, double **in, double *out) {
    for (int i = 0; i < c->p[0]; i++) d_softmax_row(out + (size_t)i * c->p[1], in[0] + (size_t)i * c->p[1], c->p[1]);
}

static void test_norms(void) {
    const int sh[][2] = {{1, 1}, {3, 7}, {17, 64}, {5, 768}};
    for (int s = 0; s < 4; s++) {
        int M = sh[s][0], C = sh[s][1];
        Case c = mk("", 3, (size_t)M * C);
        snprintf(c.name, sizeof c.name, "layernorm M%d C%d", M, C);
        c.n[0] = (size_t)M * C; c.n[1] = c.n[2] = C;
        c.lo[0] = -2; c.hi[0] = 3;
        c.p[0] = M; c.p[1] = C; c.Kf = C; c.Kb = C > M ? C : M;
        c.fwd = ln_f; c.bwd = ln_b; c.ref = ln_r;
        if (C > 1) run_case(&c);   /* C = 1: the normalised value is 0 / sqrt(eps) (no gradient to probe) */
        Case d = mk("", 1, (size_t)M * C);
        snprintf(d.name, sizeof d.name, "l2norm M%d C%d", M, C);
        d.n[0] = (size_t)M * C; d.lo[0] = 0.1f; d.hi[0] = 1;
        d.p[0] = M; d.p[1] = C; d.Kf = d.Kb = C;
        d.fwd = l2_f; d.bwd = l2_b; d.ref = l2_r;
        run_case(&d);
        Case e = mk("", 1, (size_t)M * C);
        snprintf(e.name, sizeof e.name, "softmax M%d N%d", M, C);
        e.n[0] = (size_t)M * C; e.lo[0] = -4; e.hi[0] = 4;
        e.p[0] = M; e.p[1] = C; e.Kf = e.Kb = C;
        e.fwd = sm_f; e.bwd = sm_b; e.ref = sm_r;
        run_case(&e);
    }
}

// ---------------------------------------------------------------------------------------------
// elementwise

static void gelu_f(const CmBackend *be, Case *c, float **in, float *out) {
    if (c->p[0] == 0) be->gelu_forward(out, in[0], c->n[0]);
    else if (c->p[0] == 1) be->quickgelu_forward(out, in[0], c->n[0]);
    else be->relu_forward(out, in[0], c->n[0]);
}
static void gelu_b(const CmBackend *be, Case *c, float **in, const float *dout, float **din) {
    if (c->p[0] == 0) be->gelu_backward(din[0], in[0], dout, c->n[0]);
    else if (c->p[0] == 1) be->quickgelu_backward(din[0], in[0], dout, c->n[0]);
    else be->relu_backward(din[0], in[0], dout, c->n[0]);
}
static void gelu_r(const Case *c, double **in, double *out) {
    for (size_t i = 0; i < c->n[0]; i++) {
        double x = in[0][i];
        out[i] = c->p[0] == 0 ? 0.5 * x * (1 + erf(x / sqrt(2.0))) : c->p[0] == 1 ? x / (1 + exp(-1.702 * x)) : (x > 0 ? x : 0);
    }
}

static void add_f(const CmBackend *be, Case *c, float **in, float *out) {
    if (c->p[0]) { be->copy(out, in[0], c->n[0] * sizeof(float)); be->scale(out, c->f[0], c->n[0]); }
    else be->add(out, in[0], in[1], c->n[0]);
}
static void add_r(const Case *c, double **in, double *out) {
    for (size_t i = 0; i < c->n[0]; i++) out[i] = c->p[0] ? (double)c->f[0] * in[0][i] : in[0][i] + in[1][i];
}

static void test_elementwise(void) {
    const char *nm[3] = {"gelu", "quickgelu", "relu"};
    size_t ns[3] = {1, 37, 70000};   /* 70000: above the OpenMP threshold */
    for (int k = 0; k < 3; k++)
        for (int s = 0; s < 3; s++) {
            Case c = mk("", 1, ns[s]);
            snprintf(c.name, sizeof c.name, "%s n%zu", nm[k], ns[s]);
            c.n[0] = ns[s]; c.lo[0] = -5; c.hi[0] = 5;
            c.p[0] = k; c.Kf = 4; c.Kb = 4;   /* libm/libmvec erff/expf: a few ulp */
            c.fwd = gelu_f; c.bwd = gelu_b; c.ref = gelu_r;
            if (k == 2) {   /* keep relu's inputs away from the kink for the finite differences */
                c.lo[0] = 0.01f; c.hi[0] = 5;
                run_case(&c);
                c.lo[0] = -5; c.hi[0] = -0.01f;
            }
            run_case(&c);
        }
    for (int k = 0; k < 2; k++) {
        Case c = mk(k ? "scale" : "add", k ? 1 : 2, 70001);
        c.n[0] = c.n[1] = 70001; c.p[0] = k; c.f[0] = -0.3f;
        c.fwd = add_f; c.ref = add_r;
        run_case(&c);
    }
}

/* dropout: the mask of element e of sample b is a pure function of (seed, step, site, global
   sample index, e) — checked against Philox drawn here, and split into micro-batches */
static void test_dropout(void) {
    int B = 5, n = 37;
    float p = 0.3f;
    size_t N = (size_t)B * n;
    float *x = fbuf(N), *y = fbuf(N), *mk_ = fbuf(N), *y2 = fbuf(N), *m2 = fbuf(N), *g = fbuf(N), *dx = fbuf(N);
    for (size_t i = 0; i < N; i++) { x[i] = urand(-1, 1); g[i] = urand(-1, 1); }
    CmDropoutKey key = {.seed = 0x123456789abcULL, .step = 7, .sample_base = 100};
    g_be->dropout_forward(y, mk_, x, p, (size_t)n, B, &key, 3);
    CmDropoutKey k1 = key, k2 = key;   /* the same batch as two micro-batches 2 + 3 */
    k2.sample_base = key.sample_base + 2;
    g_be->dropout_forward(y2, m2, x, p, (size_t)n, 2, &k1, 3);
    g_be->dropout_forward(y2 + 2 * n, m2 + 2 * n, x + 2 * n, p, (size_t)n, 3, &k2, 3);
    g_be->dropout_backward(dx, g, mk_, N);
    g_be->synchronize();
    int bad = 0, kept = 0;
    const uint32_t kk[2] = {(uint32_t)key.seed, (uint32_t)(key.seed >> 32)};
    for (int b = 0; b < B; b++)
        for (int e = 0; e < n; e++) {
            const uint32_t ctr[4] = {(uint32_t)(e / 4), 3u, (uint32_t)(key.sample_base + b), (uint32_t)key.step};
            uint32_t r[4];
            cm_philox4x32_10(ctr, kk, r);
            double u = (double)(r[e % 4] >> 8) / 16777216.0;
            double want = u >= p ? 1.0 / (1.0 - p) : 0.0;
            size_t i = (size_t)b * n + e;
            kept += want != 0;
            if (fabs(mk_[i] - want) > 1e-6 || fabs(y[i] - x[i] * want) > 1e-6 || m2[i] != mk_[i] || y2[i] != y[i] ||
                fabs(dx[i] - g[i] * want) > 1e-6)
                bad++;
        }
    CHECK(bad == 0, "dropout: %d elements differ from the Philox mask / micro-batch split", bad);
    CHECK(kept > N * 0.5 && kept < N * 0.9, "dropout p=0.3 kept %d of %zu", kept, N);
    g_be->free(x); g_be->free(y); g_be->free(mk_); g_be->free(y2); g_be->free(m2); g_be->free(g); g_be->free(dx);
}

// ---------------------------------------------------------------------------------------------
// attention

static const CmDropoutKey g_att_key = {.seed = 99, .step = 3, .sample_base = 10};

/* p[4]: dropout on the probabilities with p = f[0] (c->mask keeps the mask for the reference) */
static void att_f(const CmBackend *be, Case *c, float **in, float *out) {
    int B = c->p[0], T = c->p[1], C = c->p[2], NH = c->p[3];
    size_t na = (size_t)B * NH * T * T;
    float *att = fbuf(na), *attd = fbuf(na);
    CmAttnDropout dr = {c->f[0], &g_att_key, 7, attd, c->mask};
    size_t wsb = be->plan_attention(B, T, C, NH, false);
    void *ws = be->alloc(wsb + 1, "attention workspace");
    be->attention_forward(out, att, in[0], B, T, C, NH, c->flag, c->p[4] ? &dr : NULL, ws, wsb);
    be->free(att); be->free(attd); be->free(ws);
}
static void att_b(const CmBackend *be, Case *c, float **in, const float *dout, float **din) {
    int B = c->p[0], T = c->p[1], C = c->p[2], NH = c->p[3];
    size_t na = (size_t)B * NH * T * T;
    float *att = fbuf(na), *attd = fbuf(na), *mask = fbuf(na), *y = fbuf((size_t)B * T * C);
    CmAttnDropout dr = {c->f[0], &g_att_key, 7, attd, mask};
    size_t wsb = be->plan_attention(B, T, C, NH, true);
    void *ws = be->alloc(wsb + 1, "attention workspace");
    be->attention_forward(y, att, in[0], B, T, C, NH, c->flag, c->p[4] ? &dr : NULL, ws, wsb);
    be->attention_backward(din[0], dout, in[0], att, B, T, C, NH, c->flag, c->p[4] ? &dr : NULL, ws, wsb);
    be->free(att); be->free(attd); be->free(mask); be->free(y); be->free(ws);
}
static void att_r(const Case *c, double **in, double *out) {
    int B = c->p[0], T = c->p[1], C = c->p[2], NH = c->p[3], hs = C / NH;
    if (!c->p[4]) {
        for (int b = 0; b < B; b++) d_attention_seq(out + (size_t)b * T * C, in[0] + (size_t)b * T * 3 * C, T, C, NH, c->flag);
        return;
    }
    double *s = dbuf(T), *a = dbuf(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                const double *qkv = in[0] + (size_t)b * T * 3 * C;
                int n = c->flag ? i + 1 : T;
                for (int j = 0; j < T; j++) a[j] = 0;
                for (int j = 0; j < n; j++) {
                    double d = 0;
                    for (int e = 0; e < hs; e++) d += qkv[(size_t)i * 3 * C + h * hs + e] * qkv[(size_t)j * 3 * C + C + h * hs + e];
                    s[j] = d / sqrt((double)hs);
                }
                d_softmax_row(a, s, n);
                const float *mk = c->mask + (((size_t)b * NH + h) * T + i) * T;
                for (int e = 0; e < hs; e++) {
                    double o = 0;
                    for (int j = 0; j < n; j++) o += a[j] * mk[j] * qkv[(size_t)j * 3 * C + 2 * C + h * hs + e];
                    out[((size_t)b * T + i) * C + h * hs + e] = o;
                }
            }
    free(s);
    free(a);
}

static void attv_f(const CmBackend *be, Case *c, float **in, float *out) {
    int B = c->p[0], C = c->p[2], NH = c->p[3];
    float *att = fbuf((size_t)c->aoff[B]);
    be->attention_forward_varlen(out, att, in[0], c->off, c->aoff, B, C, NH, c->flag);
    be->free(att);
}
static void attv_b(const CmBackend *be, Case *c, float **in, const float *dout, float **din) {
    int B = c->p[0], C = c->p[2], NH = c->p[3];
    float *att = fbuf((size_t)c->aoff[B]), *y = fbuf((size_t)c->off[B] * C);
    be->attention_forward_varlen(y, att, in[0], c->off, c->aoff, B, C, NH, c->flag);
    be->attention_backward_varlen(din[0], dout, in[0], att, c->off, c->aoff, B, C, NH, c->flag);
    be->free(att); be->free(y);
}
static void attv_r(const Case *c, double **in, double *out) {
    int B = c->p[0], C = c->p[2], NH = c->p[3];
    for (int b = 0; b < B; b++)
        d_attention_seq(out + (size_t)c->off[b] * C, in[0] + (size_t)c->off[b] * 3 * C, c->off[b + 1] - c->off[b], C, NH, c->flag);
}

static void test_attention(void) {
    const int sh[][4] = {{1, 1, 4, 1}, {2, 5, 8, 2}, {3, 17, 64, 4}, {2, 50, 96, 3}};
    for (int s = 0; s < 4; s++)
        for (int causal = 0; causal < 2; causal++) {
            int B = sh[s][0], T = sh[s][1], C = sh[s][2], NH = sh[s][3];
            Case c = mk("", 1, (size_t)B * T * C);
            snprintf(c.name, sizeof c.name, "attention B%d T%d C%d NH%d causal%d", B, T, C, NH, causal);
            c.n[0] = (size_t)B * T * 3 * C;
            c.p[0] = B; c.p[1] = T; c.p[2] = C; c.p[3] = NH; c.flag = causal;
            c.Kf = c.Kb = T + C / NH;
            c.fwd = att_f; c.bwd = att_b; c.ref = att_r;
            run_case(&c);
            /* with dropout p = 0.25 on the probabilities (the head's attention in training) */
            c.p[4] = 1; c.f[0] = 0.25f;
            c.mask = fbuf((size_t)B * NH * T * T);
            snprintf(c.name, sizeof c.name, "attention+dropout B%d T%d C%d NH%d causal%d", B, T, C, NH, causal);
            run_case(&c);
            g_be->free(c.mask);
        }
    const int lens[] = {3, 1, 9, 5};
    int off[5] = {0};
    int64_t aoff[5] = {0};
    int B = 4, C = 16, NH = 2;
    for (int b = 0; b < B; b++) { off[b + 1] = off[b] + lens[b]; aoff[b + 1] = aoff[b] + (int64_t)NH * lens[b] * lens[b]; }
    for (int causal = 0; causal < 2; causal++) {
        Case c = mk("", 1, (size_t)off[B] * C);
        snprintf(c.name, sizeof c.name, "attention varlen lengths 3,1,9,5 C%d NH%d causal%d", C, NH, causal);
        c.n[0] = (size_t)off[B] * 3 * C;
        c.p[0] = B; c.p[2] = C; c.p[3] = NH; c.flag = causal; c.off = off; c.aoff = aoff;
        c.Kf = c.Kb = 9 + C / NH;
        c.fwd = attv_f; c.bwd = attv_b; c.ref = attv_r;
        run_case(&c);
    }
}

// ---------------------------------------------------------------------------------------------
// embeddings, patches, stems, rows

static void emb_f(const CmBackend *be, Case *c, float **in, float *out) {
    if (c->flag) be->embedding_forward_rows(out, c->ids, c->ids2, in[0], in[1], c->p[3], c->p[2]);
    else be->embedding_forward(out, c->ids, in[0], in[1], c->p[0], c->p[1], c->p[2]);
}
static void emb_b(const CmBackend *be, Case *c, float **in, const float *dout, float **din) {
    if (c->flag) be->embedding_backward_rows(din[0], din[1], dout, c->ids, c->ids2, c->p[3], c->p[2]);
    else be->embedding_backward(din[0], din[1], dout, c->ids, c->p[0], c->p[1], c->p[2]);
}
static void emb_r(const Case *c, double **in, double *out) {
    int C = c->p[2], M = c->flag ? c->p[3] : c->p[0] * c->p[1];
    for (int i = 0; i < M; i++) {
        int t = c->flag ? c->ids2[i] : i % c->p[1];
        for (int k = 0; k < C; k++) out[(size_t)i * C + k] = in[0][(size_t)c->ids[i] * C + k] + in[1][(size_t)t * C + k];
    }
}

static void patch_f(const CmBackend *be, Case *c, float **in, float *out) { be->im2patch(out, in[0], c->p[0], c->p[1], c->p[1], c->p[2]); }
static void patch_r(const Case *c, double **in, double *out) {
    int B = c->p[0], S = c->p[1], P = c->p[2], G = S / P;
    size_t i = 0;
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++)
                for (int ch = 0; ch < 3; ch++)
                    for (int ky = 0; ky < P; ky++)
                        for (int kx = 0; kx < P; kx++)
                            out[i++] = in[0][(((size_t)b * 3 + ch) * S + gy * P + ky) * S + gx * P + kx];
}

static void cls_f(const CmBackend *be, Case *c, float **in, float *out) { be->cls_pos_forward(out, in[0], in[1], in[2], c->p[0], c->p[1], c->p[2]); }
static void cls_b(const CmBackend *be, Case *c, float **in, const float *dout, float **din) {
    float *de = fbuf(c->n[0]);   /* demb is written, not accumulated */
    be->cls_pos_backward(din[1], din[2], de, dout, c->p[0], c->p[1], c->p[2]);
    be->add(din[0], din[0], de, c->n[0]);
    be->free(de);
}
static void cls_r(const Case *c, double **in, double *out) {
    int B = c->p[0], NP = c->p[1], C = c->p[2];
    for (int b = 0; b < B; b++)
        for (int t = 0; t <= NP; t++)
            for (int k = 0; k < C; k++)
                out[((size_t)b * (NP + 1) + t) * C + k] =
                    (t ? in[0][((size_t)b * NP + t - 1) * C + k] : in[1][k]) + in[2][(size_t)t * C + k];
}

static void rows_f(const CmBackend *be, Case *c, float **in, float *out) {
    if (c->flag) { be->zero(out, c->nout * sizeof(float)); be->scatter_rows(out, in[0], c->off, c->p[0], c->p[1]); }
    else be->gather_rows(out, in[0], c->off, c->p[0], c->p[1]);
}
static void rows_r(const Case *c, double **in, double *out) {
    int n = c->p[0], C = c->p[1];
    if (c->flag) memset(out, 0, c->nout * sizeof(double));
    for (int b = 0; b < n; b++)
        for (int k = 0; k < C; k++) {
            if (c->flag) out[(size_t)c->off[b] * C + k] = in[0][(size_t)b * C + k];
            else out[(size_t)b * C + k] = in[0][(size_t)c->off[b] * C + k];
        }
}

static void test_embeddings_rows(void) {
    int B = 3, T = 5, C = 8, V = 11;
    int32_t ids[15], pos[15];
    for (int i = 0; i < B * T; i++) { ids[i] = (int32_t)cm_rng_below(&g_rng, V); pos[i] = (int32_t)cm_rng_below(&g_rng, T); }
    ids[3] = ids[4] = ids[9];   /* repeated ids: the scatter must add */
    for (int rows = 0; rows < 2; rows++) {
        Case c = mk(rows ? "embedding rows" : "embedding", 2, (size_t)B * T * C);
        c.n[0] = (size_t)V * C; c.n[1] = (size_t)T * C;
        c.p[0] = B; c.p[1] = T; c.p[2] = C; c.p[3] = B * T; c.flag = rows; c.ids = ids; c.ids2 = pos;
        c.Kf = 2; c.Kb = B * T;
        c.fwd = emb_f; c.bwd = emb_b; c.ref = emb_r;
        run_case(&c);
    }
    Case p = mk("im2patch B2 S12 P4", 1, (size_t)2 * 3 * 12 * 12);
    p.n[0] = p.nout; p.p[0] = 2; p.p[1] = 12; p.p[2] = 4;
    p.fwd = patch_f; p.ref = patch_r;
    run_case(&p);
    Case k = mk("class + positional embedding B3 NP4 C8", 3, (size_t)3 * 5 * 8);
    k.n[0] = (size_t)3 * 4 * 8; k.n[1] = 8; k.n[2] = 5 * 8;
    k.p[0] = 3; k.p[1] = 4; k.p[2] = 8; k.Kf = 2; k.Kb = 3;
    k.fwd = cls_f; k.bwd = cls_b; k.ref = cls_r;
    run_case(&k);
    int rowsel[4] = {7, 0, 12, 3};
    for (int sc = 0; sc < 2; sc++) {
        Case r = mk(sc ? "scatter rows" : "gather rows", 1, sc ? (size_t)13 * 6 : (size_t)4 * 6);
        r.n[0] = sc ? (size_t)4 * 6 : (size_t)13 * 6;
        r.p[0] = 4; r.p[1] = 6; r.off = rowsel; r.flag = sc;
        r.fwd = rows_f; r.ref = rows_r;
        run_case(&r);
    }
}

// ---------------------------------------------------------------------------------------------
// LoRA: down product (backward: lora_tn for dA, lora_up_acc for dx) and the fused residual init
// (backward: add for dres, column sums for db, lora_down for dlt, lora_tn for dBt)

static void lora_f(const CmBackend *be, Case *c, float **in, float *out) { be->lora_down(out, in[0], in[1], c->p[0], c->p[1], c->p[2]); }
static void lora_b(const CmBackend *be, Case *c, float **in, const float *dout, float **din) {
    be->lora_tn(din[1], dout, in[0], c->p[0], c->p[1], c->p[2], 1.0f);
    be->lora_up_acc(din[0], dout, in[1], c->p[0], c->p[1], c->p[2]);
}
static void lora_r(const Case *c, double **in, double *out) { d_linear(out, in[0], in[1], NULL, c->p[0], c->p[1], c->p[2]); }

static void res_f(const CmBackend *be, Case *c, float **in, float *out) {
    be->residual_init(out, in[0], in[1], in[2], in[3], c->p[2], c->p[0], c->p[1]);
}
static void res_b(const CmBackend *be, Case *c, float **in, const float *dout, float **din) {
    int M = c->p[0], D = c->p[1], r = c->p[2];
    be->add(din[0], din[0], dout, (size_t)M * D);
    be->linear_backward(CM_MM_F32, NULL, NULL, din[1], dout, NULL, NULL, M, r, D, NULL, 0);   /* db = column sums */
    float *dlt = fbuf((size_t)M * r);
    be->lora_down(dlt, dout, in[3], M, D, r);
    be->add(din[2], din[2], dlt, (size_t)M * r);
    be->lora_tn(din[3], in[2], dout, M, D, r, 1.0f);
    be->free(dlt);
}
static void res_r(const Case *c, double **in, double *out) {
    int M = c->p[0], D = c->p[1], r = c->p[2];
    for (int i = 0; i < M; i++)
        for (int d = 0; d < D; d++) {
            double s = in[0][(size_t)i * D + d] + in[1][d];
            for (int k = 0; k < r; k++) s += in[2][(size_t)i * r + k] * in[3][(size_t)k * D + d];
            out[(size_t)i * D + d] = s;
        }
}

static void tr_f(const CmBackend *be, Case *c, float **in, float *out) { be->transpose_scaled(out, in[0], c->p[0], c->p[1], c->f[0]); }
static void tr_r(const Case *c, double **in, double *out) {
    for (int i = 0; i < c->p[0]; i++)
        for (int j = 0; j < c->p[1]; j++) out[(size_t)j * c->p[0] + i] = (double)c->f[0] * in[0][(size_t)i * c->p[1] + j];
}

static void test_lora(void) {
    const int ranks[] = {1, 4, 32, 64};
    for (int ri = 0; ri < 4; ri++) {
        int r = ranks[ri], M = 37, D = 200;   /* D > 128 and r > 16: several column blocks and rank tiles */
        Case c = mk("", 2, (size_t)M * r);
        snprintf(c.name, sizeof c.name, "lora down/tn/up rank %d M%d D%d", r, M, D);
        c.n[0] = (size_t)M * D; c.n[1] = (size_t)r * D;
        c.p[0] = M; c.p[1] = D; c.p[2] = r; c.Kf = D; c.Kb = M > r ? M : r;
        c.fwd = lora_f; c.bwd = lora_b; c.ref = lora_r;
        run_case(&c);
        Case e = mk("", 4, (size_t)M * D);
        snprintf(e.name, sizeof e.name, "residual init + LoRA rank %d M%d D%d", r, M, D);
        e.n[0] = (size_t)M * D; e.n[1] = D; e.n[2] = (size_t)M * r; e.n[3] = (size_t)r * D;
        e.p[0] = M; e.p[1] = D; e.p[2] = r; e.Kf = r + 2; e.Kb = M > D ? M : D;
        e.fwd = res_f; e.bwd = res_b; e.ref = res_r;
        run_case(&e);
        Case t = mk("", 1, (size_t)D * r);
        snprintf(t.name, sizeof t.name, "transpose scaled %dx%d", D, r);
        t.n[0] = (size_t)D * r; t.p[0] = D; t.p[1] = r; t.f[0] = 0.37f;
        t.fwd = tr_f; t.ref = tr_r;
        run_case(&t);
    }
}

// ---------------------------------------------------------------------------------------------
// losses

static void ce_f(const CmBackend *be, Case *c, float **in, float *out) {
    float *pr = fbuf((size_t)c->p[0] * c->p[1]);
    out[0] = be->crossentropy_forward(pr, in[0], c->ids, c->p[0], c->p[1]);
    be->free(pr);
}
static void ce_b(const CmBackend *be, Case *c, float **in, const float *dout, float **din) {
    float *pr = fbuf((size_t)c->p[0] * c->p[1]);
    be->crossentropy_forward(pr, in[0], c->ids, c->p[0], c->p[1]);
    be->crossentropy_backward(din[0], pr, c->ids, c->p[0], c->p[1], dout[0]);
    be->free(pr);
}
static void ce_r(const Case *c, double **in, double *out) {
    double L = 0;
    for (int i = 0; i < c->p[0]; i++) L += d_nll(in[0] + (size_t)i * c->p[1], c->p[1], c->ids[i]);
    out[0] = L / c->p[0];
}

static void con_f(const CmBackend *be, Case *c, float **in, float *out) {
    int N = c->p[0], D = c->p[1];
    float *pi = fbuf((size_t)N * N), *pt = fbuf((size_t)N * N);
    out[0] = be->contrastive_forward(pi, pt, in[0], in[1], in[2][0], c->ids, N, D);
    be->free(pi); be->free(pt);
}
static void con_b(const CmBackend *be, Case *c, float **in, const float *dout, float **din) {
    int N = c->p[0], D = c->p[1];
    float *pi = fbuf((size_t)N * N), *pt = fbuf((size_t)N * N);
    void *ws = be->alloc(be->contrastive_workspace(N) + 1, "contrastive workspace");
    be->contrastive_forward(pi, pt, in[0], in[1], in[2][0], c->ids, N, D);
    be->contrastive_backward(din[0], din[1], din[2], pi, pt, in[0], in[1], in[2][0], c->ids, N, D, dout[0], ws);
    be->free(pi); be->free(pt); be->free(ws);
}
static void con_r(const Case *c, double **in, double *out) {
    int N = c->p[0], D = c->p[1], cnt = 0;
    double s = in[2][0], L = 0, *S = dbuf((size_t)N * N), *St = dbuf((size_t)N * N);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double d = 0;
            for (int e = 0; e < D; e++) d += in[0][(size_t)i * D + e] * in[1][(size_t)j * D + e];
            S[(size_t)i * N + j] = St[(size_t)j * N + i] = s * d;
        }
    for (int i = 0; i < N; i++)
        if (c->ids[i] == 0) {
            cnt++;
            L += d_nll(S + (size_t)i * N, N, i) + d_nll(St + (size_t)i * N, N, i);
        }
    out[0] = cnt ? L / (2.0 * cnt) : 0;
    free(S); free(St);
}

static void test_losses(void) {
    int32_t lab[9] = {2, 0, 4, 1, 1, 3, 0, 2, 4};
    Case c = mk("crossentropy M9 K5", 1, 1);
    c.n[0] = 9 * 5; c.lo[0] = -3; c.hi[0] = 3; c.p[0] = 9; c.p[1] = 5; c.ids = lab;
    c.Kf = 9 * 5; c.Kb = 5;
    c.fwd = ce_f; c.bwd = ce_b; c.ref = ce_r;
    run_case(&c);
    int32_t cl[7] = {0, 0, 3, 0, 1, 0, 0};   /* 2 samples outside the contrastive mask */
    const int Ns[] = {1, 7};
    for (int k = 0; k < 2; k++) {
        int N = Ns[k], D = 16;
        Case e = mk("", 3, 1);
        snprintf(e.name, sizeof e.name, "contrastive N%d D%d", N, D);
        e.n[0] = e.n[1] = (size_t)N * D; e.n[2] = 1;
        e.lo[0] = e.lo[1] = -0.25f; e.hi[0] = e.hi[1] = 0.25f; e.lo[2] = 5; e.hi[2] = 20;
        e.p[0] = N; e.p[1] = D; e.ids = cl;
        e.Kf = N * D; e.Kb = N * D;
        e.fwd = con_f; e.bwd = con_b; e.ref = con_r;
        run_case(&e);
    }
}

// ---------------------------------------------------------------------------------------------
// optimizer and buffers

static void test_adamw_sumsq(void) {
    size_t n = 70000;
    float *p = fbuf(n), *g = fbuf(n), *m = fbuf(n), *v = fbuf(n);
    double *pd = dbuf(n), *md = dbuf(n), *vd = dbuf(n);
    for (size_t i = 0; i < n; i++) { p[i] = urand(-1, 1); pd[i] = p[i]; }
    int bad = 0;
    double worst = 0;
    for (int step = 1; step <= 3; step++) {
        for (size_t i = 0; i < n; i++) g[i] = urand(-1, 1);
        CmAdamWArgs h = {.step = step, .lr = 1e-3, .wd = step == 2 ? 0.0 : 0.1, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-6};
        g_be->adamw(p, g, m, v, n, &h);
        g_be->synchronize();
        double bc1 = 1 - pow(0.9, step), bc2 = 1 - pow(0.98, step);
        for (size_t i = 0; i < n; i++) {
            pd[i] *= 1 - h.lr * h.wd;
            md[i] = 0.9 * md[i] + 0.1 * g[i];
            vd[i] = 0.98 * vd[i] + 0.02 * (double)g[i] * g[i];
            pd[i] -= h.lr / bc1 * md[i] / (sqrt(vd[i]) / sqrt(bc2) + h.eps);
            /* a few fp32 roundings of each term per step: relative 1e-6 of the step size lr */
            double d = fabs(p[i] - pd[i]);
            if (d > 8 * EPS32 * (fabs(pd[i]) + step * h.lr * 10)) bad++;
            if (d > worst) worst = d;
        }
    }
    CHECK(bad == 0, "adamw: %d of %zu parameters off the double-precision formula (worst %.3g)", bad, n, worst);
    double ss = g_be->sumsq(g, n), sd = 0;
    for (size_t i = 0; i < n; i++) sd += (double)g[i] * g[i];
    CHECK(fabs(ss - sd) <= 1e-12 * sd, "sumsq %.17g vs %.17g", ss, sd);
    g_be->free(p); g_be->free(g); g_be->free(m); g_be->free(v);
    free(pd); free(md); free(vd);
}

static void test_buffers(void) {
    size_t n = 1000;
    float *a = g_be->alloc(n * sizeof(float), "a"), *b = g_be->alloc(n * sizeof(float), "b");
    REQUIRE(a && b, "alloc");
    CHECK(((uintptr_t)a & 63) == 0 && ((uintptr_t)b & 63) == 0, "64-byte aligned");
    float host[1000];
    for (size_t i = 0; i < n; i++) host[i] = (float)i;
    g_be->copy(a, host, n * sizeof(float));
    g_be->copy(b, a, n * sizeof(float));
    g_be->zero(a, 10 * sizeof(float));
    g_be->synchronize();
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad += b[i] != (float)i || a[i] != (i < 10 ? 0.0f : (float)i);
    CHECK(bad == 0, "copy/zero: %d wrong", bad);
    g_be->free(a);
    g_be->free(b);
    /* a failed allocation is a status, not an abort */
    cm_clear_error();
    void *huge = g_be->alloc(SIZE_MAX - 16, "huge");
    CHECK(huge == NULL && cm_last_status() == CM_ERR_OOM, "SIZE_MAX allocation: %p, status %d", huge, (int)cm_last_status());
}

int main(void) {
    const CmBackend *backends[] = {cm_backend_cpu()};
    for (size_t k = 0; k < sizeof backends / sizeof *backends; k++) {
        g_be = backends[k];
        cm_rng_seed(&g_rng, 1234 + k);
        fprintf(stderr, "backend %s\n", g_be->name);
        RUN(test_buffers);
        RUN(test_matmul_linear);
        RUN(test_linear_bf16);
        RUN(test_linear_int8);
        RUN(test_norms);
        RUN(test_elementwise);
        RUN(test_dropout);
        RUN(test_attention);
        RUN(test_embeddings_rows);
        RUN(test_lora);
        RUN(test_losses);
        RUN(test_adamw_sumsq);
    }
    return tl_summary("test_backend_ops");
}
