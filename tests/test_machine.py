"""Facts about the machine (harness/core/machine.py) and the cache as copies see it
(harness/runner/clocks.copy_reading): a virtual machine's reported cache is not taken blindly."""

from harness.core.machine import effective_cache
from harness.runner.clocks import CopyReading, copy_reading

MIB = 1 << 20


def test_a_reported_cache_stands_unless_copies_say_it_is_far_smaller():
    assert effective_cache(32 * MIB, 32 * MIB) == (32 * MIB, "as the system reports it; copies agree, fast up to 32 MiB")
    assert effective_cache(32 * MIB, 8 * MIB)[0] == 32 * MIB  # within a factor 8: the measurement is the rougher one
    cache, source = effective_cache(480 * MIB, 32 * MIB)
    assert cache == 32 * MIB and source == "the system reports 480 MiB, but copies slow down beyond 32 MiB"
    assert effective_cache(None, 8 * MIB) == (8 * MIB, "measured by copies (the system reports none)")
    assert effective_cache(None, None) == (None, "unknown")


def test_a_report_whose_half_copies_at_memory_speed_is_overruled_even_within_a_factor_8():
    """The 2-core Intel Xeon VM: 480 MiB reported, copies fast up to 64 MiB (a factor 7.5), and a working set
    of 256 MiB copies at memory speed (measured: 25.3 GB/s, 24.4 GB/s far beyond)."""
    cache, source = effective_cache(480 * MIB, 64 * MIB, half_at_memory_speed=True)
    assert cache == 64 * MIB and source == "the system reports 480 MiB, but copies slow down beyond 64 MiB"
    assert effective_cache(480 * MIB, 64 * MIB)[0] == 480 * MIB  # the knee alone is within the load margin


def xeon_vm(total: int) -> float:
    """Copy speed (GB/s) by working set as measured on that Xeon VM (benchmarks/NOTES.md)."""
    table = [(64, 49.0), (80, 39.1), (96, 32.5), (128, 27.2), (192, 25.7), (256, 25.3), (512, 24.6)]
    return next((speed for mib, speed in table if total <= mib * MIB), 24.4)


def test_the_reading_finds_the_knee_and_checks_half_the_report():
    assert copy_reading(480 * MIB, gbps=xeon_vm) == CopyReading(64 * MIB, half_reported_at_memory_speed=True)
    curve = lambda total: 100.0 if total <= 32 * MIB else 30.0  # noqa: E731 - a cache of 32 MiB, memory 30 GB/s
    assert copy_reading(32 * MIB, gbps=curve) == CopyReading(32 * MIB, half_reported_at_memory_speed=False)
    busy = lambda total: 100.0 if total <= 8 * MIB else (36.0 if total <= 16 * MIB else 30.0)  # noqa: E731
    assert copy_reading(32 * MIB, gbps=busy) == CopyReading(8 * MIB, half_reported_at_memory_speed=False)
    assert copy_reading(32 * MIB, gbps=lambda total: 30.0) == CopyReading(None, True)  # nothing fast: no knee
    assert copy_reading(None, gbps=curve) == CopyReading(32 * MIB, False)  # nothing reported, nothing to check
