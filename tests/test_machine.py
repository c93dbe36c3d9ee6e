"""Facts about the machine (harness/core/machine.py) and the cache as copies see it
(harness/runner/clocks.copy_knee_bytes): a virtual machine's reported cache is not taken blindly."""

from harness.core.machine import effective_cache
from harness.runner.clocks import copy_knee_bytes

MIB = 1 << 20


def test_a_reported_cache_stands_unless_copies_say_it_is_far_smaller():
    assert effective_cache(32 * MIB, 32 * MIB) == (32 * MIB, "as the system reports it; copies agree, fast up to 32 MiB")
    assert effective_cache(32 * MIB, 8 * MIB)[0] == 32 * MIB  # within a factor 8: the measurement is the rougher one
    cache, source = effective_cache(480 * MIB, 32 * MIB)
    assert cache == 32 * MIB and source == "the system reports 480 MiB, but copies slow down beyond 32 MiB"
    assert effective_cache(None, 8 * MIB) == (8 * MIB, "measured by copies (the system reports none)")
    assert effective_cache(None, None) == (None, "unknown")


def test_the_knee_is_the_largest_working_set_that_still_copies_fast():
    curve = lambda total: 100.0 if total <= 32 * MIB else 30.0  # noqa: E731 - a cache of 32 MiB, memory 30 GB/s
    assert copy_knee_bytes(480 * MIB, gbps=curve) == 32 * MIB
    assert copy_knee_bytes(32 * MIB, gbps=lambda total: 30.0) is None  # nothing faster than memory: no knee
