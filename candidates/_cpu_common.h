/* What every CPU kernel of the candidates shares: float bits, huge-page advice for a large fresh output and
 * prefetching the rows ahead.
 * Included by _fp8_cpu.h (the quantizers) and _dequant_cpu.c (candidates/_cbuild.py hashes every header
 * here with each source, so a change rebuilds them all). */
#ifndef HARNESS_CPU_COMMON_H
#define HARNESS_CPU_COMMON_H
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

static inline uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* A large output is advised to the kernel as huge pages before it is written: where it is fresh memory (a
 * plain process: glibc mmaps large blocks and returns them on free) each 4 KiB page otherwise costs a fault
 * on first touch (at 65,536 production tokens on 2 cores: the dequantizer 22 ms a call with 4 KiB pages,
 * 6.5 ms with huge pages, 2.6 ms into memory already touched; the quantizer 16 ms with 4 KiB pages, 3.6 ms
 * into memory already touched).  Advice only: heap memory already touched is left as it is. */
static inline void advise_huge_pages(void *p, size_t n) {
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)1 << 21;
    const uintptr_t start = ((uintptr_t)p + huge - 1) & ~(huge - 1), end = ((uintptr_t)p + n) & ~(huge - 1);
    if (end >= start + 2 * huge) (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)p; (void)n;
#endif
}

/* The input rows a kernel reads next, asked into the caches ahead of use (every 64-byte line of `bytes`
 * from p).  Each row's work is a chain (its amax, then its scale, then its codes), and the hardware's own
 * prefetchers keep too few lines in flight.  On a 2-core Intel Xeon VM, the fused quantizer at 65,536
 * tokens (benchmarks/kernel_ab.py, both builds interleaved, 2 threads): 3-4% less time with rows 1, 2 or 4
 * ahead (once 14%: 6.68 -> 5.74 ms), none with 8.  Used by _fused_cpu.c. */
#ifndef PREFETCH_ROWS_AHEAD
#define PREFETCH_ROWS_AHEAD 2
#endif
static inline void prefetch_lines(const void *p, int64_t bytes) {
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch((const char *)p + b, 0, 3);
}

#endif
