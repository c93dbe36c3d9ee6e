/* The per-token-group FP8 quantizer for the CPU: one pass over each group, bit-exact with the oracle's
 * torch arithmetic on the CPU (docs/token-group-quantizer.md).
 *
 * Per token and group of G values: amax = max |x| in float32 (an integer max on the magnitudes' float32
 * bits, which vectorises; for bfloat16 on its own 16 bits, whose order is the same), clamped below at eps;
 * scale = amax / 448.0f;
 * code = clamp(x / scale, -448, 448) in IEEE float32 (no fast-math, no contraction), rounded to e4m3fn to
 * nearest even by the conversion the fused K-cache kernel shares (_fp8_cpu.h; after the clamp no value
 * needs saturating).  Parallel over tokens with OpenMP; the codes, a large fresh output, advised as huge
 * pages first (_cpu_common.h); compiled on first use by _token_group_cpu.py.
 */
#include "_fp8_cpu.h"

/* 64 codes (bfloat16) or 16 at a time where AVX-512 is there (_fp8_cpu.h): the same division, the clamp
 * as min/max (which return their second operand, q, where q is NaN, as the scalar ternaries do) and the
 * same conversion; for a bfloat16 group with a normal finite scale no clamp and no saturation (no code
 * changes: e4m3_from_bf16_x64). */
#ifdef HARNESS_E4M3_X16
#define CODES_X16(LOADV)                                                                                \
    if ((const void *)LOADV == (const void *)bf16_x16 && scale >= 0x1p-126f                             \
        && scale <= 0x1.fffffep127f)  /* bounded: no clamp */                                           \
        for (; i + 64 <= group; i += 64)                                                                \
            e4m3_from_bf16_x64((const uint16_t *)(xg + i), scale, cg + i, 1, 0, 0, 0);                  \
    else if ((const void *)LOADV == (const void *)bf16_x16)                                             \
        for (; i + 64 <= group; i += 64)                                                                \
            e4m3_from_bf16_x64((const uint16_t *)(xg + i), scale, cg + i, 0, 1, 1, 1);                  \
    for (; i + 16 <= group; i += 16) {                                                                  \
        __m512 q = _mm512_div_ps(LOADV(xg + i), _mm512_set1_ps(scale));                                 \
        q = _mm512_max_ps(_mm512_set1_ps(-448.0f), _mm512_min_ps(_mm512_set1_ps(448.0f), q));           \
        _mm_storeu_si128((__m128i *)(cg + i), e4m3_from_float_x16(q, 1, 1));                            \
    }
#else
#define CODES_X16(LOADV)
#endif

/* The magnitude's bits that the amax is taken on (K), and its float32: a float16's float32 bits (widening
 * quiets a signalling NaN, which changes the order among NaNs: the scale's NaN bits are the float32 max's),
 * a bfloat16's own 16 bits (its float32 is those bits shifted, NaNs too) and a float32's. */
static inline uint16_t bf16_magnitude(uint16_t h) { return h & 0x7FFFu; }
static inline float bf16_magnitude_float(uint16_t m) { return bf16_to_float(m); }
static inline uint32_t f16_magnitude(uint16_t h) { return bits_of(f16_to_float(h)) & 0x7FFFFFFFu; }
static inline float f16_magnitude_float(uint32_t m) { return float_of(m); }
static inline uint32_t f32_magnitude(uint32_t u) { return u & 0x7FFFFFFFu; }
static inline float f32_magnitude_float(uint32_t m) { return float_of(m); }

/* One group: amax, scale, codes.  Inlined with the group size as a constant for the usual 128 (no masked
 * epilogue, the amax reduction unrolled) and as the caller's otherwise. */
#define DEFINE_GROUP(NAME, U, LOAD, K)                                                                  \
static inline __attribute__((always_inline)) void NAME##_group(const U *restrict xg, uint8_t *restrict cg, \
        float *restrict scale_out, const int64_t group, const float eps) {                              \
    K amax_bits = 0;                                                                                    \
    for (int64_t i = 0; i < group; i++) {                                                               \
        const K a = LOAD##_magnitude(xg[i]);                                                            \
        amax_bits = a > amax_bits ? a : amax_bits;                                                      \
    }                                                                                                   \
    const float amax_f = LOAD##_magnitude_float(amax_bits);                                             \
    const float amax = amax_f < eps ? eps : amax_f;                                                     \
    const float scale = amax / 448.0f;                                                                  \
    *scale_out = scale;                                                                                 \
    int64_t i = 0;                                                                                      \
    CODES_X16(LOAD##_x16)                                                                               \
    for (; i < group; i++) {                                                                            \
        float q = LOAD##_to_float(xg[i]) / scale;                                                       \
        q = q < -448.0f ? -448.0f : (q > 448.0f ? 448.0f : q);                                          \
        cg[i] = (uint8_t)e4m3_from_float(q, 1, 1);                                                      \
    }                                                                                                   \
}

#define DEFINE_GROUPS(NAME, U, LOAD, K)                                                                 \
DEFINE_GROUP(NAME, U, LOAD, K)                                                                          \
void NAME(const U *x, int64_t tokens, int64_t hidden, int64_t group, uint8_t *codes, float *scales,     \
          float eps, int nthreads) {                                                                    \
    const int64_t groups = hidden / group;                                                              \
    advise_huge_pages(codes, (size_t)(tokens * hidden));                                                \
    _Pragma("omp parallel for schedule(static) num_threads(nthreads)")                                  \
    for (int64_t t = 0; t < tokens; t++) {                                                              \
        for (int64_t g = 0; g < groups; g++) {                                                          \
            const U *xg = x + t * hidden + g * group;                                                   \
            uint8_t *cg = codes + t * hidden + g * group;                                               \
            if (group == 128) NAME##_group(xg, cg, scales + t * groups + g, 128, eps);                  \
            else NAME##_group(xg, cg, scales + t * groups + g, group, eps);                             \
        }                                                                                               \
    }                                                                                                   \
}

DEFINE_GROUPS(token_groups_bf16, uint16_t, bf16, uint16_t)
DEFINE_GROUPS(token_groups_f16, uint16_t, f16, uint32_t)
DEFINE_GROUPS(token_groups_f32, uint32_t, f32, uint32_t)
