"""What a runner does with the one function it holds: build inputs from a case, call, time, profile, and
audit the process after each of these.  Runs in the runner process (``harness.runner.serve`` serves it over
the pipe); tests and generated regression tests also use it in-process on trusted code.

Every input is built afresh from the case (so strides, offsets and aliasing are exactly the case's) and
hashed before and after the call, so the judge can tell whether the function was handed the inputs the
judge expects and whether it wrote into them.  Results are plain data; the judge decides everything.
"""

from __future__ import annotations

import gc
from typing import Any, Callable

import torch

from harness.runner import audit, clocks
from harness.runner.audit import StateChanged
from harness.core.config import BenchConfig
from harness.runner.fresh import SCALED_DTYPES, TimingInputs, call_key
from harness.core.machine import last_level_cache_bytes
from harness.core.protocol import digest, encode_value, error_name, not_plain, tensor_crc
from harness.core.target import TIMING_FAMILY, Call, Case, Target


class Worker:
    """One function of one target on one device."""

    def __init__(self, fn: Callable[..., Any], target: Target, device: str = "cpu",
                 config: BenchConfig = BenchConfig()) -> None:
        if config.threads:
            torch.set_num_threads(config.threads)
        self.fn, self.target, self.device, self.config = fn, target, device, config
        self._clock: Any = None
        self._inputs: TimingInputs | None = None  # the prepared size's
        self._calls: list[Call] = []  # the inputs of the round placed
        self._kept: list[Any] = []  # the outputs of the last round's timed calls
        self._extra: tuple[tuple[int, int], Any] | None = None  # an output ``output_for`` computed
        self._prepared: dict[str, tuple[TimingInputs, str]] = {}  # size -> (inputs, digest), kept for reuse
        self._verified_builds: dict[str, Call] = {}  # timing size -> the build it was verified on, for ``inputs``
        self._spacer: torch.Tensor | None = None
        self._move_inputs = False
        self._placed: tuple[int, int, int] | None = None  # the (round, calls, first call) whose inputs are in place
        self._prime: Callable[[int], object] | None = None  # writes call i's input before it (within the cache)
        self._size: Case | None = None  # the prepared size
        self._cache_bytes = config.cache_bytes or last_level_cache_bytes() or (32 << 20)  # the judge's figure

    @property
    def pid(self) -> int:
        """This process: in-process timing is watched as the judge's own CPU."""
        import os

        return os.getpid()

    @property
    def clock(self) -> Any:
        if self._clock is None:  # a CUDA clock allocates its L2-flush buffer: only when timing
            self._clock = clocks.make_clock(self.device, self.config.l2_flush, self.config.cuda_graphs)
        return self._clock

    # -- verification ---------------------------------------------------------------------------
    def call(self, case: Case | None, device: str | None = None, given: Call | None = None) -> tuple[dict, list[bytes]]:
        """Call on a fresh build of ``case`` (or on the inputs the judge ``given``, e.g. another function's
        output for a round trip): the ``called`` reply (value or error, input digests before and after,
        settings changed) and the bytes of the returned tensors."""
        device = device or self.device
        call = self.target.build(case, device) if given is None else on_device(given, device)
        before_digest, before_state = digest(call.tensors()), audit.snapshot()
        reply: dict[str, Any] = {"kind": "called", "input_digest": before_digest}
        blobs: list[bytes] = []
        try:
            value = self.fn(*call.args, **call.kwargs)
            clocks.synchronize(device)
        except Exception as exc:  # a failure of the function is data, not a crash of the runner
            reply["error"] = {"type": error_name(exc), "message": str(exc)[:2000]}
        else:
            try:
                reply["value"] = encode_value(value, blobs)
            except Exception as exc:  # e.g. a tensor subclass whose bytes cannot be read
                reply["error"] = {"type": error_name(exc), "message": f"its return value cannot be sent: {exc}"[:2000]}
                blobs = []
        reply["after_digest"] = digest(call.tensors())
        reply["state_changes"] = audit.changes(before_state, audit.snapshot())
        if (case is not None and given is None and case.family == TIMING_FAMILY and device == self.device
                and reply["after_digest"] == before_digest):  # the same build the timing of this size starts from
            self._verified_builds[self._key(case)] = call
        return reply, blobs

    # -- timing ---------------------------------------------------------------------------------
    def inputs(self, size: Case) -> TimingInputs:
        """The inputs of ``size``: the target's build, from which every timed call gets fresh content (the
        build it was verified on at this size, if it was: building 118 MB again cost 0.25 s a candidate)."""
        built = self._verified_builds.pop(self._key(size), None)
        if built is None:
            return TimingInputs.build(self.target, size, self.device)
        return TimingInputs(built, self.target.fresh_timing_inputs, size.seed)

    @staticmethod
    def _key(size: Case) -> str:
        return f"{size.name}/{size.seed}/{sorted(size.params.items())}"

    def prepare(self, size: Case, fresh: bool = False, warm: bool = True, move_inputs: bool = False,
                write_allowance_s: float = 0.0) -> dict:
        """Build the timing inputs of ``size`` (once, unless ``fresh``: the baseline's runner is asked for the
        same sizes by every candidate) and warm up on the base input (unless not ``warm``: the judge has two
        runners build at the same time, then warms each up alone); the typical per-call time and the base
        input's digest.  ``move_inputs``: where the target's inputs get no fresh content, each round copies
        them to fresh memory first (see ``place``)."""
        self.release()
        self._move_inputs = move_inputs
        key = self._key(size)
        if fresh:
            self._prepared.pop(key, None)
        if key not in self._prepared:
            inputs = self.inputs(size)
            self._prepared[key] = (inputs, digest(inputs.base.tensors(), sample=True))
        self._inputs, inputs_digest = self._prepared[key]
        self._size = size
        if not warm:
            return {"per_call_s": None, "input_digest": inputs_digest}
        if self.device == "cpu":  # warm up above the largest heap shift, so no round's shift reaches fresh pages
            self._spacer = torch.ones(HEAP_SHIFT_MAX, dtype=torch.uint8)
        base = [self._inputs.base]
        per_call = audited(lambda: clocks.warm_up(self.fn, base, self.clock, self.config.warmup_max_s))
        if self.device == "cpu":  # as much heap as a round can reach beyond the warm-up's: the largest shift, a
            # round's fresh inputs, its outputs and the last round's kept ones
            calls = self.config.calls_per_round(self.target.case_bytes(size), per_call)
            reserve_heap(HEAP_SHIFT_MAX + 3 * calls * self.target.case_bytes(size))
        gc.collect()  # what is alive now out of the collector's sight: else a full collection, due every few
        gc.freeze()   # hundred rounds' inputs, cost 70-90 ms of one round's placing (torch's many objects)
        return {"per_call_s": per_call, "input_digest": inputs_digest}

    def round(self, n: int, start: int, first: int = 0) -> float:
        """Seconds per call over ``n`` calls, call ``i`` on the fresh input ``call_key(start, first + i)``;
        their outputs are kept until the next round, for ``timed_output`` and ``output_for``."""
        if self._inputs is None:
            raise RuntimeError("round before prepare")
        if self._placed != (start, n, first):
            self.place(start, n, first)
        self._kept = []

        def settled_round() -> float:
            if n > 1:  # short calls: one untimed call first (on the base, never timed) puts threads, caches and
                self.clock.time(self.fn, [self._inputs.base], 1)  # allocator back in their steady state
            return self.clock.time(self.fn, self._calls, n, keep=self._kept, prime=self._prime)

        return _plain(audited(settled_round), self._kept)

    def place(self, start: int, n: int = 1, first: int = 0) -> None:
        """Where and on what round ``start`` runs: on the CPU a new random offset for its allocations
        (``_shift_heap``); then its ``n`` inputs, each with fresh content (``fresh``), built after the shift
        so that they too land elsewhere (or, for a target whose inputs get no fresh content, the base moved
        to fresh memory if asked at ``prepare``: ``moved``).  A runner is asked for this apart from the
        round, so building them is outside the time the judge sees the round take."""
        assert self._inputs is not None
        self._spacer, self._kept, self._extra = None, [], None
        if self.device == "cpu":
            self._spacer = _shift_heap(start)
        # built while the last round's inputs still hold their memory, so these land elsewhere
        self._prime = None
        if self._inputs.mixed and self._move_inputs and n * self.target.case_bytes(self._size) > self._cache_bytes // 4:
            # within the cache, but not n inputs at once: new memory now, each input's content written just
            # before its call (``prime``), so a call finds its input in the cache as it did when timing reused
            # one input (written up front, n distinct inputs outran the cache, and the fused kernels read
            # 10-25% slower at 4,096 tokens)
            calls = [self._inputs.blank() for _ in range(n)]
            keys = [call_key(start, first + i) for i in range(n)]
            inputs = self._inputs
            self._prime = lambda i: inputs.fresh(keys[i], into=calls[i])
        elif self._inputs.mixed:
            # beyond the cache (no move asked for), the last round's memory is rewritten in place: a new
            # 118 MB allocation each round spread per-round times at 65,536 tokens 6-12% instead of 2-4%
            old = self._calls if not self._move_inputs and len(self._calls) == n else [None] * n
            calls = [self._inputs.fresh(call_key(start, first + i), into) for i, into in zip(range(n), old)]
        else:
            calls = [moved(self._inputs.base) if self._move_inputs else self._inputs.base]
        self._calls, self._placed = calls, (start, n, first)

    def timed_output(self, index: int, digest: bool = False) -> Any:
        """What timed call ``index`` of the last round returned (the judge picks which at random), or
        its ``output_digest``."""
        if not 0 <= index < len(self._kept):
            raise IndexError(f"no timed call {index} in the last round")
        return output_digest(self._kept[index]) if digest else self._kept[index]

    def output_for(self, start: int, index: int, digest: bool = False) -> Any:
        """The output (or its digest) for call ``index`` of round ``start``: the kept one if this runner's last
        round made that call (the judge has the baseline's round start at the call it will check), else an
        untimed call on the same fresh input, kept until the next round (the reference a candidate's is
        checked against)."""
        placed = self._placed
        if placed is not None and placed[0] == start and 0 <= index - placed[2] < len(self._kept):
            value = self._kept[index - placed[2]]
        elif self._extra is not None and self._extra[0] == (start, index):
            value = self._extra[1]
        else:
            assert self._inputs is not None
            call = self._inputs.fresh(call_key(start, index))
            value = self.fn(*call.args, **call.kwargs)
            clocks.synchronize(self.device)
            self._extra = ((start, index), value)
        return output_digest(value) if digest else value

    def suspend(self) -> None:
        """In-process there is no other process to stop (a runner's handle stops its process group)."""

    def release(self, foreign_cpu: float | None = None) -> None:
        self._calls, self._spacer, self._placed, self._kept, self._inputs, self._extra = [], None, None, [], None, None
        if self._clock is not None:
            self._clock.reset()

    def time_case(self, case: Case) -> float:
        """One call on ``case`` (a call that raises is timed up to its raise): the judge sends each repeat
        with another data seed, so no repeat runs on an input seen before."""
        call = self.target.build(case, self.device)
        kept: list[Any] = []
        return _plain(audited(lambda: self.clock.time(clocks.swallowing(self.fn), [call], 1, replay=False, keep=kept)), kept)

    # -- profiling ------------------------------------------------------------------------------
    def profile(self, spec: str, size: Case) -> Any:
        from harness.runner.profile import profile

        prepared = self._prepared.get(self._key(size))
        return profile(self.fn, spec, self.target, size, self.device, calls=[prepared[0].base] if prepared else None)


_heap_reserved = 0  # bytes of heap this process has faulted in for timing rounds (``reserve_heap``)


def reserve_heap(nbytes: int) -> None:
    """Fault in, once per process, ``nbytes`` of heap beyond what is in use.  The C allocator never gives
    freed heap back (``sandbox.RUNNER_ENVIRONMENT``), so what is touched here stays mapped.  Without it the
    first rounds after ``prepare`` ran on pages never touched before: at 65,536 tokens the fused
    dequantizer's first rounds took 50-95 ms a call against 3.5 ms (the kernel zeroing pages), and the slow
    loop's 130 ms against 85 ms, which took more rounds to settle."""
    global _heap_reserved
    if nbytes > _heap_reserved:
        torch.ones(nbytes, dtype=torch.uint8)  # written (every page faulted in), then freed to the heap's top
        _heap_reserved = nbytes


def audited(work: Callable[[], float]) -> float:
    """``work()``, with its threads woken first; ``StateChanged`` if it changed process state."""
    before = audit.snapshot()
    _wake_threads()
    seconds = work()
    changed = audit.changes(before, audit.snapshot())
    if changed:
        raise StateChanged(changed)
    return seconds


def _plain(seconds: float, outputs: list[Any]) -> float:
    """``seconds``, the time of timed calls that returned ``outputs``; ``TypeError`` if one is a tensor
    subclass (``protocol.not_plain``): its work could have been left for when its bytes are read, after the
    clock stopped."""
    problem = next(filter(None, map(not_plain, outputs)), None)
    if problem is not None:
        raise TypeError(f"{problem} (while timed)")
    return seconds


def called(value: Any) -> tuple[dict, list[bytes]]:
    """The ``called`` reply for a timed call's output (its inputs were the round's, not a case's: no digests)."""
    blobs: list[bytes] = []
    return ({"kind": "called", "value": encode_value(value, blobs), "input_digest": "", "after_digest": "",
             "state_changes": []}, blobs)


def output_digest(value: Any) -> str:
    """A fingerprint of a returned value, cheap enough for every round: each tensor's dtype, shape and the
    CRC-32 of its bytes in logical order (6 ms for 43 MB here, against 45 ms to send the bytes over the
    pipe).  Sent by a runner about its own output, so no stronger than the runner's word, like the bytes
    themselves; a mismatch makes the judge ask for the bytes."""
    parts: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            parts.append(f"{v.dtype}{tuple(v.shape)}:{tensor_crc(v):08x}")
        elif isinstance(v, (tuple, list)):
            parts.append(f"{type(v).__name__}[")
            for item in v:
                walk(item)
            parts.append("]")
        else:
            parts.append(f"{type(v).__name__}:{str(v)[:64]}")

    walk(value)
    return ";".join(parts)


HEAP_SHIFT_MAX = 32 << 20


def _shift_heap(round_index: int) -> torch.Tensor:
    """An unused allocation of a random size (seeded by the round) held during a round, so the function's
    outputs and temporaries land at other heap offsets, on other physical pages, in each round.  Without
    it a runner keeps one memory layout for its whole life, and two processes running the same function
    differed by a fixed few percent (per-pair A-vs-A speedups at 16,384 tokens: SD 3.0%, 0.94-1.05 over
    14 pairs; with it SD 1.3%, 0.99-1.04; benchmarks/NOTES.md).  ``prepare`` warms up while holding the
    largest shift, touched, so every page a shifted round uses was faulted in before timing (the C
    allocator keeps freed heap: MALLOC_TRIM_THRESHOLD_ in sandbox.RUNNER_ENVIRONMENT)."""
    import random

    return torch.empty(random.Random(round_index).randrange(1, HEAP_SHIFT_MAX), dtype=torch.uint8)


def moved(call: Call) -> Call:
    """``call`` with each tensor's storage copied to a fresh allocation: the same bytes, sizes, strides and
    storage offsets, and the same aliasing between arguments, at another address.  Without it a runner
    keeps its inputs where it first built them, and at sizes that fit the cache that placement alone made
    two runners of the same function differ: A-vs-A pair speedups at 4,096 tokens had SD 1.2%, range
    0.983-1.036 over 20 pairs, and one pair in 50 read 0.93x "slower"; moving them each round: SD 0.8%,
    0.973-1.003 (benchmarks/NOTES.md, "Inputs moved each round")."""
    copies: dict[tuple[int, int], torch.Tensor] = {}  # one copy per storage, so arguments sharing one still do

    def move(value: Any) -> Any:
        if (type(value) is not torch.Tensor or value.layout != torch.strided or value.dtype in SCALED_DTYPES
                or value.is_conj() or value.is_neg() or value.requires_grad):
            return value  # not a plain dense tensor: left where it is rather than rebuilt imperfectly
        storage = value.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key not in copies:
            copies[key] = torch.empty(storage.nbytes(), dtype=torch.uint8, device=value.device)
            copies[key].untyped_storage().copy_(storage)
        return torch.empty(0, dtype=value.dtype, device=value.device).set_(
            copies[key].untyped_storage(), value.storage_offset(), value.size(), value.stride())

    return call.map(move)


def on_device(call: Call, device: str) -> Call:
    """``call`` with its tensors moved to ``device``."""
    return call.map(lambda v: v.to(device) if isinstance(v, torch.Tensor) else v)


_WAKE = torch.empty(1 << 17)  # above torch's grain size: the fill runs on the thread pool


def _wake_threads() -> None:
    """Run a small parallel op just before a timed region.  This runner was stopped while the other was
    timed, and its OpenMP threads either still spin (ready at once) or sleep (~0.1 ms to wake each
    parallel region, measured here): without this, rounds fall at random into a fast and a slow mode
    (2.1 vs 3.6 ms per call of the slow loop at 4,096 tokens), where one process timing both functions
    back to back always found the threads spinning."""
    _WAKE.fill_(1.0)
