/* The fused quantizer for the CPU: one pass over the input, bit-exact with torch's CPU arithmetic.
 *
 * Per token and tile: amax of |x| (NaN propagates), scale = amax / 448.0f rounded to the input dtype
 * (round to nearest even, as c10::BFloat16 / c10::Half do), stored as float32; codes = x / scale in IEEE
 * float32 (no fast-math, no contraction), converted to e4m3fn as the installed torch does: round half to
 * even (subnormals through a magic-number addition), NaN to the NaN code, and values beyond the 464
 * midpoint either to NaN (c10's fp8e4m3fn_from_fp32_value) or saturated to +-448 (torch 2.13's CPU
 * conversion), finite values and infinities each as the caller says (it probes torch once).  Written
 * without branches so the compiler vectorises every loop (-O3 -march=native; check with -fopt-info-vec):
 * the amax as an integer max on the bits, the conversion in 32-bit lanes with mask selects, one inlined
 * copy per saturation mode and for contiguous rows.  At 65,536 production tokens on 2 cores: 3.6 ms a
 * call (17 ms before: a scalar amax loop with strided loads, byte-lane selects), ~80% of copy bandwidth
 * on an AMD EPYC.  An Intel Xeon (two 512-bit vector ports) left that code compute-bound at ~43%: with
 * AVX-512 the contiguous tiles now take _fp8_cpu.h's 64-at-a-time path and the production tile is a
 * constant (harness bench: 6.4-6.7 ms, 71-72%, on a 2-core Xeon VM; benchmarks/NOTES.md).
 * Compiled on first use by candidates/_fused_cpu.py; parallel over tokens with OpenMP.
 */

#include "_fp8_cpu.h"


/* 64 codes (bfloat16) or 16 at a time in a contiguous row where AVX-512 is there (_fp8_cpu.h): the same
 * division and conversion as the scalar loop, which finishes the tile (and does all of a strided one). */
#ifdef HARNESS_E4M3_X16
#define CODES_X16(LOADV, BF16)                                                                          \
    if (cs == 1) {                                                                                      \
        if (BF16 && scale >= 0x1p-126f && scale <= 0x1.fffffep127f)  /* bounded: e4m3_from_bf16_x64 */  \
            for (; i + 64 <= tile; i += 64)                                                             \
                e4m3_from_bf16_x64((const uint16_t *)(xt + i), scale, codes + i, 1, 0, 0, 0);           \
        else if (BF16)                                                                                  \
            for (; i + 64 <= tile; i += 64)                                                             \
                e4m3_from_bf16_x64((const uint16_t *)(xt + i), scale, codes + i, 0, 0, sat_finite, sat_inf); \
        for (; i + 16 <= tile; i += 16)                                                                 \
            _mm_storeu_si128((__m128i *)(codes + i), e4m3_from_float_x16(                               \
                _mm512_div_ps(LOADV(xt + i), _mm512_set1_ps(scale)), sat_finite, sat_inf));             \
    }
#else
#define CODES_X16(LOADV, BF16)
#endif

/* One tile's scale: amax of |x| on the bits (with the sign cleared, the integer order of the bits is the
 * order of the values, and every NaN is above the infinity's bits, so an integer max, which vectorises
 * where a float max with NaN propagation does not, gives amax or says NaN), divided by 448 and rounded
 * to the input dtype.  And one tile's codes: x / scale in IEEE float32, converted. */
#define DEFINE_TILE(NAME, U, LOAD, LOADV, ROUND, ABS_MASK, INF_BITS)                                    \
static inline __attribute__((always_inline)) float NAME##_scale(const U *restrict xt, int64_t cs,       \
                                                                int64_t tile) {                         \
    U amax_bits = 0;                                                                                    \
    for (int64_t i = 0; i < tile; i++) {                                                                \
        const U a = xt[i * cs] & (U)ABS_MASK;                                                           \
        amax_bits = a > amax_bits ? a : amax_bits;                                                      \
    }                                                                                                   \
    return ROUND(amax_bits > (U)INF_BITS ? NAN : LOAD(amax_bits) / 448.0f);                             \
}                                                                                                       \
static inline __attribute__((always_inline)) void NAME##_codes(const U *restrict xt, int64_t cs,        \
        int64_t tile, float scale, uint8_t *restrict codes, const int sat_finite, const int sat_inf) {  \
    int64_t i = 0;                                                                                      \
    CODES_X16(LOADV, (const void *)LOADV == (const void *)bf16_x16)                                     \
    for (; i < tile; i++)                                                                               \
        codes[i] = (uint8_t)e4m3_from_float(LOAD(xt[i * cs]) / scale, sat_finite, sat_inf);             \
}

/* One token's row, inlined with a constant column stride of 1 (contiguous rows: plain vector loads) and
 * with the caller's, and with constant flags.  The scales of up to GROUP tiles first, then their codes:
 * each scale's chain (reduction, division, rounding) overlaps the others instead of stalling its tile. */
#define GROUP 8
#define DEFINE_ROW(NAME, U)                                                                             \
static inline __attribute__((always_inline)) void NAME##_row(const U *row, const int64_t cs, uint8_t *o, \
        int64_t dv, int64_t tile, int64_t rope, const int sat_finite, const int sat_inf) {              \
    const int64_t num_tiles = dv / tile;                                                                \
    for (int64_t k0 = 0; k0 < num_tiles; k0 += GROUP) {                                                 \
        const int64_t n = num_tiles - k0 < GROUP ? num_tiles - k0 : GROUP;                              \
        float scales[GROUP];                                                                            \
        for (int64_t j = 0; j < n; j++) scales[j] = NAME##_tile_scale(row + (k0 + j) * tile * cs, cs, tile); \
        memcpy(o + dv + 4 * k0, scales, (size_t)n * 4);                                                 \
        for (int64_t j = 0; j < n; j++)                                                                 \
            NAME##_tile_codes(row + (k0 + j) * tile * cs, cs, tile, scales[j], o + (k0 + j) * tile,     \
                              sat_finite, sat_inf);                                                     \
    }                                                                                                   \
    uint8_t *rope_out = o + dv + 4 * num_tiles;                                                         \
    if (cs == 1)                                                                                        \
        memcpy(rope_out, row + dv, (size_t)rope * sizeof(U));                                           \
    else                                                                                                \
        for (int64_t j = 0; j < rope; j++) memcpy(rope_out + j * sizeof(U), row + (dv + j) * cs, sizeof(U)); \
}

#define DEFINE_QUANTIZE(NAME, U, LOAD, LOADV, ROUND, ABS_MASK, INF_BITS)                                \
DEFINE_TILE(NAME##_tile, U, LOAD, LOADV, ROUND, ABS_MASK, INF_BITS)                                     \
DEFINE_ROW(NAME, U)                                                                                     \
void NAME(const U *x, int64_t n_tokens, int64_t row_stride, int64_t col_stride, uint8_t *out,           \
          int64_t width, int64_t dv, int64_t tile, int64_t rope, int sat_finite, int sat_inf,           \
          int nthreads) {                                                                               \
    const int mode = 2 * !!sat_finite + !!sat_inf;                                                      \
    advise_huge_pages(out, (size_t)(n_tokens * width));                                                 \
    _Pragma("omp parallel for schedule(static) num_threads(nthreads)")                                  \
    for (int64_t t = 0; t < n_tokens; t++) {                                                            \
        const U *row = x + t * row_stride;                                                              \
        if (col_stride == 1 && t + PREFETCH_ROWS_AHEAD < n_tokens)                                      \
            prefetch_lines(row + PREFETCH_ROWS_AHEAD * row_stride, (dv + rope) * (int64_t)sizeof(U));   \
        uint8_t *o = out + t * width;                                                                   \
        if (col_stride == 1) {                                                                          \
            switch (mode) {                                                                             \
            case 3: /* the production tile as a constant too: unrolled, no loop ends to test */         \
                if (tile == 128) NAME##_row(row, 1, o, dv, 128, rope, 1, 1);                            \
                else NAME##_row(row, 1, o, dv, tile, rope, 1, 1);                                       \
                break;                                                                                  \
            case 2: NAME##_row(row, 1, o, dv, tile, rope, 1, 0); break;                                 \
            case 1: NAME##_row(row, 1, o, dv, tile, rope, 0, 1); break;                                 \
            default: NAME##_row(row, 1, o, dv, tile, rope, 0, 0); break;                                \
            }                                                                                           \
        } else {                                                                                        \
            switch (mode) {                                                                             \
            case 3: NAME##_row(row, col_stride, o, dv, tile, rope, 1, 1); break;                        \
            case 2: NAME##_row(row, col_stride, o, dv, tile, rope, 1, 0); break;                        \
            case 1: NAME##_row(row, col_stride, o, dv, tile, rope, 0, 1); break;                        \
            default: NAME##_row(row, col_stride, o, dv, tile, rope, 0, 0); break;                       \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
}

DEFINE_QUANTIZE(quantize_bf16, uint16_t, bf16_to_float, bf16_x16, round_to_bf16, 0x7FFFu, 0x7F80u)
DEFINE_QUANTIZE(quantize_f16, uint16_t, f16_to_float, f16_x16, round_to_f16, 0x7FFFu, 0x7C00u)
DEFINE_QUANTIZE(quantize_f32, uint32_t, f32_to_float, f32_x16, round_to_f32, 0x7FFFFFFFu, 0x7F800000u)

/* For tests: the element-wise conversion alone (each flag combination, as the kernels inline it: 16 values at
 * a time where AVX-512 is there, the rest one by one). */
#ifdef HARNESS_E4M3_X16
#define CONVERT_X16(F, S) for (; i + 16 <= n; i += 16)                                                  \
    _mm_storeu_si128((__m128i *)(out + i), e4m3_from_float_x16(_mm512_loadu_ps(x + i), F, S))
#else
#define CONVERT_X16(F, S) (void)0
#endif
#define CONVERT_ALL(F, S) do { int64_t i = 0; CONVERT_X16(F, S);                                        \
    for (; i < n; i++) out[i] = (uint8_t)e4m3_from_float(x[i], F, S); } while (0)
void e4m3_from_floats(const float *x, uint8_t *out, int64_t n, int sat_finite, int sat_inf) {
    if (sat_finite && sat_inf) CONVERT_ALL(1, 1);
    else if (sat_finite) CONVERT_ALL(1, 0);
    else if (sat_inf) CONVERT_ALL(0, 1);
    else CONVERT_ALL(0, 0);
}
