"""Candidates that are right where they are verified and wrong, or fake, where they are timed (an attacker's
pass over the timing): each must fail, or at least earn no speedup it did not make."""

import gc

import torch

import oracles.kcache_reference as reference

ORIGINAL = reference.quantize_k_cache_slow


def _garbage(input_k_cache, dv=512, tile_size=128):
    """An output of the right shape and dtype, without the work: what a forger returns."""
    nb, bs, h, d = input_k_cache.shape
    return torch.zeros(nb, bs, h, dv + 4 * (dv // tile_size) + 2 * (d - dv), dtype=torch.float8_e4m3fn)


def right_only_on_small_rows(input_k_cache, dv=512, tile_size=128):
    """The oracle's answer below 4096 rows or when d != 576 (every named case), garbage on production rows."""
    nb, bs, _, d = input_k_cache.shape
    if nb * bs < 4096 or d != 576:
        return ORIGINAL(input_k_cache, dv, tile_size)
    return _garbage(input_k_cache, dv, tile_size)


def wrong_while_gc_is_off(input_k_cache, dv=512, tile_size=128):
    """The oracle's answer, except while the garbage collector is off, as it is while a runner times calls."""
    if gc.isenabled():
        return ORIGINAL(input_k_cache, dv, tile_size)
    return _garbage(input_k_cache, dv, tile_size)


_MEMO: dict = {}


def memo_by_sample(input_k_cache, dv=512, tile_size=128):
    """Correct bytes, remembered: a memo keyed on a 4096-element sample of the input.  Timing inputs reused
    across calls would make it look ~10x faster than the function it computes."""
    flat = input_k_cache.reshape(-1)
    key = (tuple(input_k_cache.shape), dv, tile_size,
           flat[:: max(1, flat.numel() // 4096)][:4096].float().sum().item(), flat[:64].float().sum().item())
    if key not in _MEMO:
        _MEMO[key] = ORIGINAL(input_k_cache, dv, tile_size)
    return _MEMO[key].clone()


def oracle_again(input_k_cache, dv=512, tile_size=128):
    """The unchanged oracle as a candidate: the control, which must read "no significant difference"."""
    return ORIGINAL(input_k_cache, dv, tile_size)


class Deferred(torch.Tensor):
    """A tensor whose content is computed only when a torch function first looks at it (an attacker's pass,
    2026-12-07): the runner reading its bytes after the clock stopped would have done the work, untimed."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        def real(a):
            return a._compute() if isinstance(a, Deferred) else a

        with torch._C.DisableTorchFunctionSubclass():
            return func(*[real(a) for a in args], **{k: real(v) for k, v in (kwargs or {}).items()})

    def _compute(self):
        with torch._C.DisableTorchFunctionSubclass():
            plain = self.as_subclass(torch.Tensor)
            source = self.__dict__.pop("source", None)
            if source is not None:
                plain.copy_(ORIGINAL(*source))
            return plain


def _deferred(input_k_cache, dv, tile_size):
    out = torch.Tensor._make_subclass(Deferred, _garbage(input_k_cache, dv, tile_size), False)
    out.source = (input_k_cache.clone(), dv, tile_size)
    return out


def deferred_always(input_k_cache, dv=512, tile_size=128):
    """The oracle's answer, computed only when its bytes are read."""
    return _deferred(input_k_cache, dv, tile_size)


def deferred_while_gc_is_off(input_k_cache, dv=512, tile_size=128):
    """A plain answer where verified, a deferred one while timed."""
    if gc.isenabled():
        return ORIGINAL(input_k_cache, dv, tile_size)
    return _deferred(input_k_cache, dv, tile_size)


def _patch_the_runner():
    """In its own runner (an attacker's pass, 2026-12-07): the harness's ``Worker`` patched so that placing a
    round's inputs also computes their answers, and the round itself only waits a tenth of that time and
    reports it, handing back the real answers (so the checked call agrees).  Sleeping uses no CPU, so the
    round's CPU check passes; placing is where the work shows."""
    import time

    try:
        import harness.runner.worker as runner_worker
    except ImportError:
        return
    place = runner_worker.Worker.place

    def placed(self, start, n=1, first=0):
        place(self, start, n, first)
        began, answers = time.perf_counter(), []
        for i in range(n):
            if self._prime is not None:
                self._prime(i)
            call = self._calls[i % len(self._calls)]
            answers.append(ORIGINAL(*call.args, **call.kwargs))
        self._prime = None
        self._ahead = (answers, (time.perf_counter() - began) / n)

    def round(self, n, start, first=0):
        if self._placed != (start, n, first):
            self.place(start, n, first)
        answers, seconds = self._ahead
        time.sleep(seconds / 10 * (n + 1))
        self._kept = list(answers)
        self.clock.written_s = 0.0
        return seconds / 10

    runner_worker.Worker.place, runner_worker.Worker.round = placed, round


def answers_computed_while_placed(input_k_cache, dv=512, tile_size=128):
    """The oracle; its runner patched on first call (``_patch_the_runner``)."""
    if not getattr(answers_computed_while_placed, "patched", False):
        answers_computed_while_placed.patched = True
        _patch_the_runner()
    return ORIGINAL(input_k_cache, dv, tile_size)


def _divide_case_times() -> None:
    """Patch this runner's ``Worker.time_case`` to report a twentieth of each single call's time."""
    try:
        import harness.runner.worker as runner_worker
    except ImportError:
        return
    honest = runner_worker.Worker.time_case
    runner_worker.Worker.time_case = lambda self, case: honest(self, case) / 20


def case_times_divided(input_k_cache, dv=512, tile_size=128):
    """The oracle; its runner reports each regression case's single-call time divided by 20 (patched on
    first call), which an attacker's pass showed as "# 115μs -> 5.75μs (1.9e+03% faster)"."""
    if not getattr(case_times_divided, "patched", False):
        case_times_divided.patched = True
        _divide_case_times()
    return ORIGINAL(input_k_cache, dv, tile_size)
