"""The dequantizer's candidates (target ``dequantize_k_cache``) against its oracle, byte for byte: their
discovery, every candidate on every case of tests/_dequant_cases.py (the oracle's output bytes compared as
int16, NaN spelling included; or the oracle's exception type), the fused candidate's C kernel and its
fallback where no compiler is found, the shared C build module, and the Triton kernel under Triton's
interpreter (exact there too: tests/_interpret_dequant.py) and on CUDA."""

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from candidates import _cbuild, _dequant_cpu
from candidates._dequant import nan_bits, oracle_nan_bits, rows_of, unpack
from candidates.dequant_fused import dequant_fused
from candidates.dequant_slow_loop import dequant_slow_loop
from candidates.dequant_vectorized import dequant_vectorized
from harness.core.candidates import discover
from harness.core.target import discover_targets
from oracles.kcache_dequant_reference import dequantize_k_cache_slow
from tests._dequant_cases import PRODUCTION, error_cases, production_rows, random_rows, to_device, value_cases
from tests.conftest import cuda

TARGET = "dequantize_k_cache"
CANDIDATES = {"dequant_slow_loop": dequant_slow_loop, "dequant_vectorized": dequant_vectorized,
              "dequant_fused": dequant_fused}
VALUE_CASES, ERROR_CASES = value_cases(), error_cases()
ROOT = Path(__file__).resolve().parent.parent
PROJECT_TARGETS = list(discover_targets())


def test_discovers_the_three_dequantizer_candidates_and_only_for_their_target():
    found = {c.name: c for c in discover(TARGET, PROJECT_TARGETS)}
    assert set(found) == set(CANDIDATES)
    assert found["dequant_fused"].spec == "candidates/dequant_fused.py:dequant_fused"
    assert all("bit-identical" in found[name].doc for name in ("dequant_vectorized", "dequant_fused"))
    assert found["dequant_slow_loop"].doc.startswith("The original `_dequantize_k_cache_slow`, unchanged")
    assert dequant_slow_loop is dequantize_k_cache_slow  # the oracle itself
    assert not {c.name for c in discover("quantize_k_cache", PROJECT_TARGETS)} & set(CANDIDATES)


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_the_harness_verifier_passes_each_candidate(name):
    """The target's own named cases and property examples, through the harness (policy exact)."""
    from harness.core.target import TargetError, get_target
    from harness.judge.verify import Verifier

    try:
        target = get_target(TARGET)
    except (TargetError, ImportError) as exc:
        pytest.skip(f"the {TARGET} target cannot be loaded: {exc}")
    result = Verifier(target, "exact", examples=15, seed=0).verify(CANDIDATES[name], name)
    assert result.passed, result.first_failure


def assert_same_bytes(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert got.dtype == expected.dtype == torch.bfloat16
    assert got.shape == expected.shape and got.is_contiguous()
    same = got.view(torch.int16) == expected.view(torch.int16)
    if not bool(same.all()):
        where = (~same).nonzero()[:4].tolist()
        g, e = got.view(torch.int16), expected.view(torch.int16)
        shown = [(i, hex(int(g[tuple(i)]) & 0xFFFF), hex(int(e[tuple(i)]) & 0xFFFF)) for i in where]
        raise AssertionError(f"{int((~same).sum())} elements differ (index, got, expected): {shown}")


def check_case(function, case, device: str = "cpu") -> None:
    x, dv, tile, d = case.build()
    x = to_device(x, device)
    try:
        expected = dequantize_k_cache_slow(x, dv, tile, d)
    except Exception as exc:  # noqa: BLE001  the candidate must raise the same type
        assert case in ERROR_CASES, f"the oracle raised on {case.name}: {exc!r}"
        with pytest.raises(Exception) as raised:
            function(x, dv, tile, d)
        assert type(raised.value) is type(exc), f"raised {raised.value!r}, the oracle {exc!r}"
        return
    assert case in VALUE_CASES, f"the oracle did not raise on {case.name}"
    before = x.clone()
    got = function(x, dv, tile, d)
    assert_same_bytes(got, expected)
    assert torch.equal(x.view(torch.uint8), before.view(torch.uint8)), "the input was written to"
    assert got.data_ptr() != expected.data_ptr() and got.device == x.device


@pytest.mark.parametrize("name", sorted(CANDIDATES))
@pytest.mark.parametrize("case", VALUE_CASES + ERROR_CASES, ids=lambda c: c.name)
def test_candidate_matches_oracle_byte_for_byte(name, case):
    check_case(CANDIDATES[name], case)


def test_candidates_keep_the_oracles_nan_spelling_and_every_code():
    """NaN codes, NaN and infinite scales: the oracle's bytes for NaN are torch's (0xFFFF from its vectorised
    CPU conversion, 0x7FC0 where it stores one-element tiles element by element), every candidate's too."""
    for d, dv, tile in (PRODUCTION, (8, 4, 1)):
        x = random_rows(2, 3, 5, d, dv, tile)
        expected = dequantize_k_cache_slow(x, dv, tile, d)
        spelled = set((expected[..., :dv].reshape(-1).view(torch.int16).to(torch.int32) & 0xFFFF).tolist())
        nan = oracle_nan_bits("cpu", tile, 6)
        assert nan in spelled and expected[..., :dv].isnan().any()
        assert nan == nan_bits("cpu", tile == 1)
        for function in CANDIDATES.values():
            assert_same_bytes(function(x, dv, tile, d), expected)
    codes = torch.arange(256, dtype=torch.uint8)  # each code once, scale 1: torch's own e4m3 decoding
    row = torch.cat([codes[:128], torch.tensor([1.0]).view(torch.uint8)]).view(1, 1, 1, 132)
    row2 = torch.cat([codes[128:], torch.tensor([-3.5]).view(torch.uint8)]).view(1, 1, 1, 132)
    for x in (row, row2):
        expected = dequantize_k_cache_slow(x, 128, 128, 128)
        for function in CANDIDATES.values():
            assert_same_bytes(function(x, 128, 128, 128), expected)


EDGE_SCALES = [2.0 ** 119 * (1 - 2.0 ** -24), 2.0 ** 119, 2.0 ** 120, 3.0e38, -3.0e38, 1.0e-40, -1.0e-45, 1.2e-38,
               0.0, -0.0, 1.0, -3.5, float("inf"), float("-inf"), float("nan")]


def test_every_code_at_the_edges_of_the_scale_range():
    """Each of the 256 codes, twice in a 128-code tile (the kernel's 32-at-a-time path), under scales at and
    around its limit (a finite scale below 2^119, where scale * 256 is exact), subnormal, zero and
    non-finite: the oracle's bytes."""
    codes = torch.arange(256, dtype=torch.uint8)
    rows = [torch.cat([codes[h * 128:(h + 1) * 128], torch.tensor([s]).view(torch.uint8)])
            for s in EDGE_SCALES for h in (0, 1)]
    x = torch.stack(rows).view(len(rows), 1, 1, 132)
    expected = dequantize_k_cache_slow(x, 128, 128, 128)
    for function in CANDIDATES.values():
        assert_same_bytes(function(x, 128, 128, 128), expected)


def _outcome(function, case):
    x, dv, tile, d = case.build()
    try:
        rows = function(x, dv, tile, d)
    except Exception as exc:  # noqa: BLE001
        return type(exc)
    if rows is None:
        return None
    if not isinstance(rows, tuple):
        rows = (rows.data.data_ptr(), rows.num_blocks, rows.block_size, rows.block_stride, rows.token_stride)
    return (rows[0] - x.data_ptr(), *rows[1:])  # where the first row starts, relative to the input


def _rows_through_the_views(x, dv, tile, d):
    parts = unpack(x, dv, tile, d)
    if parts is None:
        return None
    r = parts.rows
    return (r.data_ptr(), r.shape[0], r.shape[1], r.stride(0), r.stride(1))


@pytest.mark.parametrize("case", VALUE_CASES + ERROR_CASES, ids=lambda c: c.name)
def test_the_kernels_layout_shortcut_agrees_with_the_oracles_views(case):
    """``rows_of`` skips the oracle's views for a contiguous packed input: same rows, errors and None."""
    assert _outcome(rows_of, case) == _outcome(_rows_through_the_views, case)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fused_kernel_is_exact_with_any_number_of_threads(threads):
    if not _dequant_cpu.supports(torch.empty(0)):
        pytest.skip("no C compiler: the kernel cannot be built")
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = production_rows(16, 8, 20)
        assert_same_bytes(dequant_fused(x), dequantize_k_cache_slow(x))
    finally:
        torch.set_num_threads(old)


def test_fused_uses_the_c_kernel_on_cpu_and_names_it_in_profiles():
    if _dequant_cpu.load() is None:
        pytest.skip("no C compiler: the kernel cannot be built")
    x = production_rows(2, 8, 21)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        got = dequant_fused(x)
    assert any(e.name == "_dequant_cpu.c::dequantize" for e in prof.events())
    assert_same_bytes(got, dequantize_k_cache_slow(x))


def test_without_a_compiler_the_fused_candidate_warns_and_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "/bin/false")
    _dequant_cpu.load.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert _dequant_cpu.load() is None
        assert "fused CPU dequantizer kernel unavailable, using the torch fallback" in str(caught[0].message)
        assert not list(tmp_path.glob("*.so*")), "a failed compile leaves nothing in the cache"
        for case in VALUE_CASES[:12] + ERROR_CASES:
            check_case(dequant_fused, case)
    finally:
        _dequant_cpu.load.cache_clear()


def test_cbuild_compiles_once_per_source_and_flags(monkeypatch, tmp_path):
    if (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")) is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    source = tmp_path / "_answer.c"
    source.write_text("int answer(void) { return 42; }\n")
    flags = ["-O1", "-shared", "-fPIC"]
    lib = _cbuild.load(source, flags, "test kernel")
    assert lib is not None and lib.answer() == 42
    built = _cbuild.library_path(source, flags)
    assert built.parent == tmp_path and built.name.startswith("answer_") and built.exists()
    stamp = built.stat().st_mtime_ns
    assert _cbuild.load(source, flags, "test kernel").answer() == 42 and built.stat().st_mtime_ns == stamp
    assert _cbuild.library_path(source, ["-O2", "-shared", "-fPIC"]) != built  # other flags, another library
    source.write_text("int answer(void) { return 43 }\n")  # a syntax error: warns, returns None
    with pytest.warns(RuntimeWarning, match="test kernel unavailable, using the torch fallback: compiling _answer.c"):
        assert _cbuild.load(source, flags, "test kernel") is None


def test_triton_kernel_under_the_interpreter():
    pytest.importorskip("triton", reason="Triton is not installed (pip install -e '.[test]' installs it)")
    pytest.importorskip("numpy", reason="Triton's interpreter needs numpy")
    proc = subprocess.run([sys.executable, "-m", "tests._interpret_dequant"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TRITON_INTERPRET": "1", "PYTHONWARNINGS": "ignore"}, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ok")]
    assert len(lines) == len(VALUE_CASES) + len(ERROR_CASES) + 1, proc.stdout


@cuda
@pytest.mark.parametrize("name", sorted(CANDIDATES))
@pytest.mark.parametrize("case", VALUE_CASES + ERROR_CASES, ids=lambda c: c.name)
def test_candidate_matches_oracle_on_cuda(name, case):
    check_case(CANDIDATES[name], case, "cuda")


@cuda
def test_fused_uses_the_triton_kernel_on_cuda():
    pytest.importorskip("triton", reason="Triton is not installed")
    from candidates import dequant_fused as module

    x = to_device(production_rows(8, 64, 22), "cuda")
    assert module._kernel(x) is not None and module._kernel(x).__name__ == "candidates._dequant_triton"
    assert_same_bytes(dequant_fused(x), dequantize_k_cache_slow(x))


@cuda
def test_fused_later_calls_take_the_cached_launch_and_stay_exact_on_cuda():
    """The quantizer's host path, given to the dequantizer (issue 27): after a configuration's first call no
    Triton dispatch, the same bytes; an input of the same shape and strides whose scales would sit off a
    4-byte boundary is not served by that launch and raises what the oracle raises, every time."""
    pytest.importorskip("triton", reason="Triton is not installed")
    import torch

    from candidates import _dequant_triton as kernel

    x = to_device(production_rows(8, 64, 22), "cuda")
    first = dequant_fused(x)
    assert kernel.fast_path_status()["launchers"] >= 1, kernel.fast_path_status()
    normal = kernel.STATS["normal"]
    again = dequant_fused(x)
    assert kernel.STATS["normal"] == normal  # not through kernel[grid](...)
    assert_same_bytes(again, first)
    assert_same_bytes(again, dequantize_k_cache_slow(x))
    storage = torch.empty(x.numel() + 2, dtype=torch.uint8, device="cuda")
    shifted = storage[2:].view(x.shape)
    shifted.copy_(x.view(torch.uint8))
    with pytest.raises(RuntimeError):
        dequantize_k_cache_slow(shifted)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            dequant_fused(shifted)


def test_a_row_of_rope_only_masks_the_kernels_tile_stores():
    """dv=0: no tile exists, so the tile part must be masked (FULL_COLUMNS off); unmasked, it wrote decoded
    rope bytes over the rope the same program copies, a race the GPU lost (32 of 384 elements) and the
    sequential interpreter never shows."""
    pytest.importorskip("triton", reason="Triton is not installed")
    from candidates import _dequant_triton as kernel

    _, _, constants = kernel._launch_plan("cuda", 64, 0, 16, True, 0x7FFF, None, None, None)
    assert constants["NUM_TILES"] == 0 and constants["FULL_COLUMNS"] is False
    _, _, production = kernel._launch_plan("cuda", 576, 512, 128, True, 0x7FFF, None, None, None)
    assert production["FULL_COLUMNS"] is True
