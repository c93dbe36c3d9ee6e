"""Check that the upstream-style Triton kernel and its torch twin write the same bytes, then show how both
differ from the oracle on production input.

    python examples/check_twin.py                 # CPU: the kernel in Triton's interpreter
    python examples/check_twin.py --device cuda   # GPU: the kernel compiled, both float32 -> e4m3 paths

On the CPU this sets TRITON_INTERPRET=1 itself (before importing triton), and the kernel uses its integer
e4m3 encoder (the interpreter's conversion does not round to nearest even).  On CUDA it checks both the
conversion instruction and the integer encoder against the twin.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ARGS.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
ARGS.add_argument("--tokens", type=int, default=2048, help="tokens of each production input (default 2048)")
DEVICE = ARGS.parse_args().device if __name__ == "__main__" else "cpu"
if DEVICE == "cpu":
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton
    # numpy's warnings for the interpreted 1/0 and 0*inf, which the kernel means to compute
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"triton\.runtime\.interpreter")

import torch  # noqa: E402

sys.path.insert(0, str(HERE.parent))  # the repository root: harness, oracles
from harness.runner.load import load  # noqa: E402
from oracles.kcache_reference import FP8, KCacheLayout, quantize_k_cache_slow  # noqa: E402

Quantizer = Callable[..., torch.Tensor]
BS = 64  # tokens per block


def production(name: str, tokens: int, gen: torch.Generator) -> torch.Tensor:
    """(tokens // 64, 64, 1, 576) bfloat16 of one value family (every tile of it, unless said)."""
    shape = (max(1, tokens // BS), BS, 1, 576)
    x = torch.randn(shape, generator=gen)
    tiles = x[..., :512].unflatten(-1, (4, 128))  # a view: writes go to x
    pick = torch.rand(tiles.shape[:-1], generator=gen).unsqueeze(-1)  # one draw per tile
    if name == "ones":
        x.fill_(1.0)
    elif name == "zero_tiles":  # about a third of the tiles, -0.0 and +0.0
        tiles.mul_(torch.where(pick < 0.33, 0.0, 1.0)).mul_(torch.where(pick < 0.15, -1.0, 1.0))
    elif name == "subnormal_tiles":  # about a third all bf16 subnormal (< 2^-126), some with zeros
        tiles.copy_(torch.where(pick < 0.33, tiles * 1e-39, tiles))
        tiles[..., ::17].mul_(torch.where(pick < 0.2, 0.0, 1.0))
    elif name == "tiny_tiles":  # normal bf16, but amax / 448 below 2^-128: the reciprocal overflows
        tiles.copy_(torch.where(pick < 0.33, tiles * 1e-37, tiles))
    elif name == "huge":  # up to the bf16 range; a few infinities
        x.mul_(1e37)
        x.view(-1)[:: 9973] = float("inf")
    elif name == "nan_element":  # one NaN in about a third of the tiles
        tiles[..., 5].copy_(torch.where(pick[..., 0] < 0.33, float("nan"), tiles[..., 5]))
    return x.to(torch.bfloat16)


def same_bytes(a: torch.Tensor, b: torch.Tensor) -> tuple[bool, int]:
    ua, ub = a.view(torch.uint8).cpu(), b.view(torch.uint8).cpu()
    return a.shape == b.shape and torch.equal(ua, ub), int((ua != ub).sum()) if a.shape == b.shape else -1


def ordered(codes: torch.Tensor) -> torch.Tensor:
    """e4m3 codes on a line: neighbouring finite values one apart, +0 and -0 both 0."""
    magnitude = (codes & 0x7F).to(torch.int32)
    return torch.where(codes >= 0x80, -magnitude, magnitude)


def check_twin(kernel: Quantizer, twin: Quantizer, tokens: int, **launch: object) -> int:
    gen = torch.Generator().manual_seed(0)
    families = ("randn", "ones", "zero_tiles", "subnormal_tiles", "tiny_tiles", "huge", "nan_element")
    checked = 0
    for name in families:
        x = production(name, tokens, gen)
        expected = twin(x)
        got = kernel(x.to(DEVICE), **launch)
        ok, differ = same_bytes(got, expected)
        assert ok, f"{name}: kernel and twin differ in {differ} bytes"
        checked += x.shape[0] * x.shape[1]
    # padded rows (the view accepts them, the kernel reads through the strides); a partial last program
    x = torch.randn(3, 37, 1, 580, generator=gen).to(torch.bfloat16)[..., 2:578]
    ok, differ = same_bytes(kernel(x.to(DEVICE), **launch), twin(x))
    assert ok, f"padded rows: kernel and twin differ in {differ} bytes"
    for bad in (x.transpose(0, 1), x.float(), x[..., :544]):  # view fails / outside the domain: same error
        errors = []
        for fn in (kernel, twin):
            try:
                fn(bad.to(DEVICE))
                errors.append(None)
            except (AssertionError, RuntimeError) as exc:
                errors.append((type(exc), str(exc) if isinstance(exc, AssertionError) else ""))
        assert errors[0] is not None and errors[0] == errors[1], errors
    return checked + x.shape[0] * x.shape[1]


def versus_oracle(twin: Quantizer, tokens: int) -> list[str]:
    """How the upstream-style arithmetic differs from the oracle on randn input and on a zero tile."""
    x = production("randn", tokens, torch.Generator().manual_seed(1)).to(DEVICE)
    layout = KCacheLayout.of(x, 512, 128)
    codes_u, scales_u, _ = layout.split(twin(x))
    codes_o, scales_o, _ = layout.split(quantize_k_cache_slow(x))
    distance = (ordered(codes_u) - ordered(codes_o)).abs()
    hist = {int(k): int(v) for k, v in zip(*torch.unique(distance[distance > 0], return_counts=True))}
    rel = ((scales_u.double() - scales_o.double()).abs() / scales_o.double()).max().item()
    zero = torch.zeros(1, 1, 1, 576, dtype=torch.bfloat16, device=DEVICE)
    zu, zs, _ = layout.split(twin(zero))
    zo, zso, _ = layout.split(quantize_k_cache_slow(zero))
    fmt = lambda c: f"0x{int(c):02X} ({c.view(FP8).float().item():g})"  # noqa: E731
    return [
        f"vs oracle, randn {codes_u.shape[0]} tokens on {DEVICE}: {int((distance > 0).sum())} of {distance.numel()} "
        f"codes differ ({(distance > 0).float().mean().item():.2%}), code distance histogram {hist}",
        f"vs oracle, scales: max relative difference {rel:.5f} (float32 amax/448 vs bf16-rounded)",
        f"vs oracle, zero tile: codes {fmt(zu[0, 0])} vs {fmt(zo[0, 0])}, scale {zs[0, 0].item():g} vs "
        f"{zso[0, 0].item():g}; all codes alike: {bool((zu == zu[0, 0]).all())} / {bool((zo == zo[0, 0]).all())}",
    ]


def main() -> int:
    args = ARGS.parse_args()
    kernel = load(f"{HERE / 'upstream_quant_triton.py'}:quantize").function
    twin = load(f"{HERE / 'upstream_quant_torch.py'}:quantize").function
    if DEVICE == "cuda":
        n = check_twin(kernel, twin, args.tokens, hw_cvt=True)
        check_twin(kernel, twin, args.tokens, hw_cvt=False)
        mode = "compiled, conversion instruction and integer encoder"
    else:
        n = check_twin(kernel, twin, args.tokens)
        mode = "TRITON_INTERPRET=1, integer encoder"
    print(f"ok  Triton kernel == torch twin, byte for byte: 7 production value families + padded rows, "
          f"{n} tokens ({mode}); same errors for a transposed view, float32, d=544")
    for line in versus_oracle(twin, args.tokens):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
