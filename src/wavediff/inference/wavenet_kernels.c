/* wavediff native WaveNet generation: the per-sample step of a WaveNet in C.
 *
 * Autoregressive generation is a chain of small matrix-vector products (about 1 MFLOP per sample
 * for 20 layers of 64 channels): torch's per-operator overhead, not arithmetic, bounds it. Here
 * one call runs T samples: per layer the dilated convolution over the queued past inputs (Fast
 * WaveNet's per-layer queues), the gate tanh(a) sigmoid(b), the residual and skip projections;
 * then the output head and a draw (softmax over mu-law classes, or a mixture of logistics).
 *
 * Work is split across threads by output channels ("roles"): role r holds only its columns of
 * every weight matrix, packed (inputs x columns) in 64-byte-aligned panels, so each core keeps
 * its part of the weights in its own cache. Each role computes its part of the gate; the roles
 * exchange the gate's halves at a barrier; then every role computes the whole (small) residual
 * projection into its own copy of the next layer's queue, and its part of the skip projection.
 * That is one barrier per layer, plus two for the head (every role draws the same sample from its
 * own copy of the random state). A batch of utterances goes through the same phases, each weight
 * row loaded once for up to 4 rows of the batch.
 *
 * Built on first use by wavediff.models.wavenet.native (cc -O3 -march=native -fopenmp) and called
 * through ctypes; the torch incremental loop is its reference in tests.
 */
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define WN_AVX512 1
#endif

#define LANES 16
#define MAX_ROLES 16
#define LOG_SCALE_MIN (-7.0f)

static inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

static float *alloc_floats(int64_t n) {
    size_t bytes = (size_t)round_up(n > 0 ? n : 1, LANES) * sizeof(float);
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

/* ---------- a barrier for the threads of one run ----------
 * Thread i publishes how many barriers it has reached in its own cache line and waits until every
 * other thread has reached as many: one store and one read of each other line per barrier. */

typedef struct {
    _Atomic int64_t reached;
    char pad[56];
} barrier_slot;

static void barrier_wait(barrier_slot *slots, int64_t threads, int64_t me, int64_t *count) {
    if (threads == 1) return;
    int64_t target = ++*count;
    atomic_store_explicit(&slots[me].reached, target, memory_order_release);
    for (int64_t j = 0; j < threads; j++) {
        unsigned spins = 0;   /* plain spinning first: a pause costs ~140 cycles on recent x86 */
        while (atomic_load_explicit(&slots[j].reached, memory_order_acquire) < target) {
            if (++spins < 4000) continue;
#ifdef WN_AVX512
            _mm_pause();
#endif
            if (spins > 40000) { sched_yield(); spins = 0; }   /* an oversubscribed machine */
        }
    }
}

/* ---------- random numbers: xoshiro256+ per batch row ---------- */

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double uniform(uint64_t *s) {   /* [0, 1) with 53 random bits */
    uint64_t result = s[0] + s[3], t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return (double)(result >> 11) * 0x1.0p-53;
}

/* ---------- vector maths ---------- */

#ifdef WN_AVX512
static inline __m512 exp_neg16(__m512 a) {   /* exp(-a), a >= 0 (clamped at 87); relative error ~2e-7 */
    __m512 t = _mm512_mul_ps(_mm512_min_ps(a, _mm512_set1_ps(87.0f)), _mm512_set1_ps(-1.44269504088896341f));
    __m512 k = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(t, k);
    __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339887440266574e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618437357674640e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550332471162809e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264791363012e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931472028550421e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, k);
}

static inline __m512 sigmoid16(__m512 x) {
    __m512 e = exp_neg16(_mm512_abs_ps(x));
    __m512 r = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_mul_ps(r, negative, e, r);
}

static inline __m512 tanh16(__m512 x) {   /* sign(x) (1 - e) / (1 + e), e = exp(-2|x|) */
    __m512 e = exp_neg16(_mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(2.0f)));
    __m512 r = _mm512_div_ps(_mm512_sub_ps(_mm512_set1_ps(1.0f), e), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    /* copy x's sign bit onto r */
    __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r), sign));
}
#endif

static inline float sigmoid1(float x) {
    float e = expf(-fabsf(x));
    float r = 1.0f / (1.0f + e);
    return x >= 0.0f ? r : e * r;
}

/* y[b, 0:cols] = x[b, 0:in] W for b < nb, W (in, cols) row-major with cols a multiple of 16;
 * x rows ``xs`` apart, y rows ``ys`` apart. */
#ifdef WN_AVX512
static inline __attribute__((always_inline)) void mv_block(const float *W, int64_t in, int64_t cols,
                                                           const float *x, int64_t xs, float *y, int64_t ys,
                                                           const int BN, const int CN) {
    __m512 acc[4][4];
    for (int b = 0; b < BN; b++)
        for (int c = 0; c < CN; c++) acc[b][c] = _mm512_setzero_ps();
    for (int64_t i = 0; i < in; i++) {
        const float *w = W + i * cols;
        __m512 wv[4];
        for (int c = 0; c < CN; c++) wv[c] = _mm512_load_ps(w + c * LANES);
        for (int b = 0; b < BN; b++) {
            __m512 xb = _mm512_set1_ps(x[b * xs + i]);
            for (int c = 0; c < CN; c++) acc[b][c] = _mm512_fmadd_ps(xb, wv[c], acc[b][c]);
        }
    }
    for (int b = 0; b < BN; b++)
        for (int c = 0; c < CN; c++) _mm512_storeu_ps(y + b * ys + c * LANES, acc[b][c]);
}
#endif

static void matvec(const float *W, int64_t in, int64_t cols, const float *x, int64_t xs, int64_t nb,
                   float *y, int64_t ys) {
#ifdef WN_AVX512
    for (int64_t b0 = 0; b0 < nb; b0 += 4) {
        int bn = (int)(nb - b0 < 4 ? nb - b0 : 4);
        for (int64_t c0 = 0; c0 < cols; c0 += 4 * LANES) {
            int cn = (int)((cols - c0) / LANES < 4 ? (cols - c0) / LANES : 4);
            const float *w = W + c0, *xb = x + b0 * xs;
            float *yb = y + b0 * ys + c0;
#define MV_CASE(B, C) case (B) * 8 + (C): mv_block(w, in, cols, xb, xs, yb, ys, B, C); break;
            switch (bn * 8 + cn) {
                MV_CASE(1, 1) MV_CASE(1, 2) MV_CASE(1, 3) MV_CASE(1, 4)
                MV_CASE(2, 1) MV_CASE(2, 2) MV_CASE(2, 3) MV_CASE(2, 4)
                MV_CASE(3, 1) MV_CASE(3, 2) MV_CASE(3, 3) MV_CASE(3, 4)
                MV_CASE(4, 1) MV_CASE(4, 2) MV_CASE(4, 3) MV_CASE(4, 4)
            }
#undef MV_CASE
        }
    }
#else
    for (int64_t b = 0; b < nb; b++) {
        float *yb = y + b * ys;
        for (int64_t c = 0; c < cols; c++) yb[c] = 0.0f;
        for (int64_t i = 0; i < in; i++) {
            float xi = x[b * xs + i];
            const float *w = W + i * cols;
            for (int64_t c = 0; c < cols; c++) yb[c] += xi * w[c];
        }
    }
#endif
}

/* h[j] = tanh(a[j] + ba[j] + ca[j]) * sigmoid(b[j] + bb[j] + cb[j]) for j < n (ca, cb may be NULL) */
static void gate(const float *a, const float *b, const float *ba, const float *bb, const float *ca,
                 const float *cb, float *h, int64_t n) {
    int64_t j = 0;
#ifdef WN_AVX512
    for (; j < n; j += LANES) {
        __mmask16 m = n - j >= LANES ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1u);
        __m512 u = _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + j), _mm512_maskz_loadu_ps(m, ba + j));
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, b + j), _mm512_maskz_loadu_ps(m, bb + j));
        if (ca) {
            u = _mm512_add_ps(u, _mm512_maskz_loadu_ps(m, ca + j));
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, cb + j));
        }
        _mm512_mask_storeu_ps(h + j, m, _mm512_mul_ps(tanh16(u), sigmoid16(v)));
    }
#endif
    for (; j < n; j++) {
        float u = a[j] + ba[j] + (ca ? ca[j] : 0.0f), v = b[j] + bb[j] + (cb ? cb[j] : 0.0f);
        h[j] = tanhf(u) * sigmoid1(v);
    }
}

/* ---------- the model ---------- */

typedef struct {          /* one role's columns of a matrix: two column ranges side by side */
    float *w;             /* (in, cols) */
    float *bias;          /* (cols,) */
    int64_t cols;         /* padded width of both parts */
    int64_t lo0, n0, pad0;   /* first part: source rows [lo0, lo0 + n0) of the weight, padded to pad0 */
    int64_t lo1, n1;         /* second part, starting at column pad0 */
} panel;

typedef struct {
    int64_t dilation, span;            /* queue of span = (K - 1) dilation + 1 past inputs */
    float *queue[MAX_ROLES];           /* each role's copy: (span, B, R) */
    panel conv[MAX_ROLES];             /* columns: tanh half [lo0, +n0) | sigmoid half [G + lo1, +n1) */
    panel rs[MAX_ROLES];               /* columns: residual, all R (none in the last layer) | skip [lo1, +n1) */
} layer;

typedef struct {
    int64_t L, K, R, G, S, Q, B, roles, mode, mixtures, n_in;
    float temperature, skip_scale, residual_scale;
    float *embed;                      /* mulaw: (n_in, R); mol: weight (R) then bias (R) */
    layer *layers;
    panel head1[MAX_ROLES];            /* all S columns, in every role */
    panel head2[MAX_ROLES];            /* columns [lo0, +n0) of the Q outputs */
    float *h[2], *skips, *logits;      /* shared: the gate (B, G) of alternate layers, (B, S), (B, Q) */
    float *input[MAX_ROLES];           /* each role's copy of the current inputs (B) */
    uint64_t *rng[MAX_ROLES];          /* each role's copy of the rows' random states (B, 4) */
    float *taps[MAX_ROLES], *z[MAX_ROLES], *v[MAX_ROLES];   /* per role scratch */
    int64_t time;
    barrier_slot slots[MAX_ROLES];
} wn_model;

/* columns [lo, lo + n) of a (rows_out, in) torch matrix W (row o = output o) become panel columns */
static void fill_part(panel *p, int64_t col0, const float *W, int64_t in, int64_t lo, int64_t n,
                      const float *bias) {
    for (int64_t j = 0; j < n; j++) {
        for (int64_t i = 0; i < in; i++) p->w[i * p->cols + col0 + j] = W[(lo + j) * in + i];
        p->bias[col0 + j] = bias ? bias[lo + j] : 0.0f;
    }
}

static int make_panel(panel *p, int64_t in, int64_t lo0, int64_t n0, int64_t lo1, int64_t n1) {
    p->lo0 = lo0; p->n0 = n0; p->pad0 = round_up(n0, LANES);
    p->lo1 = lo1; p->n1 = n1;
    p->cols = p->pad0 + round_up(n1, LANES);
    p->w = alloc_floats(in * p->cols);
    p->bias = alloc_floats(p->cols);
    return p->w && p->bias;
}

static void split(int64_t n, int64_t roles, int64_t r, int64_t *lo, int64_t *count) {
    int64_t a = n * r / roles, b = n * (r + 1) / roles;
    *lo = a; *count = b - a;
}

void wn_free(wn_model *m);

/* Build a model from torch-layout weights:
 *   embed: mulaw (n_in, R) embedding rows; mol (R) weight then (R) bias of the 1x1 input conv;
 *   params: per layer conv weight (2G, R, K), conv bias (2G), residual weight (R, G) and bias (R),
 *           skip weight (S, G) and bias (S), one layer after another;
 *   head: (S, S) weight, (S) bias, (Q, S) weight, (Q) bias.
 * mode 0: mulaw (Q classes); 1: mixture of logistics (Q = 3 mixtures). start: the first input of
 * each of the B rows; seeds: each row's seed (a row's draws depend on its seed alone). Returns NULL on a bad size or no memory. */
wn_model *wn_create(int64_t L, int64_t K, const int64_t *dilations, int64_t R, int64_t G, int64_t S, int64_t Q,
                    int64_t mode, int64_t mixtures, int64_t n_in, const float *embed, const float *params,
                    const float *head, int64_t B, int64_t roles, const uint64_t *seeds, const float *start,
                    float temperature) {
    if (L < 1 || K < 1 || R < 1 || G < 1 || S < 1 || Q < 1 || B < 1 || roles < 1 || roles > MAX_ROLES
        || (mode == 1 && Q != 3 * mixtures) || mode < 0 || mode > 1)
        return NULL;
    wn_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->L = L; m->K = K; m->R = R; m->G = G; m->S = S; m->Q = Q; m->B = B; m->roles = roles;
    m->mode = mode; m->mixtures = mixtures; m->n_in = n_in; m->temperature = temperature;
    m->skip_scale = sqrtf(1.0f / (float)L);
    m->residual_scale = sqrtf(0.5f);
    int64_t embed_n = mode == 0 ? n_in * R : 2 * R;
    m->embed = alloc_floats(embed_n);
    m->layers = calloc((size_t)L, sizeof(layer));
    m->h[0] = alloc_floats(B * G); m->h[1] = alloc_floats(B * G);
    m->skips = alloc_floats(B * S); m->logits = alloc_floats(B * Q);
    if (!m->embed || !m->layers || !m->h[0] || !m->h[1] || !m->skips || !m->logits) { wn_free(m); return NULL; }
    memcpy(m->embed, embed, (size_t)embed_n * sizeof(float));
    for (int64_t r = 0; r < roles; r++) {
        m->input[r] = alloc_floats(B);
        m->rng[r] = calloc((size_t)(4 * B), sizeof(uint64_t));
        if (!m->input[r] || !m->rng[r]) { wn_free(m); return NULL; }
        memcpy(m->input[r], start, (size_t)B * sizeof(float));
        for (int64_t b = 0; b < B; b++) {
            uint64_t state = seeds[b];
            for (int i = 0; i < 4; i++) m->rng[r][4 * b + i] = splitmix64(&state);
        }
    }
    const float *p = params;
    int64_t widest = 0;
    for (int64_t l = 0; l < L; l++) {
        layer *ly = &m->layers[l];
        ly->dilation = dilations[l];
        ly->span = (K - 1) * dilations[l] + 1;
        for (int64_t r = 0; r < roles; r++)
            if (!(ly->queue[r] = alloc_floats(ly->span * B * R))) { wn_free(m); return NULL; }
        const float *conv_w = p, *conv_b = p + 2 * G * R * K, *res_w = conv_b + 2 * G, *res_b = res_w + R * G;
        const float *skip_w = res_b + R, *skip_b = skip_w + S * G;
        p = skip_b + S;
        /* the convolution's input is the K taps side by side: row j R + c is tap j, channel c,
         * so its weight (2G, R, K) read as (2G, in) needs the (c, j) -> (j, c) reorder below */
        float *conv_t = malloc((size_t)(2 * G * K * R) * sizeof(float));
        if (!conv_t) { wn_free(m); return NULL; }
        for (int64_t o = 0; o < 2 * G; o++)
            for (int64_t j = 0; j < K; j++)
                for (int64_t c = 0; c < R; c++) conv_t[(o * K + j) * R + c] = conv_w[(o * R + c) * K + j];
        int64_t rn = l == L - 1 ? 0 : R;   /* the last layer's residual output is never read */
        for (int64_t r = 0; r < roles; r++) {
            int64_t glo, gn, slo, sn;
            split(G, roles, r, &glo, &gn);
            split(S, roles, r, &slo, &sn);
            panel *c = &ly->conv[r], *q = &ly->rs[r];
            if (!make_panel(c, K * R, glo, gn, G + glo, gn) || !make_panel(q, G, 0, rn, slo, sn)) {
                free(conv_t); wn_free(m); return NULL;
            }
            fill_part(c, 0, conv_t, K * R, glo, gn, conv_b);
            fill_part(c, c->pad0, conv_t, K * R, G + glo, gn, conv_b);
            fill_part(q, 0, res_w, G, 0, rn, res_b);
            fill_part(q, q->pad0, skip_w, G, slo, sn, skip_b);
            if (c->cols > widest) widest = c->cols;
            if (q->cols > widest) widest = q->cols;
        }
        free(conv_t);
    }
    const float *w1 = head, *b1 = w1 + S * S, *w2 = b1 + S, *b2 = w2 + Q * S;
    for (int64_t r = 0; r < roles; r++) {
        int64_t qlo, qn;
        split(Q, roles, r, &qlo, &qn);
        if (!make_panel(&m->head1[r], S, 0, S, 0, 0) || !make_panel(&m->head2[r], S, qlo, qn, 0, 0)) {
            wn_free(m); return NULL;
        }
        fill_part(&m->head1[r], 0, w1, S, 0, S, b1);
        fill_part(&m->head2[r], 0, w2, S, qlo, qn, b2);
        if (m->head1[r].cols > widest) widest = m->head1[r].cols;
        if (m->head2[r].cols > widest) widest = m->head2[r].cols;
    }
    for (int64_t r = 0; r < roles; r++) {
        m->taps[r] = alloc_floats(B * K * R);
        m->z[r] = alloc_floats(B * widest);
        m->v[r] = alloc_floats(B * round_up(S, LANES));
        if (!m->taps[r] || !m->z[r] || !m->v[r]) { wn_free(m); return NULL; }
    }
    return m;
}

void wn_free(wn_model *m) {
    if (!m) return;
    if (m->layers) {
        for (int64_t l = 0; l < m->L; l++)
            for (int r = 0; r < MAX_ROLES; r++) {
                free(m->layers[l].queue[r]);
                free(m->layers[l].conv[r].w); free(m->layers[l].conv[r].bias);
                free(m->layers[l].rs[r].w); free(m->layers[l].rs[r].bias);
            }
        free(m->layers);
    }
    for (int r = 0; r < MAX_ROLES; r++) {
        free(m->head1[r].w); free(m->head1[r].bias); free(m->head2[r].w); free(m->head2[r].bias);
        free(m->taps[r]); free(m->z[r]); free(m->v[r]); free(m->input[r]); free(m->rng[r]);
    }
    free(m->embed); free(m->h[0]); free(m->h[1]); free(m->skips); free(m->logits);
    free(m);
}

/* The draw from one row's head outputs (mulaw: class index as a float; mol: audio in [-1, 1]). */
static float draw(const wn_model *m, const float *out, uint64_t *rng) {
    if (m->mode == 0) {
        int64_t Q = m->Q, best = 0;
        for (int64_t q = 1; q < Q; q++)
            if (out[q] > out[best]) best = q;
        if (m->temperature <= 0.0f) return (float)best;
        float top = out[best], inv_t = 1.0f / m->temperature;
        float e[Q];
        double total = 0.0;
        int64_t q = 0;
#ifdef WN_AVX512
        for (; q + LANES <= Q; q += LANES) {
            __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_set1_ps(top), _mm512_loadu_ps(out + q)),
                                     _mm512_set1_ps(inv_t));
            _mm512_storeu_ps(e + q, exp_neg16(d));
        }
#endif
        for (; q < Q; q++) e[q] = expf((out[q] - top) * inv_t);
        for (q = 0; q < Q; q++) total += e[q];
        double u = uniform(rng) * total, c = 0.0;
        for (q = 0; q < Q - 1; q++) {
            c += e[q];
            if (u < c) break;
        }
        return (float)q;
    }
    int64_t K = m->mixtures, k;
    float top = out[0];
    for (k = 1; k < K; k++) top = out[k] > top ? out[k] : top;
    double total = 0.0, c = 0.0;
    for (k = 0; k < K; k++) total += exp((double)(out[k] - top));
    double u = uniform(rng) * total;
    for (k = 0; k < K - 1; k++) {
        c += exp((double)(out[k] - top));
        if (u < c) break;
    }
    float mu = out[K + k], log_s = out[2 * K + k];
    if (log_s < LOG_SCALE_MIN) log_s = LOG_SCALE_MIN;
    double v = uniform(rng);
    v = v < 1e-5 ? 1e-5 : (v > 1.0 - 1e-5 ? 1.0 - 1e-5 : v);
    float x = mu + expf(log_s) * m->temperature * (float)(log(v) - log1p(-v));
    return x < -1.0f ? -1.0f : (x > 1.0f ? 1.0f : x);
}

/* Role r's copy of the rows' inputs, embedded into its copy of layer 0's queue at ``time`` */
static void embed_rows(wn_model *m, int64_t r, int64_t time) {
    layer *ly = &m->layers[0];
    float *slot = ly->queue[r] + (time % ly->span) * m->B * m->R;
    for (int64_t b = 0; b < m->B; b++) {
        float *dst = slot + b * m->R;
        float x = m->input[r][b];
        if (m->mode == 0)
            memcpy(dst, m->embed + (int64_t)x * m->R, (size_t)m->R * sizeof(float));
        else
            for (int64_t c = 0; c < m->R; c++) dst[c] = m->embed[c] * x + m->embed[m->R + c];
    }
}

/* Run T samples. cond: the conditioning's projection onto every layer's gate, element (b, t, l, o)
 * at cond[b * cond_item + t * cond_time + l * 2G + o] (cond_time 0 for a constant label), or NULL.
 * out (B, T): each drawn sample; with ``forced`` (B, T) the next input is forced[b, t] instead of the
 * draw (teacher forcing, for tests) and out holds it. head_out (B, T, Q), if not NULL, receives the
 * head's outputs. threads: how many to run the roles on (at most roles). Returns 0, or -1 when
 * an input class is out of range (the run stops at that sample). */
int wn_run(wn_model *m, const float *cond, int64_t cond_item, int64_t cond_time, int64_t T, float *out,
           const float *forced, float *head_out, int64_t threads) {
    const int64_t L = m->L, K = m->K, R = m->R, G = m->G, S = m->S, Q = m->Q, B = m->B, roles = m->roles;
    if (m->mode == 0)
        for (int64_t b = 0; b < B; b++)
            if (!(m->input[0][b] >= 0.0f && m->input[0][b] < (float)m->n_in)) return -1;
    if (threads < 1) threads = 1;
    if (threads > roles) threads = roles;
    for (int r = 0; r < MAX_ROLES; r++) atomic_store(&m->slots[r].reached, 0);
    const int64_t time0 = m->time;
    int64_t done = T;
#pragma omp parallel num_threads((int)threads)
    {
        const int64_t me = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t count = 0;
        for (int64_t s = 0; s < T; s++) {
            const int64_t time = time0 + s;
            for (int64_t r = me; r < roles; r += nt) embed_rows(m, r, time);
            for (int64_t l = 0; l < L; l++) {
                layer *ly = &m->layers[l];
                float *h = m->h[(s * L + l) & 1];
                for (int64_t r = me; r < roles; r += nt) {   /* this role's gate channels */
                    panel *c = &ly->conv[r];
                    float *taps = m->taps[r], *z = m->z[r];
                    for (int64_t j = 0; j < K; j++) {   /* tap j reads x[t - (K - 1 - j) d]; zeros before t = 0 */
                        int64_t back = (K - 1 - j) * ly->dilation;
                        const float *src = ly->queue[r] + ((time - back + ly->span) % ly->span) * B * R;
                        for (int64_t b = 0; b < B; b++) {
                            if (time >= back) memcpy(taps + b * K * R + j * R, src + b * R, (size_t)R * sizeof(float));
                            else memset(taps + b * K * R + j * R, 0, (size_t)R * sizeof(float));
                        }
                    }
                    matvec(c->w, K * R, c->cols, taps, K * R, B, z, c->cols);
                    for (int64_t b = 0; b < B; b++) {
                        const float *cb = cond ? cond + b * cond_item + s * cond_time + l * 2 * G : NULL;
                        gate(z + b * c->cols, z + b * c->cols + c->pad0, c->bias, c->bias + c->pad0,
                             cb ? cb + c->lo0 : NULL, cb ? cb + c->lo1 : NULL, h + b * G + c->lo0, c->n0);
                    }
                }
                barrier_wait(m->slots, nt, me, &count);      /* the whole gate is in h */
                for (int64_t r = me; r < roles; r += nt) {   /* all residual channels, this role's skips */
                    panel *q = &ly->rs[r];
                    float *z = m->z[r];
                    matvec(q->w, G, q->cols, h, G, B, z, q->cols);
                    const float *here = ly->queue[r] + (time % ly->span) * B * R;
                    float *next = l + 1 < L ? m->layers[l + 1].queue[r] + (time % m->layers[l + 1].span) * B * R : NULL;
                    for (int64_t b = 0; b < B; b++) {
                        const float *zr = z + b * q->cols, *zs = zr + q->pad0;
                        if (next) {
                            const float *x = here + b * R;
                            float *dst = next + b * R;
                            for (int64_t c = 0; c < R; c++) dst[c] = (x[c] + zr[c] + q->bias[c]) * m->residual_scale;
                        }
                        float *sk = m->skips + b * S + q->lo1;
                        if (l == 0)
                            for (int64_t c = 0; c < q->n1; c++) sk[c] = zs[c] + q->bias[q->pad0 + c];
                        else
                            for (int64_t c = 0; c < q->n1; c++) sk[c] += zs[c] + q->bias[q->pad0 + c];
                    }
                }
            }
            barrier_wait(m->slots, nt, me, &count);          /* every skip sum is in */
            for (int64_t r = me; r < roles; r += nt) {       /* head: relu -> 1x1 (all) -> relu -> 1x1 (part) */
                panel *p1 = &m->head1[r], *p2 = &m->head2[r];
                float *v = m->v[r], *z = m->z[r];
                const int64_t vs = round_up(S, LANES);
                for (int64_t b = 0; b < B; b++)
                    for (int64_t c = 0; c < S; c++) {
                        float a = m->skips[b * S + c] * m->skip_scale;
                        v[b * vs + c] = a > 0.0f ? a : 0.0f;
                    }
                matvec(p1->w, S, p1->cols, v, vs, B, z, p1->cols);
                for (int64_t b = 0; b < B; b++)
                    for (int64_t c = 0; c < S; c++) {
                        float a = z[b * p1->cols + c] + p1->bias[c];
                        v[b * vs + c] = a > 0.0f ? a : 0.0f;
                    }
                matvec(p2->w, S, p2->cols, v, vs, B, z, p2->cols);
                for (int64_t b = 0; b < B; b++)
                    for (int64_t c = 0; c < p2->n0; c++) m->logits[b * Q + p2->lo0 + c] = z[b * p2->cols + c] + p2->bias[c];
            }
            barrier_wait(m->slots, nt, me, &count);          /* all the logits are in */
            int stop = 0;
            for (int64_t r = me; r < roles; r += nt) {       /* every role draws the same samples */
                for (int64_t b = 0; b < B; b++) {
                    const float *o = m->logits + b * Q;
                    float x = forced ? forced[b * T + s] : draw(m, o, m->rng[r] + 4 * b);
                    if (m->mode == 0 && !(x >= 0.0f && x < (float)m->n_in)) { stop = 1; x = 0.0f; }
                    m->input[r][b] = x;
                    if (r == 0) {
                        out[b * T + s] = x;
                        if (head_out) memcpy(head_out + (b * T + s) * Q, o, (size_t)Q * sizeof(float));
                    }
                }
            }
            if (stop) {            /* the same in every thread: forced values are shared */
                if (me == 0) done = s;
                break;
            }
        }
    }
    m->time = time0 + (done < T ? done + 1 : T);
    return done < T ? -1 : 0;
}

/* 1 when the AVX-512 paths were compiled in. */
int wn_vectorized(void) {
#ifdef WN_AVX512
    return 1;
#else
    return 0;
#endif
}
