"""The terminal renderers (harness/render/console.py) at the widths people read them at: 80 (a laptop
split), 120, 140 (CI logs and pipes).  Names are never cut to ``…``; wordy columns wrap instead."""

import pytest
from rich.console import Console

from harness.core import stats
from harness.core.result import CandidateResult, Environment, RunResult, SizeTiming, Summary
from harness.render import console as tty
from harness.render.history import Saved

NAMES = ("amax_vectorized_then_fused_variant", "dequant_fused_cached_launch", "slow_loop")
SIZES = ("prod-65536", "seed-bf16-512x32x300", "quick-1x8x576")


def _timing(size: str, speedup: float) -> SizeTiming:
    s = Summary(40, 1e-3, 1.1e-3, 1.2e-3, 1e-4, 1e-5, 0.01)
    ci = (speedup * 0.97, speedup * 1.02)
    verdict = stats.decide(ci, 0.05)
    return SizeTiming(size, "", 1 << 20, 3, False, s, s, speedup, ci, verdict, 31.7, 74.9, (1e-3,) * 3, (1e-3,) * 3,
                      label=stats.label(verdict, speedup, ci, 0.05), pair_speedups=(speedup, speedup, 0.9),
                      pair_verdicts=(verdict, verdict, "inconclusive"))


def _run(when: str = "2026-12-06T10:00:00") -> RunResult:
    env = Environment("cpu", "AMD EPYC", "3.11", "2.13", None, "linux", 2, "ce51f8b", "0", "harness run", copy_gbps=42.3)
    cands = tuple(CandidateResult(name, f"candidates/{name}.py:{name}", "", "pass",
                                  timings=tuple(_timing(size, 1.0 + i) for size in SIZES))
                  for i, name in enumerate(NAMES))
    return RunResult("quantize_k_cache", "_quantize_k_cache_slow", "quant_k_cache.py", "oracle:quantize_k_cache",
                     "exact", when, env, cands)


def _rendered(width: int, draw) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))
    draw(console)
    return console.export_text()


def _undecided(run: RunResult) -> RunResult:
    """``run`` with its last candidate's last size as wordy as a timing gets: inconclusive after three pairs,
    out of budget (a real slow_loop's row cut "inconclusive" and "majority" to ``…`` at 100 columns)."""
    import dataclasses

    last = run.candidates[-1]
    t = last.timings[-1]
    t = dataclasses.replace(t, verdict="inconclusive", label="inconclusive (interval 0.92–1.05)", converged=False,
                            speedup_ci=(0.92, 1.05), pair_verdicts=("inconclusive", "faster", "slower"))
    return dataclasses.replace(run, candidates=(*run.candidates[:-1],
                                                dataclasses.replace(last, timings=(*last.timings[:-1], t))))


@pytest.mark.parametrize("width", [80, 100, 108, 120, 140])
@pytest.mark.parametrize("wordy", [False, True], ids=["decided", "undecided"])
def test_a_run_reads_whole_at_common_widths(width, wordy):
    run = _undecided(_run()) if wordy else _run()
    text = _rendered(width, lambda c: tty.render(run, c))
    assert "…" not in text
    assert all(name in text for name in NAMES) and all(size in text for size in SIZES)
    assert all(len(line) <= width for line in text.splitlines())
    if width >= 120 or width <= 80:  # the full table where it fits whole, else size, speedup, verdict, rounds
        assert ("┃ baseline ┃" in text) == (width >= 120)
    if wordy:
        assert "inconclusive" in text and "majority" in text


def test_a_run_ends_with_the_machine_it_ran_on():
    import dataclasses

    run = _run()
    run = dataclasses.replace(run, environment=dataclasses.replace(run.environment, cache_bytes=32 << 20,
                                                                   load_start=0.5, load_end=1.25))
    text = _rendered(140, lambda c: tty.render(run, c))
    assert ("machine: AMD EPYC · copy bandwidth 42.3 GB/s (measured) · last-level cache 32 MiB · 2 threads · "
            "load average 0.50 → 1.25") in text
    from harness.render import report

    assert "Copy bandwidth (measured): 42.3 GB/s · last-level cache 32 MiB" in report.markdown(run)


@pytest.mark.parametrize("width", [80, 120, 140])
def test_history_is_long_not_wide(width):
    saved = [Saved(label, _run(when)) for label, when in (("ce51f8b3", "2026-12-05T10:00:00"),
                                                           ("b1c2341+", "2026-12-06T10:00:00"))]
    text = _rendered(width, lambda c: c.print(tty.history_table(saved)))
    assert "…" not in text and "ce51f8b3" in text and "b1c2341+" in text
    assert all(name in text for name in NAMES)


def test_a_pipe_takes_its_width_from_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "90")
    assert tty.make_console().width == 90
    monkeypatch.setenv("COLUMNS", "not a number")
    assert tty.make_console().width == 140  # a log or a pipe without one


def test_progress_takes_events_from_several_threads():
    """--jobs: judge workers report from threads of their own (two "done"s once removed one step twice;
    with threads switching every microsecond, unlocked, one run in five raised KeyError)."""
    import sys
    import threading

    errors: list[BaseException] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(5):
            progress = tty.LiveProgress(Console(file=open("/dev/null", "w")))
            progress("phase", name="candidates", total=400)

            def worker(k: int) -> None:
                try:
                    for i in range(200):
                        progress("step", name=f"{k}-{i}")
                        progress("done", name=f"{k}-{i}", ok=True)
                except Exception as exc:  # noqa: BLE001 - what the test looks for
                    errors.append(exc)

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert progress.progress.tasks[0].completed == 400
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors
