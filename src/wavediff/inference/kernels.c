/* wavediff native CPU kernels: the elementwise work of a DiffWave layer in one pass each.
 *
 * Built on first use by wavediff.inference.native (cc -O3 -march=native -fopenmp) and
 * called through ctypes with raw pointers; no Python or torch headers. OpenMP resolves to
 * the runtime torch has already loaded (libgomp.so.1), so torch.set_num_threads applies.
 *
 * bfloat16 values are the top 16 bits of a float32; conversion back rounds to nearest,
 * ties to even, as torch does.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 4096   /* elements a thread takes at a time in the flat kernels */

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* exp(-a) for a >= 0: 2^k * 2^f with k = round(-a log2 e), |f| <= 1/2, and Cephes' degree-6
 * polynomial for 2^f (relative error about 2e-7). a is clamped at 87 (exp(-87) ~ 1.6e-38). */
static inline float exp_neg(float a) {
    float t = fminf(a, 87.0f) * -1.44269504088896341f;
    float k = rintf(t);
    float f = t - k;
    float p = 1.535336188319500e-4f;
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)k + 127) << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

static inline float sigmoid(float x) {
    float e = exp_neg(fabsf(x));
    float r = 1.0f / (1.0f + e);
    return x >= 0.0f ? r : e * r;
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define WD_AVX512 1

static inline __m512 load_bf16x16(const uint16_t *p) {
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline void store_bf16x16(uint16_t *p, __m512 v) {   /* round to nearest, ties to even */
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    u = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16)));
}

static inline __m512 exp_neg16(__m512 a) {   /* exp_neg() on 16 lanes; 2^k applied by scalef */
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
    __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), e);   /* in [1, 2]: 1/d by rcp14 and one Newton step */
    __m512 r = _mm512_rcp14_ps(d);
    r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
    __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_mul_ps(r, negative, e, r);
}

/* sigmoid(x) = 1 / (1 + 2^t), t = -x log2 e clamped to [-100, 100], for the uint8 gate: 2^f by a
 * degree-4 fit (relative error 2.7e-6) and 1/d by rcp14 alone (2^-14): an error of about 1e-4 of
 * a value, 1/80 of one output level (1/127). */
static inline __m512 sigmoid16_coarse(__m512 x) {
    __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(-1.44269504088896341f));
    t = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-100.0f)), _mm512_set1_ps(100.0f));
    __m512 k = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(t, k);
    __m512 p = _mm512_set1_ps(0.00956051f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.05591704f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.24024981f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.69312197f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.99999919f));
    return _mm512_rcp14_ps(_mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_scalef_ps(p, k)));
}
#endif

/* 1 when the vector paths were compiled in (the scalar ones are slower than torch). */
int wd_vectorized(void) {
#ifdef WD_AVX512
    return 1;
#else
    return 0;
#endif
}

#ifdef WD_AVX512
/* 16 lanes of g -> 16 uint8 levels rint(g * inv_scale) + 128 clamped to [0, 255] */
static inline void store_u8x16(uint8_t *p, __m512 g, __m512 inv_scale) {
    __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(g, inv_scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, _mm512_set1_ps(128.0f)), _mm512_setzero_ps()),
                      _mm512_set1_ps(255.0f));
    _mm_storeu_si128((__m128i *)p, _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(v)));
}
#endif

static inline uint8_t quantize_u8(float g, float inv_scale) {
    float v = fminf(fmaxf(rintf(g * inv_scale) + 128.0f, 0.0f), 255.0f);
    return (uint8_t)(int32_t)v;
}

/* g[i, c] = a + value * a * b with a = sigmoid(u[i, c]), b = sigmoid(u[i, C + c]), u = y + cond
 * (u = y when cond is NULL). y: (rows, 2C) bf16 contiguous; cond: rows [0, split) at cond, rows
 * [split, rows) at cond_rest (both (., 2C) contiguous; a ring's rows that wrap around its end).
 * The output, (rows, C) contiguous, is bf16 at g, or, when q is not NULL, uint8 levels at q:
 * rint(g / q_scale) + 128 clamped to [0, 255], from a coarser sigmoid (sigmoid16_coarse); g itself
 * is not rounded to bf16 first. */
void wd_gate_bf16(const uint16_t *restrict y, const uint16_t *restrict cond, const uint16_t *restrict cond_rest,
                  int64_t split, uint16_t *restrict g, uint8_t *restrict q, float q_scale, int64_t rows,
                  int64_t channels, float value) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const uint16_t *restrict yr = y + i * 2 * channels;
        const uint16_t *restrict cr = !cond ? 0 : i < split ? cond + i * 2 * channels
                                                            : cond_rest + (i - split) * 2 * channels;
        uint16_t *restrict gr = q ? 0 : g + i * channels;
        uint8_t *restrict qr = q ? q + i * channels : 0;
        int64_t c = 0;
#ifdef WD_AVX512
        __m512 v = _mm512_set1_ps(value), s = _mm512_set1_ps(1.0f / q_scale);
        for (; c + 16 <= channels; c += 16) {
            __m512 ua = load_bf16x16(yr + c), ub = load_bf16x16(yr + channels + c);
            if (cr) {
                ua = _mm512_add_ps(ua, load_bf16x16(cr + c));
                ub = _mm512_add_ps(ub, load_bf16x16(cr + channels + c));
            }
            if (qr) {
                __m512 a = sigmoid16_coarse(ua), b = sigmoid16_coarse(ub);
                store_u8x16(qr + c, _mm512_fmadd_ps(_mm512_mul_ps(v, a), b, a), s);
            } else {
                __m512 a = sigmoid16(ua), b = sigmoid16(ub);
                store_bf16x16(gr + c, _mm512_fmadd_ps(_mm512_mul_ps(v, a), b, a));
            }
        }
#endif
        for (; c < channels; c++) {
            float ua = bf16_to_f32(yr[c]) + (cr ? bf16_to_f32(cr[c]) : 0.0f);
            float ub = bf16_to_f32(yr[channels + c]) + (cr ? bf16_to_f32(cr[channels + c]) : 0.0f);
            float a = sigmoid(ua), b = sigmoid(ub);
            float out = a + value * a * b;
            if (qr)
                qr[c] = quantize_u8(out, 1.0f / q_scale);
            else
                gr[c] = f32_to_bf16(out);
        }
    }
}

/* out[c] = bf16(a[c] + b[c]) for one row of bf16 values (out may be a). */
static inline void add_row_bf16(uint16_t *out, const uint16_t *a, const uint16_t *b, int64_t channels) {
    int64_t c = 0;
#ifdef WD_AVX512
    for (; c + 16 <= channels; c += 16)
        store_bf16x16(out + c, _mm512_add_ps(load_bf16x16(a + c), load_bf16x16(b + c)));
#endif
    for (; c < channels; c++)
        out[c] = f32_to_bf16(bf16_to_f32(a[c]) + bf16_to_f32(b[c]));
}

/* The residual and skip updates from one projection y (rows, width) bf16 contiguous, whose last C
 * columns are the skip projection and (when width = 2C) first C the residual one:
 *   next[i, :] = current[i, :] + y[i, :C]                      for i in [0, rows), when next;
 *   skip row r = i - s0:  skip[r, :] (+)= y[i, width - C:]      for i in [s0, s1),
 * skip rows [0, split) at skip and [split, s1 - s0) at skip_rest (a ring's rows that wrap);
 * added when accumulate, else stored. Sums in float32, rounded once to bf16. */
void wd_residual_skip_bf16(const uint16_t *restrict y, int64_t width, const uint16_t *restrict current,
                           uint16_t *restrict next, int64_t rows, int64_t channels, int64_t s0, int64_t s1,
                           uint16_t *restrict skip, uint16_t *restrict skip_rest, int64_t split, int accumulate) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const uint16_t *yr = y + i * width;
        if (next)
            add_row_bf16(next + i * channels, current + i * channels, yr, channels);
        if (i < s0 || i >= s1)
            continue;
        int64_t r = i - s0;
        uint16_t *sr = r < split ? skip + r * channels : skip_rest + (r - split) * channels;
        if (accumulate)
            add_row_bf16(sr, sr, yr + width - channels, channels);
        else
            memcpy(sr, yr + width - channels, (size_t)channels * sizeof *sr);
    }
}

/* The same on float32 (rows, 2C) -> (rows, C). */
void wd_gate_f32(const float *restrict y, float *restrict g, int64_t rows, int64_t channels, float value) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const float *restrict yr = y + i * 2 * channels;
        float *restrict gr = g + i * channels;
        int64_t c = 0;
#ifdef WD_AVX512
        __m512 v = _mm512_set1_ps(value);
        for (; c + 16 <= channels; c += 16) {
            __m512 a = sigmoid16(_mm512_loadu_ps(yr + c));
            __m512 b = sigmoid16(_mm512_loadu_ps(yr + channels + c));
            _mm512_storeu_ps(gr + c, _mm512_fmadd_ps(_mm512_mul_ps(v, a), b, a));
        }
#endif
        for (; c < channels; c++) {
            float a = sigmoid(yr[c]);
            float b = sigmoid(yr[channels + c]);
            gr[c] = a + value * a * b;
        }
    }
}

/* max |x| over n bf16 values. */
float wd_absmax_bf16(const uint16_t *restrict x, int64_t n) {
    float m = 0.0f;
    int64_t blocks = n / BLOCK;
#pragma omp parallel for schedule(static) reduction(max : m)
    for (int64_t b = 0; b <= blocks; b++) {
        int64_t i = b * BLOCK, end = b == blocks ? n : i + BLOCK;
#ifdef WD_AVX512
        __m512 acc = _mm512_setzero_ps();
        for (; i + 16 <= end; i += 16)
            acc = _mm512_max_ps(acc, _mm512_abs_ps(load_bf16x16(x + i)));
        float part = _mm512_reduce_max_ps(acc);
        m = part > m ? part : m;
#endif
        for (; i < end; i++) {
            float v = fabsf(bf16_to_f32(x[i]));
            m = v > m ? v : m;
        }
    }
    return m;
}

/* q[i] = clamp(rint(x[i] / scale) + zero_point, 0, 255) for n bf16 values (a division, as torch's
 * quantize_per_tensor: a multiplication by 1/scale rounds exact ties such as max/2 the other way). */
void wd_quantize_bf16_u8(const uint16_t *restrict x, uint8_t *restrict q, int64_t n, float scale, float zero_point) {
    int64_t blocks = n / BLOCK;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b <= blocks; b++) {
        int64_t i = b * BLOCK, end = b == blocks ? n : i + BLOCK;
#ifdef WD_AVX512
        __m512 s = _mm512_set1_ps(scale), z = _mm512_set1_ps(zero_point);
        __m512 lo = _mm512_setzero_ps(), hi = _mm512_set1_ps(255.0f);
        for (; i + 16 <= end; i += 16) {
            __m512 v = _mm512_roundscale_ps(_mm512_div_ps(load_bf16x16(x + i), s),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, z), lo), hi);
            _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(v)));
        }
#endif
        for (; i < end; i++) {
            float v = rintf(bf16_to_f32(x[i]) / scale) + zero_point;
            v = fminf(fmaxf(v, 0.0f), 255.0f);
            q[i] = (uint8_t)(int32_t)v;
        }
    }
}

/* ---- training: the gate of a residual layer and its adjoint, bf16 activations ----------------- */

/* Forward. u = pre[i, :] + bias[i / rows_per_item, :] (pre (rows, 2C) bf16, bias (items, 2C) float32);
 * s = sigmoid(u[:C]), t = tanh(u[C:]) = 2 sigmoid(2 u[C:]) - 1, stored as gates[i] = [s | t] in bf16;
 * h[i] = s t (from the unrounded values) in bf16. */
void wd_train_gate_fwd_bf16(const uint16_t *restrict pre, const float *restrict bias, int64_t rows_per_item,
                            uint16_t *restrict gates, uint16_t *restrict h, int64_t rows, int64_t channels) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const uint16_t *restrict pr = pre + i * 2 * channels;
        const float *restrict br = bias + (i / rows_per_item) * 2 * channels;
        uint16_t *restrict gr = gates + i * 2 * channels;
        uint16_t *restrict hr = h + i * channels;
        int64_t c = 0;
#ifdef WD_AVX512
        __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
        for (; c + 16 <= channels; c += 16) {
            __m512 s = sigmoid16(_mm512_add_ps(load_bf16x16(pr + c), _mm512_loadu_ps(br + c)));
            __m512 ub = _mm512_add_ps(load_bf16x16(pr + channels + c), _mm512_loadu_ps(br + channels + c));
            __m512 t = _mm512_fmsub_ps(two, sigmoid16(_mm512_mul_ps(two, ub)), one);
            store_bf16x16(gr + c, s);
            store_bf16x16(gr + channels + c, t);
            store_bf16x16(hr + c, _mm512_mul_ps(s, t));
        }
#endif
        for (; c < channels; c++) {
            float s = sigmoid(bf16_to_f32(pr[c]) + br[c]);
            float t = 2.0f * sigmoid(2.0f * (bf16_to_f32(pr[channels + c]) + br[channels + c])) - 1.0f;
            gr[c] = f32_to_bf16(s);
            gr[channels + c] = f32_to_bf16(t);
            hr[c] = f32_to_bf16(s * t);
        }
    }
}

/* Backward. From g_h (rows, C) and gates [s | t] (rows, 2C), both bf16:
 *   g_pre[i] = [g_h t s (1 - s) | g_h s (1 - t^2)]  (bf16, rows x 2C),
 *   bias_grad[item, :] = sum of g_pre's rows of that item (float32, items x 2C; rows_per_item rows each).
 * Row blocks within an item are summed in float32 per thread, then added in a fixed order, so the
 * result does not depend on the thread count's scheduling. */
#define GATE_BLOCK 512
void wd_train_gate_bwd_bf16(const uint16_t *restrict g_h, const uint16_t *restrict gates, uint16_t *restrict g_pre,
                            float *restrict bias_grad, float *restrict scratch, int64_t rows, int64_t channels,
                            int64_t rows_per_item) {
    int64_t items = rows / rows_per_item;
    int64_t per_item = (rows_per_item + GATE_BLOCK - 1) / GATE_BLOCK;
    int64_t blocks = items * per_item, width = 2 * channels;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t item = b / per_item, k = b % per_item;
        int64_t i0 = item * rows_per_item + k * GATE_BLOCK;
        int64_t i1 = i0 + GATE_BLOCK;
        if (i1 > (item + 1) * rows_per_item)
            i1 = (item + 1) * rows_per_item;
        float *restrict acc = scratch + b * width;
        for (int64_t c = 0; c < width; c++)
            acc[c] = 0.0f;
        for (int64_t i = i0; i < i1; i++) {
            const uint16_t *restrict gr = gates + i * width;
            const uint16_t *restrict ghr = g_h + i * channels;
            uint16_t *restrict out = g_pre + i * width;
            int64_t c = 0;
#ifdef WD_AVX512
            __m512 one = _mm512_set1_ps(1.0f);
            for (; c + 16 <= channels; c += 16) {
                __m512 s = load_bf16x16(gr + c), t = load_bf16x16(gr + channels + c), g = load_bf16x16(ghr + c);
                __m512 gs = _mm512_mul_ps(g, s);
                __m512 da = _mm512_mul_ps(_mm512_mul_ps(gs, t), _mm512_sub_ps(one, s));
                __m512 db = _mm512_mul_ps(gs, _mm512_fnmadd_ps(t, t, one));
                store_bf16x16(out + c, da);
                store_bf16x16(out + channels + c, db);
                /* the bias gradient sums the values as stored (what the GEMMs see) */
                _mm512_storeu_ps(acc + c, _mm512_add_ps(_mm512_loadu_ps(acc + c), load_bf16x16(out + c)));
                _mm512_storeu_ps(acc + channels + c, _mm512_add_ps(_mm512_loadu_ps(acc + channels + c),
                                                                   load_bf16x16(out + channels + c)));
            }
#endif
            for (; c < channels; c++) {
                float s = bf16_to_f32(gr[c]), t = bf16_to_f32(gr[channels + c]), g = bf16_to_f32(ghr[c]);
                out[c] = f32_to_bf16(g * s * t * (1.0f - s));
                out[channels + c] = f32_to_bf16(g * s * (1.0f - t * t));
                acc[c] += bf16_to_f32(out[c]);
                acc[channels + c] += bf16_to_f32(out[channels + c]);
            }
        }
    }
    for (int64_t item = 0; item < items; item++) {
        float *restrict dst = bias_grad + item * width;
        for (int64_t c = 0; c < width; c++)
            dst[c] = 0.0f;
        for (int64_t k = 0; k < per_item; k++) {
            const float *restrict acc = scratch + (item * per_item + k) * width;
            for (int64_t c = 0; c < width; c++)
                dst[c] += acc[c];
        }
    }
}
