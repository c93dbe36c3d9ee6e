/* The per-token-group FP8 quantizer for the CPU: one pass over each group, bit-exact with the oracle's
 * torch arithmetic on the CPU (docs/token-group-quantizer.md).
 *
 * Per token and group of G values: amax = max |x| in float32 (an integer max on the magnitudes' bits, which
 * vectorises; the target's value families hold no NaN), clamped below at eps; scale = amax / 448.0f;
 * code = clamp(x / scale, -448, 448) in IEEE float32 (no fast-math, no contraction), rounded to e4m3fn to
 * nearest even by the conversion the fused K-cache kernel shares (_fp8_cpu.h; after the clamp no value
 * needs saturating).  Parallel over tokens with OpenMP; the codes, a large fresh output, advised as huge
 * pages first (_cpu_common.h); compiled on first use by _token_group_cpu.py.
 */
#include "_fp8_cpu.h"

#define DEFINE_GROUPS(NAME, U, LOAD)                                                                    \
void NAME(const U *x, int64_t tokens, int64_t hidden, int64_t group, uint8_t *codes, float *scales,    \
          float eps, int nthreads) {                                                                    \
    const int64_t groups = hidden / group;                                                              \
    advise_huge_pages(codes, (size_t)(tokens * hidden));                                                \
    _Pragma("omp parallel for schedule(static) num_threads(nthreads)")                                  \
    for (int64_t t = 0; t < tokens; t++) {                                                              \
        for (int64_t g = 0; g < groups; g++) {                                                          \
            const U *xg = x + t * hidden + g * group;                                                   \
            uint8_t *cg = codes + t * hidden + g * group;                                               \
            uint32_t amax_bits = 0;                                                                     \
            for (int64_t i = 0; i < group; i++) {                                                       \
                const uint32_t a = bits_of(LOAD(xg[i])) & 0x7FFFFFFFu;                                  \
                amax_bits = a > amax_bits ? a : amax_bits;                                              \
            }                                                                                           \
            const float amax = float_of(amax_bits) < eps ? eps : float_of(amax_bits);                   \
            const float scale = amax / 448.0f;                                                          \
            scales[t * groups + g] = scale;                                                             \
            for (int64_t i = 0; i < group; i++) {                                                       \
                float q = LOAD(xg[i]) / scale;                                                          \
                q = q < -448.0f ? -448.0f : (q > 448.0f ? 448.0f : q);                                  \
                cg[i] = (uint8_t)e4m3_from_float(q, 1, 1);                                              \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
}

DEFINE_GROUPS(token_groups_bf16, uint16_t, bf16_to_float)
DEFINE_GROUPS(token_groups_f16, uint16_t, f16_to_float)
DEFINE_GROUPS(token_groups_f32, uint32_t, f32_to_float)
