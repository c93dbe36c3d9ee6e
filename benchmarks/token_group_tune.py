"""The token-group Triton kernel's launch configurations on this GPU: each checked bit-exact against the
oracle, then timed with CUDA events (median of triton.testing.do_bench) at 128, 4,096 and 16,384 tokens of
7,168 bfloat16 values; prints time, GB/s and % of the measured copy bandwidth.

    PYTHONPATH=. python benchmarks/token_group_tune.py
"""

import itertools

import torch
import triton

from candidates import _token_group_triton as kernel
from oracles.token_group_reference import EPS, FP8, per_token_group_quant_fp8_slow as oracle

HIDDEN, GROUP = 7168, 128


def copy_gbps() -> float:
    src = torch.ones(1 << 29, device="cuda")
    dst = torch.empty_like(src)
    ms = triton.testing.do_bench(lambda: dst.copy_(src), return_mode="median")
    return 2 * src.numel() * 4 / (ms * 1e-3) / 1e9


def main() -> None:
    print(torch.cuda.get_device_name(), f"copy {copy_gbps():.0f} GB/s")
    copy = copy_gbps()
    for tokens in (128, 4096, 16384):
        x = torch.randn(tokens, HIDDEN, device="cuda").to(torch.bfloat16)
        expected = oracle(x, GROUP)
        nbytes = x.numel() * 2 + x.numel() + tokens * (HIDDEN // GROUP) * 4
        for per, warps in itertools.product((1, 2, 4, 8, 16), (1, 2, 4, 8)):
            codes = torch.empty(x.shape, dtype=FP8, device="cuda")
            scales = torch.empty(tokens, HIDDEN // GROUP, device="cuda")
            kernel.quantize(x, GROUP, EPS, codes, scales, per, warps)
            exact = torch.equal(codes.view(torch.uint8), expected[0].view(torch.uint8)) and torch.equal(scales, expected[1])
            ms = triton.testing.do_bench(lambda: kernel.quantize(x, GROUP, EPS, codes, scales, per, warps),
                                         return_mode="median")
            gbps = nbytes / (ms * 1e-3) / 1e9
            print(f"tokens {tokens:6d} groups/program {per:2d} warps {warps}: {ms * 1e3:8.2f} us {gbps:7.0f} GB/s "
                  f"{100 * gbps / copy:5.1f}% {'exact' if exact else 'DIFFERS'}")


if __name__ == "__main__":
    main()
