/*
 * backend_cpu.c — the CPU backend: the CmBackend table (backend.h) filled with the kernels of
 * ops.h. Buffers are host memory from cm_malloc (64-byte aligned); ops run synchronously, so
 * synchronize() has nothing to wait for. The only code here is the dispatch on precision.
 */
#include "kernels/backend.h"
#include "common/common.h"
#include <string.h>

static void *cpu_alloc(size_t bytes, const char *what) { return cm_malloc(bytes, what); }
static void cpu_free(void *p) { cm_free(p); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { if (bytes) memmove(dst, src, bytes); }
static void cpu_zero(void *dst, size_t bytes) { if (bytes) memset(dst, 0, bytes); }
static void cpu_synchronize(void) {}

static size_t cpu_plan_linear(CmMatPrec prec, int M, int C, int OC, bool bias, bool backward) {
    return prec == CM_MM_BF16 ? cm_linear_bf16_plan(M, C, OC, bias, backward) : 0;   /* fp32: OpenBLAS */
}

static void cpu_linear_forward(CmMatPrec prec, float *out, const float *inp, const float *W, const float *b,
                               int M, int C, int OC, void *ws, size_t ws_bytes) {
    if (prec == CM_MM_BF16) cm_linear_forward_bf16(out, inp, W, b, M, C, OC, ws, ws_bytes);
    else cm_linear_forward(out, inp, W, b, M, C, OC);
}

static void cpu_linear_backward(CmMatPrec prec, float *dinp, float *dW, float *db, const float *dout,
                                const float *inp, const float *W, int M, int C, int OC, void *ws, size_t ws_bytes) {
    if (prec == CM_MM_BF16) cm_linear_backward_bf16(dinp, dW, db, dout, inp, W, M, C, OC, ws, ws_bytes);
    else cm_linear_backward(dinp, dW, db, dout, inp, W, M, C, OC);
}

static const CmBackend g_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .synchronize = cpu_synchronize,
    .plan_linear = cpu_plan_linear,
    .plan_attention = cm_attention_plan,
    .plan_linear_int8 = cm_linear_int8_plan,
    .contrastive_workspace = cm_contrastive_backward_workspace,
    .matmul = cm_matmul,
    .linear_forward = cpu_linear_forward,
    .linear_backward = cpu_linear_backward,
    .linear_forward_int8 = cm_linear_forward_int8,
    .linear_gelu_forward_int8 = cm_linear_gelu_forward_int8,
    .layernorm_forward = cm_layernorm_forward,
    .layernorm_backward = cm_layernorm_backward,
    .l2norm_forward = cm_l2norm_forward,
    .l2norm_backward = cm_l2norm_backward,
    .gelu_forward = cm_gelu_forward,
    .gelu_backward = cm_gelu_backward,
    .quickgelu_forward = cm_quickgelu_forward,
    .quickgelu_backward = cm_quickgelu_backward,
    .relu_forward = cm_relu_forward,
    .relu_backward = cm_relu_backward,
    .add = cm_add_forward,
    .scale = cm_scale,
    .dot = cm_dot,
    .dropout_forward = cm_dropout_forward,
    .dropout_backward = cm_dropout_backward,
    .softmax_forward = cm_softmax_forward,
    .softmax_backward = cm_softmax_backward,
    .attention_forward = cm_attention_forward_dropout,
    .attention_backward = cm_attention_backward_dropout,
    .attention_forward_varlen = cm_attention_forward_varlen,
    .attention_backward_varlen = cm_attention_backward_varlen,
    .embedding_forward = cm_embedding_forward,
    .embedding_backward = cm_embedding_backward,
    .embedding_forward_rows = cm_embedding_forward_rows,
    .embedding_backward_rows = cm_embedding_backward_rows,
    .im2patch = cm_im2patch,
    .cls_pos_forward = cm_cls_pos_forward,
    .cls_pos_backward = cm_cls_pos_backward,
    .gather_rows = cm_gather_rows,
    .scatter_rows = cm_scatter_rows,
    .lora_down = cm_lora_down,
    .lora_tn = cm_lora_tn,
    .lora_up_acc = cm_lora_up_acc,
    .residual_init = cm_residual_init,
    .transpose_scaled = cm_transpose_scaled,
    .crossentropy_forward = cm_crossentropy_forward,
    .crossentropy_backward = cm_crossentropy_backward,
    .contrastive_forward = cm_contrastive_forward,
    .contrastive_backward = cm_contrastive_backward,
    .adamw = cm_adamw,
    .sumsq = cm_sumsq,
};

const CmBackend *cm_backend_cpu(void) { return &g_cpu; }
