/*
 * pickle.c — a restricted unpickler for torch.save state dicts (pickle protocol 2, as torch writes it).
 *
 * It builds a tree of plain values (Pv) and never imports or calls anything. Accepted opcodes: PROTO,
 * FRAME, STOP, MARK, EMPTY_DICT/LIST/TUPLE, TUPLE/TUPLE1/2/3, BINUNICODE/SHORT_BINUNICODE/BINUNICODE8,
 * BININT/BININT1/BININT2/LONG1, BINFLOAT, NONE, NEWTRUE/NEWFALSE, SETITEM(S), APPEND(S), BINGET,
 * LONG_BINGET, BINPUT, LONG_BINPUT, MEMOIZE, GLOBAL (allowlist below), BINPERSID (storages, handed to
 * the caller), REDUCE (only on the allowlisted callables, interpreted here), BUILD (only the state of
 * an OrderedDict, e.g. a state dict's _metadata, which is dropped).
 * Allowlisted globals: collections.OrderedDict, torch._utils._rebuild_tensor_v2,
 * torch._utils._rebuild_parameter and the typed storage classes torch.{Float,Half,BFloat16,Double,
 * Long,Int,Short,Char,Byte,Bool}Storage. Every other opcode or global is an error that names it and
 * its byte offset. Sizes are bounded (strings by the bytes left, memo and stack by fixed caps), so a
 * crafted file cannot make it allocate absurdly, loop or recurse.
 */
#include "io/tensorfile_internal.h"

#include <stdlib.h>
#include <string.h>

#define PK_MAX_STACK (1 << 22)
#define PK_MAX_MEMO (1 << 24)

struct PvArena {
    Pv **all;
    size_t n, cap;
};

PvArena *cm_pv_arena_new(void) { return calloc(1, sizeof(PvArena)); }

void cm_pv_arena_free(PvArena *a) {
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->all[i]->items);
        free(a->all[i]->s);
        free(a->all[i]);
    }
    free(a->all);
    free(a);
}

Pv *cm_pv_new(PvArena *a, PvKind kind) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 1024;
        Pv **all = realloc(a->all, cap * sizeof *all);
        if (!all) { cm_error(CM_ERR_OOM, "pickle: out of memory"); return NULL; }
        a->all = all;
        a->cap = cap;
    }
    Pv *v = calloc(1, sizeof *v);
    if (!v) { cm_error(CM_ERR_OOM, "pickle: out of memory"); return NULL; }
    v->kind = kind;
    a->all[a->n++] = v;
    return v;
}

static bool pv_push_item(Pv *c, Pv *x) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        Pv **it = realloc(c->items, cap * sizeof *it);
        if (!it) { cm_error(CM_ERR_OOM, "pickle: out of memory"); return false; }
        c->items = it;
        c->cap = cap;
    }
    c->items[c->n++] = x;
    return true;
}

Pv *cm_pv_get(const Pv *d, const char *k) {
    if (!d || d->kind != PV_DICT) return NULL;
    for (size_t i = 0; i + 1 < d->n; i += 2) {
        const Pv *key = d->items[i];
        if (key->kind == PV_STR && !strcmp(key->s, k)) return d->items[i + 1];
    }
    return NULL;
}

const char *cm_pv_kind_name(PvKind k) {
    static const char *names[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict", "global",
                                  "storage", "tensor"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

/* Names of every pickle opcode, for error messages. */
static const char *op_name(uint8_t op) {
    switch (op) {
    case '(': return "MARK"; case '.': return "STOP"; case '0': return "POP"; case '1': return "POP_MARK";
    case '2': return "DUP"; case 'F': return "FLOAT"; case 'I': return "INT"; case 'J': return "BININT";
    case 'K': return "BININT1"; case 'L': return "LONG"; case 'M': return "BININT2"; case 'N': return "NONE";
    case 'P': return "PERSID"; case 'Q': return "BINPERSID"; case 'R': return "REDUCE"; case 'S': return "STRING";
    case 'T': return "BINSTRING"; case 'U': return "SHORT_BINSTRING"; case 'V': return "UNICODE";
    case 'X': return "BINUNICODE"; case 'a': return "APPEND"; case 'b': return "BUILD"; case 'c': return "GLOBAL";
    case 'd': return "DICT"; case '}': return "EMPTY_DICT"; case 'e': return "APPENDS"; case 'g': return "GET";
    case 'h': return "BINGET"; case 'i': return "INST"; case 'j': return "LONG_BINGET"; case 'l': return "LIST";
    case ']': return "EMPTY_LIST"; case 'o': return "OBJ"; case 'p': return "PUT"; case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT"; case 's': return "SETITEM"; case 't': return "TUPLE"; case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS"; case 'G': return "BINFLOAT"; case 0x80: return "PROTO"; case 0x81: return "NEWOBJ";
    case 0x82: return "EXT1"; case 0x83: return "EXT2"; case 0x84: return "EXT4"; case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2"; case 0x87: return "TUPLE3"; case 0x88: return "NEWTRUE"; case 0x89: return "NEWFALSE";
    case 0x8a: return "LONG1"; case 0x8b: return "LONG4"; case 'B': return "BINBYTES"; case 'C': return "SHORT_BINBYTES";
    case 0x8c: return "SHORT_BINUNICODE"; case 0x8d: return "BINUNICODE8"; case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET"; case 0x90: return "ADDITEMS"; case 0x91: return "FROZENSET"; case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL"; case 0x94: return "MEMOIZE"; case 0x95: return "FRAME";
    case 0x96: return "BYTEARRAY8"; case 0x97: return "NEXT_BUFFER"; case 0x98: return "READONLY_BUFFER";
    default: return "unknown";
    }
}

static const struct { const char *mod, *name; PvGlobal g; CmDType dt; } k_globals[] = {
    {"collections", "OrderedDict", PG_ORDERED_DICT, CM_F32},
    {"torch._utils", "_rebuild_tensor_v2", PG_REBUILD_TENSOR_V2, CM_F32},
    {"torch._utils", "_rebuild_parameter", PG_REBUILD_PARAMETER, CM_F32},
    {"torch", "FloatStorage", PG_STORAGE_TYPE, CM_F32},   {"torch", "HalfStorage", PG_STORAGE_TYPE, CM_F16},
    {"torch", "BFloat16Storage", PG_STORAGE_TYPE, CM_BF16}, {"torch", "DoubleStorage", PG_STORAGE_TYPE, CM_F64},
    {"torch", "LongStorage", PG_STORAGE_TYPE, CM_I64},    {"torch", "IntStorage", PG_STORAGE_TYPE, CM_I32},
    {"torch", "ShortStorage", PG_STORAGE_TYPE, CM_I16},   {"torch", "CharStorage", PG_STORAGE_TYPE, CM_I8},
    {"torch", "ByteStorage", PG_STORAGE_TYPE, CM_U8},     {"torch", "BoolStorage", PG_STORAGE_TYPE, CM_BOOL},
};

typedef struct {
    const uint8_t *buf;
    size_t len, pos, op_pos;
    const char *path;
    PvArena *a;
    Pv **stack;
    size_t sn, scap;
    size_t *marks;
    size_t mn, mcap;
    Pv **memo;
    size_t memo_cap, memo_next;
} Vm;

static cm_status vm_err(Vm *m, const char *fmt, const char *arg) {
    char msg[800];
    snprintf(msg, sizeof msg, fmt, arg);
    return cm_error(CM_ERR_FORMAT, "%s: pickle (data.pkl) byte %zu: %s", m->path, m->op_pos, msg);
}

static bool vm_need(Vm *m, size_t n) { return m->len - m->pos >= n; }

static cm_status vm_push(Vm *m, Pv *v) {
    if (!v) return cm_last_status();
    if (m->sn == m->scap) {
        if (m->scap >= PK_MAX_STACK) return vm_err(m, "%s", "stack too deep");
        size_t cap = m->scap ? 2 * m->scap : 256;
        Pv **s = realloc(m->stack, cap * sizeof *s);
        if (!s) return cm_error(CM_ERR_OOM, "%s: pickle: out of memory", m->path);
        m->stack = s;
        m->scap = cap;
    }
    m->stack[m->sn++] = v;
    return CM_OK;
}

/* Items above the innermost mark: [stack + base, stack + sn). */
static cm_status vm_pop_mark(Vm *m, size_t *base) {
    if (!m->mn) return vm_err(m, "%s", "no MARK on the stack");
    *base = m->marks[--m->mn];
    return CM_OK;
}

static cm_status vm_memo_put(Vm *m, size_t idx) {
    if (!m->sn) return vm_err(m, "%s", "memo put with an empty stack");
    /* a real pickle numbers its memo entries 0, 1, 2, ...: never more of them than it has bytes */
    if (idx >= PK_MAX_MEMO || idx > m->len) return vm_err(m, "%s", "memo index absurdly large");
    if (idx >= m->memo_cap) {
        size_t cap = m->memo_cap ? m->memo_cap : 256;
        while (cap <= idx) cap *= 2;
        Pv **mm = realloc(m->memo, cap * sizeof *mm);
        if (!mm) return cm_error(CM_ERR_OOM, "%s: pickle: out of memory", m->path);
        memset(mm + m->memo_cap, 0, (cap - m->memo_cap) * sizeof *mm);
        m->memo = mm;
        m->memo_cap = cap;
    }
    m->memo[idx] = m->stack[m->sn - 1];
    if (idx + 1 > m->memo_next) m->memo_next = idx + 1;
    return CM_OK;
}

static cm_status vm_str(Vm *m, size_t n) {
    if (!vm_need(m, n)) return vm_err(m, "%s", "string runs past the end of the pickle (truncated?)");
    const uint8_t *s = m->buf + m->pos;
    if (memchr(s, 0, n)) return vm_err(m, "%s", "string contains a NUL byte");
    Pv *v = cm_pv_new(m->a, PV_STR);
    if (!v) return cm_last_status();
    v->s = malloc(n + 1);
    if (!v->s) return cm_error(CM_ERR_OOM, "%s: pickle: out of memory", m->path);
    memcpy(v->s, s, n);
    v->s[n] = 0;
    m->pos += n;
    return vm_push(m, v);
}

static cm_status vm_int(Vm *m, int64_t x) {
    Pv *v = cm_pv_new(m->a, PV_INT);
    if (v) v->i = x;
    return vm_push(m, v);
}

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--) x = x << 8 | p[i];
    return x;
}

/* A tuple of ints (a tensor's size or stride) into out[]; false when not such a tuple. */
static bool int_tuple(const Pv *t, int64_t *out, int *n) {
    if (t->kind != PV_TUPLE || t->n > CM_MAX_DIMS) return false;
    for (size_t i = 0; i < t->n; i++) {
        if (t->items[i]->kind != PV_INT) return false;
        out[i] = t->items[i]->i;
    }
    *n = (int)t->n;
    return true;
}

static cm_status vm_reduce(Vm *m) {
    if (m->sn < 2) return vm_err(m, "%s", "REDUCE with fewer than 2 stack items");
    Pv *args = m->stack[--m->sn], *fn = m->stack[--m->sn];
    if (fn->kind != PV_GLOBAL || fn->i == PG_STORAGE_TYPE)
        return vm_err(m, "REDUCE on a %s that is not an allowed callable", cm_pv_kind_name(fn->kind));
    if (args->kind != PV_TUPLE) return vm_err(m, "%s", "REDUCE arguments are not a tuple");
    if (fn->i == PG_ORDERED_DICT) {
        if (args->n != 0) return vm_err(m, "%s", "OrderedDict(...) with arguments is not supported");
        return vm_push(m, cm_pv_new(m->a, PV_DICT));
    }
    if (fn->i == PG_REBUILD_PARAMETER) {
        if (args->n < 1 || args->items[0]->kind != PV_TENSOR)
            return vm_err(m, "%s", "_rebuild_parameter: first argument is not a tensor");
        return vm_push(m, args->items[0]);
    }
    /* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
    if (args->n < 6 || args->n > 7) return vm_err(m, "%s", "_rebuild_tensor_v2: expected 6 or 7 arguments");
    Pv *t = cm_pv_new(m->a, PV_TENSOR);
    if (!t) return cm_last_status();
    int nd_stride = 0;
    if (args->items[0]->kind != PV_STORAGE) return vm_err(m, "%s", "_rebuild_tensor_v2: argument 1 is not a storage");
    if (args->items[1]->kind != PV_INT) return vm_err(m, "%s", "_rebuild_tensor_v2: storage offset is not an int");
    if (!int_tuple(args->items[2], t->shape, &t->ndim))
        return vm_err(m, "%s", "_rebuild_tensor_v2: size is not a tuple of at most 8 ints");
    if (!int_tuple(args->items[3], t->stride, &nd_stride) || nd_stride != t->ndim)
        return vm_err(m, "%s", "_rebuild_tensor_v2: stride is not a tuple of ints matching the size");
    t->storage = args->items[0];
    t->dtype = t->storage->dtype;
    t->offset = args->items[1]->i;
    return vm_push(m, t);
}

static cm_status vm_global(Vm *m) {
    const uint8_t *s = m->buf + m->pos, *e = m->buf + m->len;
    const uint8_t *nl1 = memchr(s, '\n', (size_t)(e - s));
    const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(e - nl1 - 1)) : NULL;
    if (!nl2 || nl1 - s > 200 || nl2 - nl1 > 200) return vm_err(m, "%s", "GLOBAL without module/name lines");
    char mod[256], name[256], full[520];
    snprintf(mod, sizeof mod, "%.*s", (int)(nl1 - s), (const char *)s);
    snprintf(name, sizeof name, "%.*s", (int)(nl2 - nl1 - 1), (const char *)nl1 + 1);
    m->pos = (size_t)(nl2 + 1 - m->buf);
    for (size_t i = 0; i < sizeof k_globals / sizeof k_globals[0]; i++)
        if (!strcmp(mod, k_globals[i].mod) && !strcmp(name, k_globals[i].name)) {
            Pv *v = cm_pv_new(m->a, PV_GLOBAL);
            if (v) { v->i = k_globals[i].g; v->dtype = k_globals[i].dt; }
            return vm_push(m, v);
        }
    snprintf(full, sizeof full, "%s.%s", mod, name);
    return vm_err(m, "disallowed global '%s' (only tensor state dicts are accepted; nothing is executed)", full);
}

cm_status cm_unpickle(const uint8_t *buf, size_t len, const char *path, PvArena *a, PvPersistentLoad load,
                      void *ctx, Pv **out) {
    Vm vm = {.buf = buf, .len = len, .path = path, .a = a}, *m = &vm;
    cm_status st = CM_OK;
    size_t base = 0;
    *out = NULL;
    while (!st) {
        if (m->pos >= m->len) { st = vm_err(m, "%s", "pickle ends without STOP (truncated?)"); break; }
        m->op_pos = m->pos;
        uint8_t op = m->buf[m->pos++];
        switch (op) {
        case 0x80:                                                      /* PROTO */
            if (!vm_need(m, 1)) { st = vm_err(m, "%s", "truncated"); break; }
            if (m->buf[m->pos] > 5) st = vm_err(m, "%s", "unknown pickle protocol");
            m->pos++;
            break;
        case 0x95:                                                      /* FRAME: ignore the length */
            if (!vm_need(m, 8)) st = vm_err(m, "%s", "truncated");
            else m->pos += 8;
            break;
        case '.':                                                       /* STOP */
            if (m->sn != 1 || m->mn) st = vm_err(m, "%s", "STOP with a stack that does not hold exactly one value");
            else *out = m->stack[0];
            goto done;
        case '(':                                                       /* MARK */
            if (m->mn == m->mcap) {
                if (m->mcap >= PK_MAX_STACK) { st = vm_err(m, "%s", "too many MARKs"); break; }
                size_t cap = m->mcap ? 2 * m->mcap : 64;
                size_t *mk = realloc(m->marks, cap * sizeof *mk);
                if (!mk) { st = cm_error(CM_ERR_OOM, "%s: pickle: out of memory", path); break; }
                m->marks = mk;
                m->mcap = cap;
            }
            m->marks[m->mn++] = m->sn;
            break;
        case '}': st = vm_push(m, cm_pv_new(a, PV_DICT)); break;       /* EMPTY_DICT */
        case ']': st = vm_push(m, cm_pv_new(a, PV_LIST)); break;       /* EMPTY_LIST */
        case ')': st = vm_push(m, cm_pv_new(a, PV_TUPLE)); break;      /* EMPTY_TUPLE */
        case 'N': st = vm_push(m, cm_pv_new(a, PV_NONE)); break;       /* NONE */
        case 0x88: case 0x89: {                                         /* NEWTRUE, NEWFALSE */
            Pv *v = cm_pv_new(a, PV_BOOL);
            if (v) v->i = op == 0x88;
            st = vm_push(m, v);
            break;
        }
        case 'X': case 0x8c: case 0x8d: {                               /* BINUNICODE, SHORT_, 8 */
            int w = op == 'X' ? 4 : op == 0x8c ? 1 : 8;
            if (!vm_need(m, (size_t)w)) { st = vm_err(m, "%s", "truncated"); break; }
            uint64_t n = rd_le(m->buf + m->pos, w);
            m->pos += (size_t)w;
            if (n > m->len - m->pos) { st = vm_err(m, "%s", "string runs past the end of the pickle (truncated?)"); break; }
            st = vm_str(m, (size_t)n);
            break;
        }
        case 'J': case 'K': case 'M': {                                 /* BININT, BININT1, BININT2 */
            int w = op == 'J' ? 4 : op == 'K' ? 1 : 2;
            if (!vm_need(m, (size_t)w)) { st = vm_err(m, "%s", "truncated"); break; }
            uint64_t x = rd_le(m->buf + m->pos, w);
            m->pos += (size_t)w;
            st = vm_int(m, op == 'J' ? (int64_t)(int32_t)(uint32_t)x : (int64_t)x);
            break;
        }
        case 0x8a: {                                                    /* LONG1 */
            if (!vm_need(m, 1)) { st = vm_err(m, "%s", "truncated"); break; }
            int n = m->buf[m->pos++];
            if (n > 8) { st = vm_err(m, "%s", "LONG1 integer wider than 64 bits"); break; }
            if (!vm_need(m, (size_t)n)) { st = vm_err(m, "%s", "truncated"); break; }
            uint64_t x = n ? rd_le(m->buf + m->pos, n) : 0;
            if (n && n < 8 && (m->buf[m->pos + n - 1] & 0x80)) x |= ~(uint64_t)0 << (8 * n);   /* sign-extend */
            m->pos += (size_t)n;
            st = vm_int(m, (int64_t)x);
            break;
        }
        case 'G': {                                                     /* BINFLOAT (big-endian) */
            if (!vm_need(m, 8)) { st = vm_err(m, "%s", "truncated"); break; }
            uint64_t x = 0;
            for (int i = 0; i < 8; i++) x = x << 8 | m->buf[m->pos + i];
            m->pos += 8;
            Pv *v = cm_pv_new(a, PV_FLOAT);
            if (v) memcpy(&v->f, &x, 8);
            st = vm_push(m, v);
            break;
        }
        case 't': case 0x85: case 0x86: case 0x87: {                    /* TUPLE, TUPLE1/2/3 */
            if (op == 't') { if ((st = vm_pop_mark(m, &base))) break; }
            else {
                size_t k = (size_t)(op - 0x84);
                if (m->sn < k) { st = vm_err(m, "%s", "TUPLEn with too few stack items"); break; }
                base = m->sn - k;
            }
            Pv *v = cm_pv_new(a, PV_TUPLE);
            if (!v) { st = cm_last_status(); break; }
            for (size_t i = base; i < m->sn && !st; i++) if (!pv_push_item(v, m->stack[i])) st = cm_last_status();
            m->sn = base;
            if (!st) st = vm_push(m, v);
            break;
        }
        case 's': case 'u': case 'a': case 'e': {                       /* SETITEM(S), APPEND(S) */
            bool dict = op == 's' || op == 'u';
            if (op == 's' || op == 'a') {
                size_t k = dict ? 2 : 1;
                if (m->sn < k + 1) { st = vm_err(m, "%s", "too few stack items"); break; }
                base = m->sn - k;
            } else if ((st = vm_pop_mark(m, &base))) break;
            if (base == 0) { st = vm_err(m, "%s", "no container below the items"); break; }
            Pv *c = m->stack[base - 1];
            if (c->kind != (dict ? PV_DICT : PV_LIST)) { st = vm_err(m, "%s", dict ? "SETITEM(S) on a non-dict" : "APPEND(S) on a non-list"); break; }
            if (dict && (m->sn - base) % 2) { st = vm_err(m, "%s", "SETITEMS with an odd number of items"); break; }
            for (size_t i = base; i < m->sn && !st; i++) if (!pv_push_item(c, m->stack[i])) st = cm_last_status();
            m->sn = base;
            break;
        }
        case 'h': case 'j': {                                           /* BINGET, LONG_BINGET */
            int w = op == 'h' ? 1 : 4;
            if (!vm_need(m, (size_t)w)) { st = vm_err(m, "%s", "truncated"); break; }
            size_t idx = (size_t)rd_le(m->buf + m->pos, w);
            m->pos += (size_t)w;
            if (idx >= m->memo_cap || !m->memo[idx]) { st = vm_err(m, "%s", "memo GET of an unset index"); break; }
            st = vm_push(m, m->memo[idx]);
            break;
        }
        case 'q': case 'r': {                                           /* BINPUT, LONG_BINPUT */
            int w = op == 'q' ? 1 : 4;
            if (!vm_need(m, (size_t)w)) { st = vm_err(m, "%s", "truncated"); break; }
            size_t idx = (size_t)rd_le(m->buf + m->pos, w);
            m->pos += (size_t)w;
            st = vm_memo_put(m, idx);
            break;
        }
        case 0x94: st = vm_memo_put(m, m->memo_next); break;           /* MEMOIZE */
        case 'c': st = vm_global(m); break;                             /* GLOBAL */
        case 'Q': {                                                     /* BINPERSID */
            if (!m->sn) { st = vm_err(m, "%s", "BINPERSID with an empty stack"); break; }
            Pv *pid = m->stack[--m->sn];
            Pv *v = load(ctx, a, pid);
            if (!v) { cm_error_prefix("%s: pickle byte %zu", path, m->op_pos); st = cm_last_status(); break; }
            st = vm_push(m, v);
            break;
        }
        case 'R': st = vm_reduce(m); break;                             /* REDUCE */
        case 'b': {                                                     /* BUILD */
            if (m->sn < 2) { st = vm_err(m, "%s", "BUILD with fewer than 2 stack items"); break; }
            Pv *state = m->stack[m->sn - 1], *obj = m->stack[m->sn - 2];
            if (obj->kind != PV_DICT) { st = vm_err(m, "BUILD on a %s (only OrderedDict state is allowed)", cm_pv_kind_name(obj->kind)); break; }
            if (state->kind != PV_DICT && state->kind != PV_NONE && state->kind != PV_TUPLE) {
                st = vm_err(m, "BUILD with a %s state", cm_pv_kind_name(state->kind));
                break;
            }
            m->sn--;      /* the OrderedDict's attribute state (state dict _metadata) is dropped */
            break;
        }
        default: {
            char what[64];
            snprintf(what, sizeof what, "0x%02x %s", op, op_name(op));
            st = vm_err(m, "disallowed pickle opcode %s (only tensor state dicts are accepted; nothing is executed)", what);
        }
        }
    }
done:
    free(m->stack);
    free(m->marks);
    free(m->memo);
    return st;
}
