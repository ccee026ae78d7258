/*
 * transform.c — the image transforms of DESIGN §5, bit-exact with Pillow 9.4 + torchvision 0.14:
 *
 *   resampler   Pillow's ImagingResample for 8-bit images, re-implemented from its description:
 *               per output index xx, center = (xx + 0.5) * scale (scale = in/out), the filter is
 *               stretched by filterscale = max(scale, 1) (antialiasing on downscale), support =
 *               filter support * filterscale, taps [(int)(center - support + 0.5),
 *               (int)(center + support + 0.5)) clipped to the input, weights filter((x - center
 *               + 0.5) / filterscale) normalised to sum 1, then turned into 22-bit fixed point
 *               (round half away from zero); each pass accumulates from 1 << 21, shifts right by
 *               22 and clamps to 0..255. Horizontal pass first (only over the rows the vertical
 *               pass reads), then vertical; a pass whose size is unchanged is skipped.
 *               Bicubic: a = -0.5, support 2. Bilinear: triangle, support 1.
 *   eval        torchvision Resize(size) on PIL: short side -> size, long side = int(size*long/short)
 *               (truncation); CenterCrop: top = round((H - size)/2) with Python's round (half to
 *               even); only the cropped window of the resize is computed (same pixels);
 *               ToTensor (float)u / 255.0f, Normalize (x - mean) / std in float32.
 *   train       RandomResizedCrop(size, scale (0.9, 1), ratio (3/4, 4/3), bicubic): torchvision's
 *               get_params (10 tries, then the central fallback) drawn from CmRng, the crop resized
 *               as Pillow resizes a cropped image; then the same normalisation.
 *   letterbox   the shard layout of `clipmod prepare`: the image fitted into size x size (long side
 *               = size, short side = round(short*size/long), at least 1) with Pillow's antialiased
 *               BILINEAR, pasted on white (255,255,255) at ((size-fit_w)/2, (size-fit_h)/2) (floor).
 *               This reproduces the golden letterbox_256.jpg layout (640x480 -> 256x192 at y=32); the
 *               seed's notebook used cv2 INTER_LINEAR (not antialiased) or img2dataset's border mode,
 *               which we do not copy bit for bit: antialiasing avoids aliasing on large photos.
 * cm_resample_rgb is the fast path (window only, vectorisable vertical pass); cm_resample_rgb_ref
 * is the plain reference (whole image, both passes, then crop) that tests compare it with.
 */
#include "data/image.h"

#include <math.h>
#include <string.h>

const CmNormalize CM_CLIP_NORMALIZE = {{0.48145466f, 0.4578275f, 0.40821073f},
                                       {0.26862954f, 0.26130258f, 0.27577711f}};

#define PREC_BITS 22   /* Pillow: 32 - 8 - 2 */

static double filter_support(CmFilter f) { return f == CM_FILTER_BILINEAR ? 1.0 : 2.0; }

static double filter_eval(CmFilter f, double x) {
    if (x < 0.0) x = -x;
    if (f == CM_FILTER_BILINEAR) return x < 1.0 ? 1.0 - x : 0.0;
    const double a = -0.5;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Fixed-point coefficients of a 1-D resize in_size -> out_size for output indices [o0, o0+n). */
typedef struct {
    int n, ksize;
    int *first;     /* [n] first input index */
    int *count;     /* [n] number of taps */
    int32_t *k;     /* [n*ksize] */
} Coeffs;

static void coeffs_free(Coeffs *c) {
    cm_free(c->first);
    cm_free(c->count);
    cm_free(c->k);
    memset(c, 0, sizeof *c);
}

static cm_status coeffs_make(int in_size, int out_size, CmFilter f, int o0, int n, Coeffs *c) {
    memset(c, 0, sizeof *c);
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filter_support(f) * filterscale;
    if (support > 1e7) return cm_error(CM_ERR_ARG, "resample: downscale %d -> %d too large", in_size, out_size);
    int ksize = (int)ceil(support) * 2 + 1;
    size_t nk;
    if (!cm_mul_ok((size_t)n, (size_t)ksize, &nk)) return cm_error(CM_ERR_OOM, "resample coefficients");
    c->first = cm_malloc(sizeof(int) * (size_t)n, "resample bounds");
    c->count = cm_malloc(sizeof(int) * (size_t)n, "resample bounds");
    c->k = cm_calloc(nk, sizeof(int32_t), "resample coefficients");
    double *w = cm_malloc(sizeof(double) * (size_t)ksize, "resample weights");
    if (!c->first || !c->count || !c->k || !w) {
        cm_free(w);
        coeffs_free(c);
        return CM_ERR_OOM;
    }
    c->n = n;
    c->ksize = ksize;
    double ss = 1.0 / filterscale;
    for (int i = 0; i < n; i++) {
        int xx = o0 + i;
        double center = (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        int cnt = xmax - xmin;
        CM_ASSERT(cnt >= 0 && cnt <= ksize);
        double ww = 0.0;
        for (int x = 0; x < cnt; x++) {
            w[x] = filter_eval(f, (x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        for (int x = 0; x < cnt; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            c->k[(size_t)i * ksize + x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PREC_BITS))
                                                : (int32_t)(0.5 + v * (1 << PREC_BITS));
        }
        c->first[i] = xmin;
        c->count[i] = cnt;
    }
    cm_free(w);
    return CM_OK;
}

static inline uint8_t clip8(int32_t v) {
    v >>= PREC_BITS;   /* arithmetic shift: floor, as Pillow's lookup table indexes it */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static cm_status check_args(const uint8_t *src, int src_w, int src_h, size_t stride, int out_w, int out_h,
                            int ox, int oy, int ow, int oh, const uint8_t *dst) {
    if (!src || !dst || src_w <= 0 || src_h <= 0 || stride < (size_t)src_w * 3 || out_w <= 0 || out_h <= 0 ||
        ow <= 0 || oh <= 0 || ox < 0 || oy < 0 || ox > out_w - ow || oy > out_h - oh)
        return cm_error(CM_ERR_ARG, "resample: bad geometry (src %dx%d -> %dx%d, window %dx%d at %d,%d)",
                        src_w, src_h, out_w, out_h, ow, oh, ox, oy);
    return CM_OK;
}

/* ---- reference: whole image, then crop ----------------------------------------------------- */

cm_status cm_resample_rgb_ref(const uint8_t *src, int src_w, int src_h, size_t stride, int out_w, int out_h,
                              CmFilter filter, int ox, int oy, int ow, int oh, uint8_t *dst) {
    cm_status st = check_args(src, src_w, src_h, stride, out_w, out_h, ox, oy, ow, oh, dst);
    if (st != CM_OK) return st;
    int need_h = out_w != src_w, need_v = out_h != src_h;
    Coeffs ch = {0}, cv = {0};
    uint8_t *tmp = NULL, *full = NULL;
    const uint8_t *cur = src;              /* the image after the passes done so far */
    size_t cur_stride = stride;
    int y_first = 0, y_last = src_h;
    if ((st = coeffs_make(src_h, out_h, filter, 0, out_h, &cv)) != CM_OK) goto done;
    if (need_v) { y_first = cv.first[0]; y_last = cv.first[out_h - 1] + cv.count[out_h - 1]; }
    if (need_h) {
        if ((st = coeffs_make(src_w, out_w, filter, 0, out_w, &ch)) != CM_OK) goto done;
        int rows = need_v ? y_last - y_first : src_h;
        if (!need_v) y_first = 0;
        tmp = cm_malloc((size_t)rows * out_w * 3, "resample temp");
        if (!tmp) { st = CM_ERR_OOM; goto done; }
        for (int y = 0; y < rows; y++) {
            const uint8_t *in = src + (size_t)(y + y_first) * stride;
            for (int x = 0; x < out_w; x++) {
                const int32_t *k = ch.k + (size_t)x * ch.ksize;
                for (int c = 0; c < 3; c++) {
                    int32_t s = 1 << (PREC_BITS - 1);
                    for (int t = 0; t < ch.count[x]; t++) s += in[(ch.first[x] + t) * 3 + c] * k[t];
                    tmp[((size_t)y * out_w + x) * 3 + c] = clip8(s);
                }
            }
        }
        cur = tmp;
        cur_stride = (size_t)out_w * 3;
    } else {
        y_first = 0;
    }
    if (need_v) {
        full = cm_malloc((size_t)out_h * out_w * 3, "resample output");
        if (!full) { st = CM_ERR_OOM; goto done; }
        for (int y = 0; y < out_h; y++) {
            const int32_t *k = cv.k + (size_t)y * cv.ksize;
            for (int x = 0; x < out_w * 3; x++) {
                int32_t s = 1 << (PREC_BITS - 1);
                for (int t = 0; t < cv.count[y]; t++) s += cur[(size_t)(cv.first[y] - y_first + t) * cur_stride + x] * k[t];
                full[((size_t)y * out_w) * 3 + x] = clip8(s);
            }
        }
        cur = full;
        cur_stride = (size_t)out_w * 3;
    }
    for (int y = 0; y < oh; y++) memcpy(dst + (size_t)y * ow * 3, cur + (size_t)(y + oy) * cur_stride + (size_t)ox * 3, (size_t)ow * 3);
done:
    coeffs_free(&ch);
    coeffs_free(&cv);
    cm_free(tmp);
    cm_free(full);
    return st;
}

/* ---- fast path: only the window -------------------------------------------------------------- */

/* Horizontal pass of one row: in (RGB) -> out (ch->n RGB pixels), any tap count. */
static void hpass_row(const uint8_t *restrict in, uint8_t *restrict out, const Coeffs *ch) {
    for (int x = 0; x < ch->n; x++) {
        const int32_t *k = ch->k + (size_t)x * ch->ksize;
        const uint8_t *p = in + (size_t)ch->first[x] * 3;
        int32_t s0 = 1 << (PREC_BITS - 1), s1 = s0, s2 = s0;
        for (int t = 0; t < ch->count[x]; t++) {
            s0 += p[3 * t] * k[t];
            s1 += p[3 * t + 1] * k[t];
            s2 += p[3 * t + 2] * k[t];
        }
        out[3 * x] = clip8(s0);
        out[3 * x + 1] = clip8(s1);
        out[3 * x + 2] = clip8(s2);
    }
}

/* Fixed tap count K (a compile-time constant in each instance, so the tap loop unrolls): the
   taps of every output are padded with zero coefficients to K, the window shifted left where it
   would pass the end of the row. Adding 0 * pixel changes nothing: same result as hpass_row. */
#define CM_HK_MAX 8
typedef struct { int K; int *first; int32_t *k; } PaddedCoeffs;   /* k: [n*K] */

static cm_status padded_make(const Coeffs *c, int in_size, PaddedCoeffs *pc) {
    int K = 0;
    for (int i = 0; i < c->n; i++) if (c->count[i] > K) K = c->count[i];
    pc->K = K;
    pc->first = NULL;
    pc->k = NULL;
    if (K < 1 || K > CM_HK_MAX || K > in_size) { pc->K = 0; return CM_OK; }   /* generic path */
    pc->first = cm_malloc(sizeof(int) * (size_t)c->n, "resample taps");
    pc->k = cm_calloc((size_t)c->n * K, sizeof(int32_t), "resample taps");
    if (!pc->first || !pc->k) { cm_free(pc->first); cm_free(pc->k); return CM_ERR_OOM; }
    for (int i = 0; i < c->n; i++) {
        int f = c->first[i];
        if (f + K > in_size) f = in_size - K;
        pc->first[i] = f;
        for (int t = 0; t < c->count[i]; t++) pc->k[(size_t)i * K + (c->first[i] - f) + t] = c->k[(size_t)i * c->ksize + t];
    }
    return CM_OK;
}

static inline __attribute__((always_inline)) void hpass_row_k(const uint8_t *restrict in, uint8_t *restrict out,
                                                              const PaddedCoeffs *pc, int n, const int K) {
    for (int x = 0; x < n; x++) {
        const int32_t *k = pc->k + (size_t)x * K;
        const uint8_t *p = in + (size_t)pc->first[x] * 3;
        int32_t s0 = 1 << (PREC_BITS - 1), s1 = s0, s2 = s0;
        for (int t = 0; t < K; t++) {
            s0 += p[3 * t] * k[t];
            s1 += p[3 * t + 1] * k[t];
            s2 += p[3 * t + 2] * k[t];
        }
        out[3 * x] = clip8(s0);
        out[3 * x + 1] = clip8(s1);
        out[3 * x + 2] = clip8(s2);
    }
}

/* Horizontal pass over 16 rows at once, vectorised across the rows (AVX2 builds): the used byte
   columns of the 16 rows are transposed into T[column][16], each tap is then one 16-lane
   multiply-add with the same 32-bit integer arithmetic per pixel as hpass_row (only the order of
   independent pixels changes), the results are clipped exactly as clip8 (arithmetic shift, then
   saturating packs: [-640, 639] -> int16 -> 0..255), collected in O[column][16] and transposed
   back into the 16 output rows. T, O: scratch of (c1 - c0) * 16 and n*3*16 bytes. */
#define HB 16
#if defined(__AVX2__)
#include <immintrin.h>
#define CM_HBLOCK 1

/* 16x16 byte transpose: in rows (stride is), out rows (stride os). */
static inline void transpose16(const uint8_t *in, size_t is, uint8_t *out, size_t os) {
    __m128i a[16], b[16];
    for (int i = 0; i < 16; i++) a[i] = _mm_loadu_si128((const __m128i *)(in + (size_t)i * is));
    for (int i = 0; i < 8; i++) {
        b[2 * i] = _mm_unpacklo_epi8(a[2 * i], a[2 * i + 1]);
        b[2 * i + 1] = _mm_unpackhi_epi8(a[2 * i], a[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++) {
            a[4 * i + 2 * j] = _mm_unpacklo_epi16(b[4 * i + j], b[4 * i + j + 2]);
            a[4 * i + 2 * j + 1] = _mm_unpackhi_epi16(b[4 * i + j], b[4 * i + j + 2]);
        }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            b[8 * i + 2 * j] = _mm_unpacklo_epi32(a[8 * i + j], a[8 * i + j + 4]);
            b[8 * i + 2 * j + 1] = _mm_unpackhi_epi32(a[8 * i + j], a[8 * i + j + 4]);
        }
    for (int j = 0; j < 8; j++) {
        a[2 * j] = _mm_unpacklo_epi64(b[j], b[j + 8]);
        a[2 * j + 1] = _mm_unpackhi_epi64(b[j], b[j + 8]);
    }
    for (int i = 0; i < 16; i++) _mm_storeu_si128((__m128i *)(out + (size_t)i * os), a[i]);
}

/* [c0, c1) columns of 16 rows (stride `stride`) -> T[(c - c0) * 16 + r]. */
static void gather_columns(const uint8_t *src, size_t stride, int c0, int c1, uint8_t *restrict T) {
    int c = c0;
    for (; c + 16 <= c1; c += 16) transpose16(src + c, stride, T + (size_t)(c - c0) * HB, HB);
    for (; c < c1; c++)
        for (int r = 0; r < HB; r++) T[(size_t)(c - c0) * HB + r] = src[(size_t)r * stride + c];
}

static void hpass_block16(const uint8_t *src, size_t stride, uint8_t *dst, size_t dstride, const Coeffs *ch,
                          int c0, int c1, uint8_t *restrict T, uint8_t *restrict O) {
    gather_columns(src, stride, c0, c1, T);
    const int ncol = ch->n * 3;
    for (int x = 0; x < ch->n; x++) {
        const int32_t *k = ch->k + (size_t)x * ch->ksize;
        const int cnt = ch->count[x];
        const uint8_t *base = T + (size_t)(ch->first[x] * 3 - c0) * HB;
        for (int c = 0; c < 3; c++) {
            __m256i lo = _mm256_set1_epi32(1 << (PREC_BITS - 1)), hi = lo;
            for (int t = 0; t < cnt; t++) {
                __m128i v = _mm_loadu_si128((const __m128i *)(base + (size_t)(3 * t + c) * HB));
                __m256i kt = _mm256_set1_epi32(k[t]);
                lo = _mm256_add_epi32(lo, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(v), kt));
                hi = _mm256_add_epi32(hi, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)), kt));
            }
            lo = _mm256_srai_epi32(lo, PREC_BITS);
            hi = _mm256_srai_epi32(hi, PREC_BITS);
            __m256i p16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);
            __m128i b8 = _mm_packus_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1));
            _mm_storeu_si128((__m128i *)(O + (size_t)(3 * x + c) * HB), b8);
        }
    }
    /* O[column][row] -> dst rows */
    int c = 0;
    for (; c + 16 <= ncol; c += 16) transpose16(O + (size_t)c * HB, HB, dst + c, dstride);
    for (; c < ncol; c++)
        for (int r = 0; r < HB; r++) dst[(size_t)r * dstride + c] = O[(size_t)c * HB + r];
}
#endif

static cm_status hpass_rows(const uint8_t *src, size_t stride, int y0, int y1, uint8_t *dst, size_t dstride,
                            const Coeffs *ch, const PaddedCoeffs *pc) {
    int y = y0;
#ifdef CM_HBLOCK
    if (y1 - y0 >= HB) {
        int c0 = ch->first[0] * 3, c1 = 0;
        for (int x = 0; x < ch->n; x++)
            if ((ch->first[x] + ch->count[x]) * 3 > c1) c1 = (ch->first[x] + ch->count[x]) * 3;
        uint8_t *T = cm_malloc((size_t)(c1 - c0) * HB, "resample transpose");
        uint8_t *O = cm_malloc((size_t)ch->n * 3 * HB, "resample transpose");
        if (!T || !O) { cm_free(T); cm_free(O); return CM_ERR_OOM; }
        for (; y + HB <= y1; y += HB)
            hpass_block16(src + (size_t)y * stride, stride, dst + (size_t)(y - y0) * dstride, dstride, ch, c0, c1, T, O);
        cm_free(T);
        cm_free(O);
    }
#endif
    for (; y < y1; y++) {
        const uint8_t *in = src + (size_t)y * stride;
        uint8_t *out = dst + (size_t)(y - y0) * dstride;
        switch (pc->K) {
        case 1: hpass_row_k(in, out, pc, ch->n, 1); break;
        case 2: hpass_row_k(in, out, pc, ch->n, 2); break;
        case 3: hpass_row_k(in, out, pc, ch->n, 3); break;
        case 4: hpass_row_k(in, out, pc, ch->n, 4); break;
        case 5: hpass_row_k(in, out, pc, ch->n, 5); break;
        case 6: hpass_row_k(in, out, pc, ch->n, 6); break;
        case 7: hpass_row_k(in, out, pc, ch->n, 7); break;
        case 8: hpass_row_k(in, out, pc, ch->n, 8); break;
        default: hpass_row(in, out, ch); break;
        }
    }
    return CM_OK;
}

cm_status cm_resample_rgb(const uint8_t *src, int src_w, int src_h, size_t stride, int out_w, int out_h,
                          CmFilter filter, int ox, int oy, int ow, int oh, uint8_t *dst) {
    cm_status st = check_args(src, src_w, src_h, stride, out_w, out_h, ox, oy, ow, oh, dst);
    if (st != CM_OK) return st;
    int need_h = out_w != src_w, need_v = out_h != src_h;
    Coeffs ch = {0}, cv = {0};
    PaddedCoeffs pc = {0, NULL, NULL};
    uint8_t *tmp = NULL;
    int32_t *acc = NULL;
    const size_t n = (size_t)ow * 3;       /* bytes per window row */
    /* Input rows the vertical pass reads (or the window rows themselves when it is skipped). */
    int y_first = oy, y_last = oy + oh;
    if (need_v) {
        if ((st = coeffs_make(src_h, out_h, filter, oy, oh, &cv)) != CM_OK) goto done;
        y_first = cv.first[0];
        y_last = cv.first[oh - 1] + cv.count[oh - 1];
    }
    /* Rows [y_first, y_last) after the horizontal pass: `rows` with stride `rstride`. */
    const uint8_t *rows;
    size_t rstride;
    if (need_h) {
        if ((st = coeffs_make(src_w, out_w, filter, ox, ow, &ch)) != CM_OK) goto done;
        if ((st = padded_make(&ch, src_w, &pc)) != CM_OK) goto done;
        tmp = cm_malloc((size_t)(y_last - y_first) * n, "resample temp");
        if (!tmp) { st = CM_ERR_OOM; goto done; }
        if ((st = hpass_rows(src, stride, y_first, y_last, tmp, n, &ch, &pc)) != CM_OK) goto done;
        rows = tmp;
        rstride = n;
    } else {
        rows = src + (size_t)y_first * stride + (size_t)ox * 3;
        rstride = stride;
    }
    if (!need_v) {
        for (int y = 0; y < oh; y++) memcpy(dst + (size_t)y * n, rows + (size_t)y * rstride, n);
        goto done;
    }
    acc = cm_malloc(sizeof(int32_t) * n, "resample accumulator");
    if (!acc) { st = CM_ERR_OOM; goto done; }
    for (int y = 0; y < oh; y++) {
        const int32_t *k = cv.k + (size_t)y * cv.ksize;
        for (size_t i = 0; i < n; i++) acc[i] = 1 << (PREC_BITS - 1);
        for (int t = 0; t < cv.count[y]; t++) {
            const uint8_t *restrict r = rows + (size_t)(cv.first[y] - y_first + t) * rstride;
            int32_t kt = k[t];
            int32_t *restrict a = acc;
            for (size_t i = 0; i < n; i++) a[i] += r[i] * kt;
        }
        uint8_t *o = dst + (size_t)y * n;
        for (size_t i = 0; i < n; i++) o[i] = clip8(acc[i]);
    }
done:
    coeffs_free(&ch);
    coeffs_free(&cv);
    cm_free(pc.first);
    cm_free(pc.k);
    cm_free(tmp);
    cm_free(acc);
    return st;
}

/* ---- ToTensor + Normalize ------------------------------------------------------------------ */

void cm_normalize_u8(const uint8_t *rgb, size_t n, const CmNormalize *norm, float *out) {
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int u = 0; u < 256; u++) lut[c][u] = ((float)u / 255.0f - norm->mean[c]) / norm->std[c];
    float *r = out, *g = out + n, *b = out + 2 * n;
    for (size_t i = 0; i < n; i++) {
        r[i] = lut[0][rgb[3 * i]];
        g[i] = lut[1][rgb[3 * i + 1]];
        b[i] = lut[2][rgb[3 * i + 2]];
    }
}

/* ---- eval ------------------------------------------------------------------------------------ */

static cm_status check_image(const CmImage *img, int size, const char *fn) {
    if (!img || !img->rgb || img->w <= 0 || img->h <= 0)
        return cm_error(CM_ERR_ARG, "%s: empty image", fn);
    if (size <= 0 || size > 16384) return cm_error(CM_ERR_ARG, "%s: bad output size %d", fn, size);
    return CM_OK;
}

void cm_eval_geometry(int w, int h, int size, int *new_w, int *new_h, int *left, int *top) {
    int short_side = w <= h ? w : h, long_side = w <= h ? h : w;
    /* Python: int(size * long / short), the product exact, one correctly rounded division. */
    double nl = (double)((long long)size * long_side) / (double)short_side;
    int new_long = nl >= 2147483647.0 ? 2147483647 : (int)nl;
    *new_w = w <= h ? size : new_long;
    *new_h = w <= h ? new_long : size;
    /* Python's round(): half to even, which nearbyint does in the default rounding mode. */
    *top = (int)nearbyint((*new_h - size) / 2.0);
    *left = (int)nearbyint((*new_w - size) / 2.0);
}

cm_status cm_transform_eval_u8(const CmImage *img, int size, uint8_t *out) {
    cm_status st = check_image(img, size, "eval transform");
    if (st != CM_OK) return st;
    int nw, nh, left, top;
    cm_eval_geometry(img->w, img->h, size, &nw, &nh, &left, &top);
    if (nw >= (1 << 30) || nh >= (1 << 30))
        return cm_error(CM_ERR_ARG, "eval transform: %dx%d image: resized long side too large", img->w, img->h);
    return cm_resample_rgb(img->rgb, img->w, img->h, (size_t)img->w * 3, nw, nh, CM_FILTER_BICUBIC,
                           left, top, size, size, out);
}

cm_status cm_transform_eval(const CmImage *img, int size, const CmNormalize *norm, float *out) {
    cm_status st = check_image(img, size, "eval transform");
    if (st != CM_OK) return st;
    uint8_t *u8 = cm_malloc((size_t)size * size * 3, "eval transform");
    if (!u8) return CM_ERR_OOM;
    st = cm_transform_eval_u8(img, size, u8);
    if (st == CM_OK) cm_normalize_u8(u8, (size_t)size * size, norm ? norm : &CM_CLIP_NORMALIZE, out);
    cm_free(u8);
    return st;
}

/* ---- train ----------------------------------------------------------------------------------- */

void cm_train_crop_params(int w, int h, CmRng *rng, int *top, int *left, int *crop_h, int *crop_w) {
    const double smin = 0.9, smax = 1.0, rmin = 3.0 / 4.0, rmax = 4.0 / 3.0;
    double area = (double)w * h, lrmin = log(rmin), lrmax = log(rmax);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target_area = area * (smin + (smax - smin) * cm_rng_uniform_d(rng));
        double aspect = exp(lrmin + (lrmax - lrmin) * cm_rng_uniform_d(rng));
        double cwd = nearbyint(sqrt(target_area * aspect)), chd = nearbyint(sqrt(target_area / aspect));
        if (cwd > 0 && cwd <= w && chd > 0 && chd <= h) {
            int cw = (int)cwd, ch = (int)chd;
            *top = (int)cm_rng_below(rng, (uint64_t)(h - ch + 1));
            *left = (int)cm_rng_below(rng, (uint64_t)(w - cw + 1));
            *crop_h = ch;
            *crop_w = cw;
            return;
        }
    }
    /* Fallback: central crop clamped to the ratio range. */
    double in_ratio = (double)w / h;
    int cw = w, ch = h;
    if (in_ratio < rmin) ch = (int)nearbyint(w / rmin);
    else if (in_ratio > rmax) cw = (int)nearbyint(h * rmax);
    if (ch > h) ch = h;
    if (cw > w) cw = w;
    if (ch < 1) ch = 1;
    if (cw < 1) cw = 1;
    *crop_h = ch;
    *crop_w = cw;
    *top = (h - ch) / 2;
    *left = (w - cw) / 2;
}

cm_status cm_transform_train(const CmImage *img, int size, const CmNormalize *norm, CmRng *rng, float *out) {
    cm_status st = check_image(img, size, "train transform");
    if (st != CM_OK) return st;
    if (!rng) return cm_error(CM_ERR_ARG, "train transform: no RNG");
    int top, left, ch, cw;
    cm_train_crop_params(img->w, img->h, rng, &top, &left, &ch, &cw);
    uint8_t *u8 = cm_malloc((size_t)size * size * 3, "train transform");
    if (!u8) return CM_ERR_OOM;
    const uint8_t *src = img->rgb + ((size_t)top * img->w + left) * 3;
    st = cm_resample_rgb(src, cw, ch, (size_t)img->w * 3, size, size, CM_FILTER_BICUBIC, 0, 0, size, size, u8);
    if (st == CM_OK) cm_normalize_u8(u8, (size_t)size * size, norm ? norm : &CM_CLIP_NORMALIZE, out);
    cm_free(u8);
    return st;
}

/* ---- letterbox ------------------------------------------------------------------------------- */

void cm_letterbox_geometry(int w, int h, int size, int *fit_w, int *fit_h, int *x0, int *y0) {
    if (w >= h) {
        *fit_w = size;
        *fit_h = (int)floor((double)h * size / w + 0.5);
    } else {
        *fit_h = size;
        *fit_w = (int)floor((double)w * size / h + 0.5);
    }
    if (*fit_w < 1) *fit_w = 1;
    if (*fit_h < 1) *fit_h = 1;
    *x0 = (size - *fit_w) / 2;
    *y0 = (size - *fit_h) / 2;
}

cm_status cm_letterbox(const CmImage *img, int size, CmImage *out) {
    out->w = out->h = 0;
    out->rgb = NULL;
    cm_status st = check_image(img, size, "letterbox");
    if (st != CM_OK) return st;
    int fw, fh, x0, y0;
    cm_letterbox_geometry(img->w, img->h, size, &fw, &fh, &x0, &y0);
    uint8_t *canvas = cm_malloc((size_t)size * size * 3, "letterbox");
    uint8_t *fit = cm_malloc((size_t)fw * fh * 3, "letterbox");
    if (!canvas || !fit) {
        cm_free(canvas);
        cm_free(fit);
        return CM_ERR_OOM;
    }
    memset(canvas, 255, (size_t)size * size * 3);
    st = cm_resample_rgb(img->rgb, img->w, img->h, (size_t)img->w * 3, fw, fh, CM_FILTER_BILINEAR, 0, 0, fw, fh, fit);
    if (st == CM_OK)
        for (int y = 0; y < fh; y++)
            memcpy(canvas + ((size_t)(y + y0) * size + x0) * 3, fit + (size_t)y * fw * 3, (size_t)fw * 3);
    cm_free(fit);
    if (st != CM_OK) {
        cm_free(canvas);
        return st;
    }
    out->w = out->h = size;
    out->rgb = canvas;
    return CM_OK;
}
