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
            for (int64_t i = 0; i < tile; i++) {
                const uint32_t c = codes[i];
                ot[i] = bf16_rne(e4m3_to_float(c) * scale, c, nan_bits);
            }
        }
        memcpy(o + dv, row + dv + 4 * num_tiles, (size_t)rope_bytes);
    }
}
