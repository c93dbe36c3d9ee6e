/* What the quantizers' CPU kernels share (besides _cpu_common.h): a branch-free select, torch's float32 ->
 * e4m3fn conversion and the input dtypes read as their bits.  Included by _fused_cpu.c and
 * _token_group_cpu.c (candidates/_cbuild.py hashes this file with each source, so a change rebuilds both). */
#ifndef HARNESS_FP8_CPU_H
#define HARNESS_FP8_CPU_H
#include <math.h>
#include "_cpu_common.h"

/* cond ? a : b with a mask, not a branch (gcc's if-conversion gave up on the ternaries) */
static inline uint32_t select_u32(int cond, uint32_t a, uint32_t b) {
    const uint32_t m = 0u - (uint32_t)cond;
    return (a & m) | (b & ~m);
}

static inline uint32_t umin(uint32_t a, uint32_t b) { return a < b ? a : b; }

/* All in 32-bit lanes (selects on uint32, narrowed to a byte only when stored): mixing byte and dword
 * lanes made the compiler shuffle masks between k registers and the stack.  The saturation flags are
 * constants where the kernels inline it (one copy per combination), so each combination keeps only its
 * own selects: saturating both (torch 2.13 on the CPU) is a min and a NaN select, saturating neither a
 * min (a NaN's "normal" code is above 0x7F too). */
static inline __attribute__((always_inline)) uint32_t e4m3_from_float(float f, int sat_finite, int sat_inf) {
    const uint32_t bits = bits_of(f);
    const uint32_t mag = bits & 0x7FFFFFFFu;
    const uint32_t denorm_magic = 141u << 23;  /* adding 2^14 leaves the subnormal code in the low bits */
    const uint32_t subnormal = bits_of(float_of(mag) + float_of(denorm_magic)) - denorm_magic;
    const uint32_t odd = (mag >> 20) & 1u;
    const uint32_t normal = (mag + ((uint32_t)(7 - 127) << 23) + 0x7FFFFu + odd) >> 20;
    /* above 0x7E: beyond 464 (the midpoint between 448 and 480), infinite or NaN */
    const uint32_t code = select_u32(mag < (121u << 23), subnormal, normal);
    uint32_t capped;
    if (sat_finite && sat_inf)
        capped = select_u32(mag > 0x7F800000u, 0x7Fu, umin(code, 0x7Eu));
    else if (!sat_finite && !sat_inf)
        capped = umin(code, 0x7Fu);
    else
        capped = select_u32(mag > 0x7F800000u, 0x7Fu,
                        select_u32(code > 0x7Eu, select_u32(mag == 0x7F800000u, sat_inf ? 0x7Eu : 0x7Fu,
                                                    sat_finite ? 0x7Eu : 0x7Fu), code));
    return capped | ((bits >> 24) & 0x80u);
}

/* The same conversion for 16 floats at once with AVX-512 (F and BW), where the compiler targets it: the same
 * integer and float steps in the same order, with k-masks and blends where the scalar code selects.  Left
 * to the auto-vectoriser, the scalar code's selects became masks moved through general registers and the
 * bytes were narrowed by permutes (about 3 instructions a value; an Intel Xeon, whose vector work runs on
 * two ports, spent half the token-group kernel's time there: 11 of 26 ms at 4096 x 7168, one thread). */
#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define HARNESS_E4M3_X16 1
/* The code of a magnitude's bits before saturation: the normal rounding, and the subnormal step where
 * `subnormals` (a bounded block below skips it when no value is under 2^-6). */
static inline __attribute__((always_inline)) __m512i e4m3_magnitude_x16(__m512i mag, int subnormals) {
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(mag, 20), _mm512_set1_epi32(1));
    __m512i code = _mm512_srli_epi32(_mm512_add_epi32(
        _mm512_add_epi32(mag, _mm512_set1_epi32((int)(((uint32_t)(7 - 127) << 23) + 0x7FFFFu))), odd), 20);
    if (subnormals) {
        const __m512i denorm_magic = _mm512_set1_epi32(141 << 23);
        const __m512i subnormal = _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(
            _mm512_castsi512_ps(mag), _mm512_castsi512_ps(denorm_magic))), denorm_magic);
        code = _mm512_mask_blend_epi32(_mm512_cmplt_epu32_mask(mag, _mm512_set1_epi32(121 << 23)), code,
                                       subnormal);
    }
    return code;
}
static inline __attribute__((always_inline)) __m512i e4m3_signed_x16(__m512i code, __m512i bits) {
    const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(bits, 24), _mm512_set1_epi32(0x80));
    return _mm512_or_si512(code, sign);  /* one code in each 32-bit lane */
}
static inline __attribute__((always_inline)) __m512i e4m3_code_x16(__m512 f, int sat_finite, int sat_inf) {
    const __m512i bits = _mm512_castps_si512(f);
    const __m512i mag = _mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF));
    __m512i code = e4m3_magnitude_x16(mag, 1);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(mag, _mm512_set1_epi32(0x7F800000));
    if (sat_finite && sat_inf) {
        code = _mm512_mask_mov_epi32(_mm512_min_epu32(code, _mm512_set1_epi32(0x7E)), nan,
                                     _mm512_set1_epi32(0x7F));
    } else if (!sat_finite && !sat_inf) {
        code = _mm512_min_epu32(code, _mm512_set1_epi32(0x7F));
    } else {
        const __m512i over = _mm512_mask_blend_epi32(
            _mm512_cmpeq_epu32_mask(mag, _mm512_set1_epi32(0x7F800000)),
            _mm512_set1_epi32(sat_finite ? 0x7E : 0x7F), _mm512_set1_epi32(sat_inf ? 0x7E : 0x7F));
        code = _mm512_mask_mov_epi32(code, _mm512_cmpgt_epu32_mask(code, _mm512_set1_epi32(0x7E)), over);
        code = _mm512_mask_mov_epi32(code, nan, _mm512_set1_epi32(0x7F));
    }
    return e4m3_signed_x16(code, bits);
}
/* The same for values known to be below 464 in magnitude and not NaN (a bounded tile, below): no code
 * needs saturating. */
static inline __attribute__((always_inline)) __m512i e4m3_code_bounded_x16(__m512 f, int subnormals) {
    const __m512i bits = _mm512_castps_si512(f);
    return e4m3_signed_x16(e4m3_magnitude_x16(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF)), subnormals),
                           bits);
}
static inline __attribute__((always_inline)) __m128i e4m3_from_float_x16(__m512 f, int sat_finite, int sat_inf) {
    return _mm512_cvtepi32_epi8(e4m3_code_x16(f, sat_finite, sat_inf));
}

/* 64 bfloat16 values / scale (clamped to +-448 first where asked), converted, stored as 64 codes.  A
 * bfloat16 is the high half of its float32, so interleaving zeros below the loaded halves (unpack) widens
 * 32 values in two instructions instead of four, in an order (4 values of each 128-bit lane at a time)
 * that the packs back to bytes undo: packus per lane puts each lane's 8 values back in order, and one
 * permutation of 64-bit pieces orders the lanes.  (The codes are 0-255, so no pack saturates.)  Callers
 * pass `bounded` (no saturation, no clamp) for a finite, normal scale that is amax / 448 (or more: the
 * token groups' eps) rounded to nearest in the input dtype or in float32: rounding a normal number to 8
 * significant bits or more loses at most 2^-8 of it (a subnormal can lose a third), so every
 * |value| / scale is at most 448 / (1 - 2^-8) < 450 < 464, finite, its code at most 0x7E whatever the
 * flags, and clamping to 448 changes no code. */
static inline __attribute__((always_inline)) void e4m3_from_bf16_x64(const uint16_t *x, float scale, uint8_t *out,
        int bounded, int clamp, int sat_finite, int sat_inf) {
    const __m512i zero = _mm512_setzero_si512();
    const __m512 s = _mm512_set1_ps(scale);
    __m512 q[4];
    __m512i code[4];
    for (int h = 0; h < 2; h++) {
        const __m512i v = _mm512_loadu_si512((const void *)(x + 32 * h));
        for (int half = 0; half < 2; half++) {
            q[2 * h + half] = _mm512_div_ps(_mm512_castsi512_ps(half ? _mm512_unpackhi_epi16(zero, v)
                                                                     : _mm512_unpacklo_epi16(zero, v)), s);
            if (clamp) q[2 * h + half] = _mm512_max_ps(_mm512_set1_ps(-448.0f),
                                                       _mm512_min_ps(_mm512_set1_ps(448.0f), q[2 * h + half]));
        }
    }
    if (bounded) {
        const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF), min_normal = _mm512_set1_epi32(121 << 23);
        __mmask16 small = 0;  /* any value under 2^-6 (a subnormal code) among the 64 */
        for (int k = 0; k < 4; k++)
            small |= _mm512_cmplt_epu32_mask(_mm512_and_si512(_mm512_castps_si512(q[k]), abs_mask), min_normal);
        if (small)
            for (int k = 0; k < 4; k++) code[k] = e4m3_code_bounded_x16(q[k], 1);
        else
            for (int k = 0; k < 4; k++) code[k] = e4m3_code_bounded_x16(q[k], 0);
    } else {
        for (int k = 0; k < 4; k++) code[k] = e4m3_code_x16(q[k], sat_finite, sat_inf);
    }
    const __m512i bytes = _mm512_packus_epi16(_mm512_packus_epi32(code[0], code[1]),
                                              _mm512_packus_epi32(code[2], code[3]));
    _mm512_storeu_si512((void *)out, _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), bytes));
}

/* 16 values of an input dtype as float32 (exact widening, as the scalar LOADs below) */
static inline __m512 bf16_x16(const uint16_t *p) {
    const __m512i widened = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(widened, 16));
}
static inline __m512 f16_x16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static inline __m512 f32_x16(const uint32_t *p) { return _mm512_loadu_ps((const float *)p); }
#endif

/* The input dtypes, read as their bits (U): to float32, and a float32 rounded to the dtype (to nearest
 * even, as c10::BFloat16 / c10::Half do; a NaN stays NaN). */
static inline float bf16_to_float(uint16_t h) { return float_of((uint32_t)h << 16); }
static inline float round_to_bf16(float f) {
    if (f != f) return float_of(0x7FC00000u);
    const uint32_t u = bits_of(f);
    return float_of(((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16) << 16);
}
static inline float f16_to_float(uint16_t h) { _Float16 f; memcpy(&f, &h, 2); return (float)f; }
static inline float round_to_f16(float f) { return (float)(_Float16)f; }
static inline float f32_to_float(uint32_t u) { return float_of(u); }
static inline float round_to_f32(float f) { return f; }

#endif
