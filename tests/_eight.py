"""Shared by the tests of --jobs and --cluster."""

from pathlib import Path

# Eight candidates (the three built-ins and five wrong ones) judged once with one job: what --jobs and
# --cluster runs must agree with (tests/test_workers.py, tests/test_cluster.py).
EIGHT = ["candidates/slow_loop.py:slow_loop", "candidates/amax_vectorized.py:amax_vectorized",
         "candidates/fused.py:fused", *(f"tests/wrong_candidates.py:{name}" for name in
                                         ("wrong_for_fp16", "mutates_input", "raises_always", "returns_none",
                                          "caches_by_shape"))]
EIGHT_ARGV = ["run", "--target", "quantize_k_cache", "--sizes", "4096", "--budget", "0.5", "--examples", "5",
              "--no-profile", *(a for spec in EIGHT for a in ("--candidate", spec))]


def verdicts_of(out: Path) -> dict[str, tuple[str, str | None]]:
    """Each candidate's verdict, and its headline timing's, in the result's order."""
    from harness.core import schema

    run = schema.load(out / "quantize_k_cache-cpu.json")
    return {c.name: (c.verdict, c.headline.verdict if c.headline else None) for c in run.candidates}


def quiet(*outs: Path) -> bool:
    """No run flagged its machine as noisy (where one was, its timing verdicts are not to be compared)."""
    from harness.core import schema

    return not any(schema.load(out / "quantize_k_cache-cpu.json").noise for out in outs)
