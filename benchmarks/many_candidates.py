"""Write N thin wrappers over the built-in quantizer candidates to one file, for timing how a run scales
with many candidates (issue 25): `python benchmarks/many_candidates.py N PATH` prints the --candidate
arguments."""

import sys
from pathlib import Path

BUILT_INS = [("slow_loop", "candidates.slow_loop"), ("amax_vectorized", "candidates.amax_vectorized"),
             ("fused", "candidates.fused")]


def main() -> None:
    count, path = int(sys.argv[1]), Path(sys.argv[2])
    lines = [f"from {module} import {name}\n" for name, module in BUILT_INS]
    for i in range(count):
        name, _ = BUILT_INS[i % len(BUILT_INS)]
        lines.append(f"\n\ndef wrapper_{i:02d}_{name}(input_k_cache, dv=512, tile_size=128):\n"
                     f"    return {name}(input_k_cache, dv, tile_size)\n")
    path.write_text("".join(lines))
    print(" ".join(f"--candidate {path}:wrapper_{i:02d}_{BUILT_INS[i % len(BUILT_INS)][0]}" for i in range(count)))


if __name__ == "__main__":
    main()
