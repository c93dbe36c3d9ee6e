"""Candidates that misbehave in every way issue 8 lists (and a few more); each must cost only its own verdict."""

import ctypes
import os
import time

import torch


def raises(input_k_cache, dv=512, tile_size=128):
    raise RuntimeError("kernel launch failed")


def returns_none(input_k_cache, dv=512, tile_size=128):
    return None


def wrong_dtype(input_k_cache, dv=512, tile_size=128):
    return torch.zeros(1, dtype=torch.float32)


def hangs(input_k_cache, dv=512, tile_size=128):
    time.sleep(3600)


def exits(input_k_cache, dv=512, tile_size=128):
    os._exit(3)


def segfaults(input_k_cache, dv=512, tile_size=128):
    ctypes.string_at(0)


class Widget:
    pass


def returns_object(input_k_cache, dv=512, tile_size=128):
    return Widget()


def exits_zero(input_k_cache, dv=512, tile_size=128):
    import sys

    sys.exit(0)
