/* The fused quantizer for the CPU: one pass over the input, bit-exact with torch's CPU arithmetic.
 *
 * Per token and tile: amax of |x| (NaN propagates), scale = amax / 448.0f rounded to the input dtype
 * (round to nearest even, as c10::BFloat16 / c10::Half do), stored as float32; codes = x / scale in IEEE
 * float32 (no fast-math, no contraction), converted to e4m3fn as the installed torch does: round half to
 * even (subnormals through a magic-number addition), NaN to the NaN code, and values beyond the 464
 * midpoint either to NaN (c10's fp8e4m3fn_from_fp32_value) or saturated to +-448 (torch 2.13's CPU
 * conversion), finite values and infinities each as the caller says (it probes torch once).  Written
 * without branches so the compiler can vectorise it.
 * Compiled on first use by candidates/_fused_cpu.py; parallel over tokens with OpenMP.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline uint8_t e4m3_from_float(float f, int saturate_finite, int saturate_inf) {
    const uint32_t bits = bits_of(f);
    const uint32_t sign = bits & 0x80000000u;
    const uint32_t mag = bits ^ sign;
    const uint32_t denorm_magic = 141u << 23;  /* adding 2^14 leaves the subnormal code in the low bits */
    const uint8_t subnormal = (uint8_t)(bits_of(float_of(mag) + float_of(denorm_magic)) - denorm_magic);
    const uint32_t odd = (mag >> 20) & 1u;
    const uint8_t normal = (uint8_t)((mag + ((uint32_t)(7 - 127) << 23) + 0x7FFFFu + odd) >> 20);
    const uint8_t in_range = mag < (121u << 23) ? subnormal : normal;
    const int is_nan = mag > 0x7F800000u, is_inf = mag == 0x7F800000u;
    const int beyond = mag > 0x43E80000u; /* above 464.0, the midpoint between 448 and 480 */
    const int saturate = is_inf ? saturate_inf : saturate_finite;
    const uint8_t code = is_nan ? 0x7F : (beyond ? (saturate ? 0x7E : 0x7F) : in_range);
    return code | (uint8_t)(sign >> 24);
}

static inline float bf16_to_float(uint16_t h) { return float_of((uint32_t)h << 16); }
static inline float round_to_bf16(float f) {
    if (f != f) return float_of(0x7FC00000u);
    const uint32_t u = bits_of(f);
    return float_of(((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16) << 16);
}
static inline float f16_to_float(_Float16 h) { return (float)h; }
static inline float round_to_f16(float f) { return (float)(_Float16)f; }
static inline float f32_to_float(float f) { return f; }
static inline float round_to_f32(float f) { return f; }

#define DEFINE_QUANTIZE(NAME, T, LOAD, ROUND)                                                           \
void NAME(const T *x, int64_t n_tokens, int64_t row_stride, int64_t col_stride, uint8_t *out,        \
          int64_t width, int64_t dv, int64_t tile, int64_t rope, int sat_finite, int sat_inf,           \
          int nthreads) {                                                                               \
    const int64_t num_tiles = dv / tile;                                                                \
    _Pragma("omp parallel for schedule(static) num_threads(nthreads)")                                  \
    for (int64_t t = 0; t < n_tokens; t++) {                                                            \
        const T *row = x + t * row_stride;                                                              \
        uint8_t *o = out + t * width;                                                                   \
        for (int64_t k = 0; k < num_tiles; k++) {                                                       \
            const T *xt = row + k * tile * col_stride;                                                  \
            float amax = 0.0f;                                                                          \
            int nan = 0;                                                                                \
            for (int64_t i = 0; i < tile; i++) {                                                        \
                const float a = fabsf(LOAD(xt[i * col_stride]));                                        \
                nan |= a != a;                                                                          \
                amax = a > amax ? a : amax;                                                             \
            }                                                                                           \
            const float scale = ROUND(nan ? NAN : amax / 448.0f);                                       \
            memcpy(o + dv + 4 * k, &scale, 4);                                                          \
            uint8_t *codes = o + k * tile;                                                              \
            if (col_stride == 1) {                                                                      \
                for (int64_t i = 0; i < tile; i++) codes[i] = e4m3_from_float(LOAD(xt[i]) / scale, sat_finite, sat_inf); \
            } else {                                                                                    \
                for (int64_t i = 0; i < tile; i++)                                                      \
                    codes[i] = e4m3_from_float(LOAD(xt[i * col_stride]) / scale, sat_finite, sat_inf); \
            }                                                                                           \
        }                                                                                               \
        T *rope_out = (T *)(o + dv + 4 * num_tiles);                                                    \
        for (int64_t j = 0; j < rope; j++) memcpy(rope_out + j, row + (dv + j) * col_stride, sizeof(T)); \
    }                                                                                                   \
}

DEFINE_QUANTIZE(quantize_bf16, uint16_t, bf16_to_float, round_to_bf16)
DEFINE_QUANTIZE(quantize_f16, _Float16, f16_to_float, round_to_f16)
DEFINE_QUANTIZE(quantize_f32, float, f32_to_float, round_to_f32)

/* For tests: the element-wise conversion alone. */
void e4m3_from_floats(const float *x, uint8_t *out, int64_t n, int sat_finite, int sat_inf) {
    for (int64_t i = 0; i < n; i++) out[i] = e4m3_from_float(x[i], sat_finite, sat_inf);
}
