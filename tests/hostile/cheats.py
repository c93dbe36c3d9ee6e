"""Candidates that try to change the verdict from inside their own process, or to damage the judge's pipe.
Each must get the verdict its arithmetic or behaviour earns, whatever it does to its process."""

import os
import subprocess
import sys

import torch

import oracles._kcache_compare as comparison
import oracles.kcache_reference as reference
from harness.core.target import Comparison
from oracles.quantize_k_cache import TARGET
from tests.wrong_candidates import float32_scale

ORIGINAL = reference.quantize_k_cache_slow


def rebinds_oracle_on_first_call(input_k_cache, dv=512, tile_size=128):
    """Wrong arithmetic; on its first call it makes the oracle compute the same wrong arithmetic."""
    reference.quantize_k_cache_slow = rebinds_oracle_on_first_call
    TARGET.oracle = rebinds_oracle_on_first_call
    type(TARGET).oracle = staticmethod(rebinds_oracle_on_first_call)
    return float32_scale(input_k_cache, dv, tile_size)


def patches_comparison(input_k_cache, dv=512, tile_size=128):
    """Wrong arithmetic; makes every comparison it can reach say 'identical'."""
    comparison.compare = lambda *args, **kwargs: Comparison.passed()
    type(TARGET).compare = lambda self, *args, **kwargs: Comparison.passed()
    return float32_scale(input_k_cache, dv, tile_size)


def flips_flush_denormal(input_k_cache, dv=512, tile_size=128):
    """The oracle's arithmetic with flush-to-zero turned on for the whole process (a real CPU speed trick)."""
    torch.set_flush_denormal(True)
    return ORIGINAL(input_k_cache, dv, tile_size)


def leaves_one_thread(input_k_cache, dv=512, tile_size=128):
    """The oracle's arithmetic, leaving the process with one torch thread."""
    out = ORIGINAL(input_k_cache, dv, tile_size)
    torch.set_num_threads(1)
    return out


def writes_garbage(input_k_cache, dv=512, tile_size=128):
    """The oracle's arithmetic, after writing garbage to the runner's end of the pipe to the judge."""
    os.write(int(sys.argv[-1]), b"\x00garbage that is not a frame" * 10)
    return ORIGINAL(input_k_cache, dv, tile_size)


def leaves_a_process(input_k_cache, dv=512, tile_size=128):
    """The oracle's arithmetic; starts a detached process that would rewrite a file long after the run."""
    if not getattr(leaves_a_process, "started", False):
        leaves_a_process.started = True
        marker = os.environ["HOSTILE_MARKER"]
        child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(600); open({marker!r}, 'w').write('late')"],
                                 start_new_session=True)
        with open(marker + ".pid", "w") as handle:
            handle.write(str(child.pid))
    return ORIGINAL(input_k_cache, dv, tile_size)


class _Quantizer:
    """A correct candidate in an unusual style: a callable object, computing the tiles all at once."""

    def __call__(self, input_k_cache, dv=512, tile_size=128):
        return ORIGINAL(input_k_cache, dv, tile_size)


unusual_but_correct = _Quantizer()


def forges_its_timings(input_k_cache, dv=512, tile_size=128):
    """The oracle's arithmetic; makes its runner report every timing round at a tenth of what it measured."""
    from harness.runner.worker import Worker

    if not getattr(Worker.round, "forged", False):
        honest = Worker.round

        def halved(self, n, start, first=0):
            return honest(self, n, start, first) / 10

        halved.forged = True
        Worker.round = halved
    return ORIGINAL(input_k_cache, dv, tile_size)
