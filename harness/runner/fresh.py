"""Timing inputs with fresh content for every timed call.  Runs in the runners, which build and time them,
and in the judge, which rebuilds one when a timed call's output must be checked against the oracle.

A function that remembers answers (a memo keyed on a sample of its input, or on a hash of each block)
would look many times faster if it were timed on inputs it had seen before: rotating among a few input
sets is not enough, since every set comes back every few calls.  Building a new input from the target for
every call is too slow (0.4 s per 118 MB input here), so a size's ``TimingInputs`` builds the target's
input once (``base``), a *donor* (the same storage's elements in reverse order) and a random mask, and
derives the input of call ``key`` by taking each element from the base or from the donor, as the mask,
shifted by an amount derived from the key, says.  Every element of a derived input is an element of a
valid input at the same position of another row (rows: the storage's elements in runs of the tensor's
last dimension), so each column keeps its kind of data — a packed field's high byte stays that field's
high byte — and its distribution: no NaNs or denormals appear that the base did not have (mixing across
columns made a packed-bytes target's float32 fields from random bytes, denormal ones among them, 100x
slower to multiply).  A target whose inputs are valid element by element in this sense (values, packed
fields; not sorted arrays or permutations) keeps ``Target.fresh_timing_inputs`` (the default); one that
cannot opts out, and then its timing inputs are the base alone.

Keys: the judge names round ``r``'s call ``i`` as ``call_key(r, i)``; both runners of a pair derive the
same inputs from the same base (whose digest the judge compares), so a call's output can be checked
against the baseline's output for the same key, and the judge can rebuild the input of any key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from harness.core.target import Call, Case, Target

# integer dtypes whose tensors also carry a scale and zero point, which a bare storage copy would lose
SCALED_DTYPES = {getattr(torch, name) for name in ("qint8", "quint8", "qint32", "quint4x2", "quint2x4") if hasattr(torch, name)}
WINDOW = 1 << 20  # mask elements per chunk; the mask holds twice as many, and each chunk reads a window of it
_INT_BY_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}  # same bits, as integers the XOR mix takes


def call_key(round_index: int, call_index: int) -> int:
    """The key of call ``call_index`` of round ``round_index`` (0 is the base: warm-up and settling calls)."""
    return 1 + round_index * 1_000_003 + call_index


def _shift(key: int, chunk: int) -> int:
    return (key * 2_654_435_761 + chunk * 40_503) % WINDOW


def _elements(storage: torch.UntypedStorage, itemsize: int, device: torch.device) -> torch.Tensor:
    """A storage's bytes as a 1-D tensor of integers of ``itemsize`` bytes (bytes if they do not divide)."""
    raw = torch.empty(0, dtype=torch.uint8, device=device).set_(storage)
    dtype = _INT_BY_SIZE.get(itemsize, torch.uint8) if storage.nbytes() % itemsize == 0 else torch.uint8
    return raw if dtype == torch.uint8 else raw.view(dtype)


@dataclass
class _Storage:
    base: torch.Tensor  # the base storage's elements, as integers of their size
    diff: torch.Tensor  # base XOR donor (the donor: the same rows in reverse order)


class TimingInputs:
    """The inputs of one timing size: ``base`` (what the target built), and ``fresh(key)`` for timed calls."""

    def __init__(self, base: Call, enabled: bool = True, seed: int = 0) -> None:
        self.base = base
        self._storages: dict[tuple[int, int], _Storage] = {}
        self._masks: dict[torch.dtype, torch.Tensor] = {}  # per element type: 0 or all ones, 2 * WINDOW long
        self._seed = seed
        for t in base.tensors() if enabled else ():
            if not _mixable(t):
                continue
            storage = t.untyped_storage()
            key = (storage.data_ptr(), storage.nbytes())
            if key not in self._storages:
                elements = _elements(storage, t.element_size(), t.device)
                width = t.size(-1) if t.dim() and t.size(-1) and len(elements) % t.size(-1) == 0 else 1
                donor = elements.view(-1, width).flip(0).reshape(-1)
                self._storages[key] = _Storage(elements, elements ^ donor)
        for storage in self._storages.values():  # the masks now, at prepare: built on first use, they made the
            self._mask(storage.base)               # first round's placing 5-10 ms dearer than the rest

    @classmethod
    def build(cls, target: Target, size: Case, device: str) -> "TimingInputs":
        return cls(target.build(size, device), target.fresh_timing_inputs, size.seed)

    @property
    def mixed(self) -> bool:
        """Whether timed calls get fresh content (False: the target opted out, or has no tensor to mix)."""
        return bool(self._storages)

    def fresh(self, key: int, into: Call | None = None) -> Call:
        """The input of call ``key``: new storages, each element from the base or the donor; the same sizes,
        strides, offsets and aliasing as the base.  Key 0 (and a target that opts out) is the base itself.
        ``into``: an input this made before, rewritten in place (the same memory) rather than allocated."""
        if key == 0 or not self._storages:
            return self.base
        return self._derive(lambda storage, out: self._mix(storage, key, out), into)

    def blank(self) -> Call:
        """New storages shaped as ``fresh`` makes them, their content not yet written (``fresh(key, into=)``
        writes it later); the base itself for a target that opts out."""
        return self._derive(lambda storage, out: torch.empty_like(storage.base)) if self._storages else self.base

    def _derive(self, make: Callable[[_Storage, torch.Tensor | None], torch.Tensor], into: Call | None = None) -> Call:
        """The base with each mixable storage replaced by ``make(its _Storage, into's storage or None)``."""
        made: dict[tuple[int, int], torch.Tensor] = {}
        reuse = iter(_storages_of(into) if into is not None else ())

        def derive(value: Any) -> Any:
            if not isinstance(value, torch.Tensor) or not _mixable(value):
                return value
            storage = value.untyped_storage()
            skey = (storage.data_ptr(), storage.nbytes())
            if skey not in made:
                made[skey] = make(self._storages[skey], next(reuse, None))
            return torch.empty(0, dtype=value.dtype, device=value.device).set_(
                made[skey].untyped_storage(), value.storage_offset(), value.size(), value.stride())

        return self.base.map(derive)

    def _mask(self, like: torch.Tensor) -> torch.Tensor:
        if like.dtype not in self._masks:
            generator = torch.Generator().manual_seed(self._seed)
            bits = torch.randint(0, 2, (2 * WINDOW,), dtype=torch.int64, generator=generator)
            self._masks[like.dtype] = (-bits).to(like.dtype).to(like.device)  # 0 or all ones, for any width
        return self._masks[like.dtype]

    def _mix(self, storage: _Storage, key: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """base XOR (diff AND mask): the base where the mask is 0, the donor where it is all ones.  Branch-free
        (torch.where on a random mask ran 12x slower here: 62 ms against 5 ms at 75 MB), a chunk at a time
        so the temporary stays in cache.  ``out``: where to write it (else a new allocation)."""
        base, diff, mask = storage.base, storage.diff, self._mask(storage.base)
        if out is None or out.dtype != base.dtype or out.shape != base.shape:
            out = torch.empty_like(base)
        chosen = torch.empty(min(WINDOW, len(base)), dtype=base.dtype, device=base.device)
        for chunk, start in enumerate(range(0, len(base), WINDOW)):
            stop = min(len(base), start + WINDOW)
            shift, count = _shift(key, chunk), stop - start
            torch.bitwise_and(diff[start:stop], mask[shift:shift + count], out=chosen[:count])
            torch.bitwise_xor(base[start:stop], chosen[:count], out=out[start:stop])
        return out


def _storages_of(call: Call) -> list[torch.Tensor]:
    """The distinct storages of ``call``'s mixable tensors, in the order ``fresh`` meets them, as the flat
    integer tensors ``_mix`` writes."""
    seen: dict[tuple[int, int], torch.Tensor] = {}
    for t in call.tensors():
        if _mixable(t):
            storage = t.untyped_storage()
            key = (storage.data_ptr(), storage.nbytes())
            if key not in seen:
                seen[key] = _elements(storage, t.element_size(), t.device)
    return list(seen.values())


def _mixable(t: torch.Tensor) -> bool:
    """A plain dense tensor whose storage can be rebuilt element by element (not a scaled-integer,
    conjugated, sparse or autograd-tracked one, which is left as it is)."""
    return (type(t) is torch.Tensor and t.layout == torch.strided and t.dtype not in SCALED_DTYPES and not t.is_conj()
            and not t.is_neg() and not t.requires_grad and t.untyped_storage().nbytes() > 0)
