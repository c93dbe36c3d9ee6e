"""Candidates that attack the judge through the pipe, the clock or other processes (found by an attacker's
pass over the runner design); each must cost only its own verdict, with the run and the others intact."""

import json
import os
import signal
import struct
import subprocess
import sys
import time

from oracles.kcache_reference import quantize_k_cache_slow as ORIGINAL

_FD = None


def _frame(header: dict) -> bytes:
    data = json.dumps(header).encode()
    return struct.pack("<4sIQ", b"HRN1", len(data), 0) + data


def _send_instead(header: dict) -> None:
    """Write a well-formed frame of our own as the reply, then stop this process before the real one."""
    os.write(int(sys.argv[-1]), _frame(header))
    os._exit(0)


def deep_json(input_k_cache, dv=512, tile_size=128):
    data = ("[" * 100000 + "]" * 100000).encode()
    os.write(int(sys.argv[-1]), struct.pack("<4sIQ", b"HRN1", len(data), 0) + data)
    os._exit(0)


def huge_int(input_k_cache, dv=512, tile_size=128):
    """Replies with a frame whose JSON holds an integer of 5000 digits (Python refuses to convert it)."""
    data = (b'{"kind": "called", "input_digest": "x", "after_digest": "x", "value": {"kind": "scalar", "value": '
            + b"9" * 5000 + b"}}")
    os.write(int(sys.argv[-1]), struct.pack("<4sIQ", b"HRN1", len(data), 0) + data)
    os._exit(0)


def huge_shape(input_k_cache, dv=512, tile_size=128):
    _send_instead({"kind": "called", "input_digest": "x", "after_digest": "x",
                   "value": {"kind": "tensor", "dtype": "float8_e4m3fn", "shape": [2 ** 70], "nbytes": 2 ** 70}})


def zero_time(input_k_cache, dv=512, tile_size=128):
    from harness.runner.worker import Worker

    Worker.round = lambda self, *args: 0.0
    return ORIGINAL(input_k_cache, dv, tile_size)


def slows_the_baseline(input_k_cache, dv=512, tile_size=128):
    """Correct; during timing, a helper in its own session keeps stopping the other runner."""
    if "CpuClock" in "".join(str(f) for f in sys._current_frames().values()) or _timing():
        if not getattr(slows_the_baseline, "helper", None):
            me = os.getpid()
            code = ("import os, signal, time\n"
                    "while True:\n"
                    "    for p in os.listdir('/proc'):\n"
                    "        if p.isdigit() and int(p) != %d:\n"
                    "            try:\n"
                    "                cmd = open('/proc/%%s/cmdline' %% p, 'rb').read()\n"
                    "            except OSError:\n"
                    "                continue\n"
                    "            if b'harness.runner.serve' in cmd:\n"
                    "                os.kill(int(p), signal.SIGSTOP); time.sleep(0.004); os.kill(int(p), signal.SIGCONT)\n"
                    "    time.sleep(0.001)\n" % me)
            slows_the_baseline.helper = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    return ORIGINAL(input_k_cache, dv, tile_size)


def _timing() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name in ("settled_round", "warm_up"):
            return True
        frame = frame.f_back
    return False


def prints_escapes(input_k_cache, dv=512, tile_size=128):
    sys.stderr.write("\x1b]0;owned\x07\x1b[2J\x1b[1;32mharness: all candidates pass\n")
    return ORIGINAL(input_k_cache, dv, tile_size)


def plants_bytecode(input_k_cache, dv=512, tile_size=128):
    """Correct; writes a .pyc into the harness package for the next run to load."""
    import harness

    folder = os.path.join(os.path.dirname(harness.__file__), "__pycache__")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "planted_by_a_candidate.cpython-311.pyc"), "wb") as handle:
        handle.write(b"not really bytecode")
    return ORIGINAL(input_k_cache, dv, tile_size)
