/* What the quantizers' CPU kernels share (besides _cpu_common.h): a branch-free select, torch's float32 ->
 * e4m3fn conversion and the input dtypes read as their bits.  Included by _fused_cpu.c and
 * _token_group_cpu.c (candidates/_cbuild.py hashes this file with each source, so a change rebuilds both). */
#ifndef HARNESS_FP8_CPU_H
#define HARNESS_FP8_CPU_H
#include <math.h>
#include "_cpu_common.h"

/* cond ? a : b with a mask, not a branch (gcc's if-conversion gave up on the ternaries) */
static inline uint32_t select(int cond, uint32_t a, uint32_t b) {
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
    const uint32_t code = select(mag < (121u << 23), subnormal, normal);
    uint32_t capped;
    if (sat_finite && sat_inf)
        capped = select(mag > 0x7F800000u, 0x7Fu, umin(code, 0x7Eu));
    else if (!sat_finite && !sat_inf)
        capped = umin(code, 0x7Fu);
    else
        capped = select(mag > 0x7F800000u, 0x7Fu,
                        select(code > 0x7Eu, select(mag == 0x7F800000u, sat_inf ? 0x7Eu : 0x7Fu,
                                                    sat_finite ? 0x7Eu : 0x7Fu), code));
    return capped | ((bits >> 24) & 0x80u);
}

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
