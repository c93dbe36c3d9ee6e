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
