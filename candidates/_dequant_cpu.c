/* The fused dequantizer for the CPU: one pass over the packed rows, bit-exact with the oracle on the CPU.
 *
 * Per token: each tile's float32 scale is read once (memcpy: rows need not be 4-byte aligned in memory),
 * each code is widened to float32 exactly as torch does (e4m3fn: 0x7F / 0xFF are NaN, exponent 0 holds
 * the subnormals m * 2^-9), multiplied by the scale in IEEE float32 (no fast-math, no contraction, no
 * flush-to-zero: the library sets no MXCSR flags), and rounded to bfloat16 to nearest even with the
 * integer rounding torch's kernels use; a NaN product is written as the caller's nan_bits (torch's
 * spelling, probed once: candidates/_dequant.py).  The rope bytes are copied.  Written without branches
 * in the inner loop so the compiler vectorises it (faster than a 256-entry table: no gathers); parallel
 * over tokens with OpenMP.  A large output is first advised to the kernel as huge pages: it is fresh
 * memory, whose first touch otherwise costs a page fault per 4 KiB (at 65,536 production tokens on 2
 * cores: 22 ms a call with 4 KiB pages, 6.5 ms with huge pages, 2.6 ms into memory already touched).
 * Compiled on first use by candidates/_dequant_cpu.py (through candidates/_cbuild.py).
 */
#include <math.h>
#include "_cpu_common.h"

/* e4m3fn -> float32, exact.  Normal codes: exponent e + (127 - 7), mantissa m << 20; subnormal codes
 * (exponent field 0): m * 2^-9, exact in float32.  The NaN codes are told apart by the caller. */
static inline float e4m3_to_float(uint32_t code) {
    const uint32_t mag = code & 0x7Fu;
    const uint32_t normal = (mag << 20) + (120u << 23);
    const uint32_t subnormal = bits_of((float)(int32_t)mag * 0x1p-9f);
    const uint32_t is_subnormal = 0u - (uint32_t)(mag < 8u);  /* all ones or zero: no branch */
    return float_of((subnormal & is_subnormal) | (normal & ~is_subnormal) | ((code & 0x80u) << 24));
}

/* float32 -> bfloat16 bits, round to nearest even (overflow rounds to infinity); a NaN code or a NaN
 * product (NaN or infinite scale, NaN code) gives nan_bits. */
static inline uint16_t bf16_rne(float f, uint32_t code, uint16_t nan_bits) {
    const uint32_t u = bits_of(f);
    const uint16_t rounded = (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    const int is_nan = ((code & 0x7Fu) == 0x7Fu) | ((u & 0x7FFFFFFFu) > 0x7F800000u);
    return is_nan ? nan_bits : rounded;
}

/* 32 codes of a tile at once where AVX-512 (F and BW) is there, for a finite scale below 2^119.  An e4m3fn
 * code's bits moved into a float16's (sign to bit 15, the rest to bits 7-13: f16 = (s, 0eeee, mmm0000000))
 * are the code's value / 256 exactly, subnormal codes included (float16 subnormals carry the same
 * m * 2^-9 / 256); widened to float32 (exact) and multiplied by scale * 256 (exact below 2^119), the
 * product is the same real number as code * scale, so its one float32 rounding is the same.  A finite
 * scale gives a NaN product only for a NaN code.  The bfloat16 rounding as bf16_rne's. */
#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define HARNESS_DEQUANT_X32 1
static inline __m256i bf16_rne_x16(__m512 product, __mmask16 nan, uint16_t nan_bits) {
    const __m512i u = _mm512_castps_si512(product);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), odd), 16);
    return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, _mm512_set1_epi32(nan_bits)));
}
static inline void dequant_x32(const uint8_t *codes, uint16_t *out, __m512 scale256, uint16_t nan_bits) {
    const __m512i c = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)codes));
    const __m512i f16 = _mm512_and_si512(_mm512_srai_epi16(_mm512_slli_epi16(c, 8), 1), _mm512_set1_epi16(0xBFFF));
    const __mmask32 nan = _mm512_cmpeq_epi16_mask(_mm512_and_si512(c, _mm512_set1_epi16(0x7F)),
                                                  _mm512_set1_epi16(0x7F));
    const __m512 lo = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(f16)), scale256);
    const __m512 hi = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(f16, 1)), scale256);
    _mm256_storeu_si256((__m256i *)out, bf16_rne_x16(lo, (__mmask16)nan, nan_bits));
    _mm256_storeu_si256((__m256i *)(out + 16), bf16_rne_x16(hi, (__mmask16)(nan >> 16), nan_bits));
}
#endif

void dequantize(const uint8_t *in, int64_t num_blocks, int64_t block_size, int64_t block_stride,
                int64_t token_stride, uint16_t *out, int64_t d, int64_t dv, int64_t tile, uint16_t nan_bits,
                int nthreads) {
    const int64_t num_tiles = dv / tile, n_tokens = num_blocks * block_size;
    const int64_t rope_bytes = 2 * (d - dv);
    advise_huge_pages(out, (size_t)(n_tokens * d) * 2);
    _Pragma("omp parallel for schedule(static) num_threads(nthreads)")
    for (int64_t t = 0; t < n_tokens; t++) {
        const uint8_t *row = in + (t / block_size) * block_stride + (t % block_size) * token_stride;
        uint16_t *o = out + t * d;
        for (int64_t k = 0; k < num_tiles; k++) {
            float scale;
            memcpy(&scale, row + dv + 4 * k, 4);
            const uint8_t *codes = row + k * tile;
            uint16_t *ot = o + k * tile;
            int64_t i = 0;
#ifdef HARNESS_DEQUANT_X32
            if (fabsf(scale) < 0x1p119f)  /* false for NaN and infinite scales: those go one by one */
                for (; i + 32 <= tile; i += 32)
                    dequant_x32(codes + i, ot + i, _mm512_set1_ps(scale * 256.0f), nan_bits);
#endif
            for (; i < tile; i++) {
                const uint32_t c = codes[i];
                ot[i] = bf16_rne(e4m3_to_float(c) * scale, c, nan_bits);
            }
        }
        memcpy(o + dv, row + dv + 4 * num_tiles, (size_t)rope_bytes);
    }
}
