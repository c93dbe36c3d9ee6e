"""The worked example (examples/): an upstream-style quantizer, specialised to the production row, judged on
its declared domain.  Its torch twin (the Triton kernel's arithmetic, bit for bit: examples/check_twin.py)
runs here on the CPU, so the diagnosis the README shows for the GPU is checked without one."""

import json

import pytest

from harness.cli.commands import main

TWIN = "examples/upstream_quant_torch.py:quantize"


@pytest.fixture(scope="module")
def diagnosis(tmp_path_factory):
    """`harness verify` of the twin under exact and dequant, as the README runs the kernel on the GPU."""
    found = {}
    for policy in ("exact", "dequant"):
        path = tmp_path_factory.mktemp(policy) / "v.json"
        code = main(["verify", "--target", "quantize_k_cache", "--candidate", TWIN, "--examples", "20",
                     "--policy", policy, "--json", str(path)])
        found[policy] = (code, json.loads(path.read_text())["candidates"][0])
    return found


def _texts(cand):
    v = cand["verification"]
    return [cand["error"]] + [f["reason"] for f in v["failures"]] + [d for f in v["failures"] for d in f["differences"]]


def test_judged_on_its_declared_domain_only(diagnosis):
    code, cand = diagnosis["exact"]
    v = cand["verification"]
    assert code == 1 and cand["verdict"] == "fail"
    assert v["domain"] == "dtype=bfloat16 d=576 dv=512 tile_size=128" and v["excluded"] > 50
    assert "dtype float16, float32" in v["excluded_text"]


def test_the_diagnosis_names_the_scale_dtype_the_1_ulp_codes_and_the_zero_tiles(diagnosis):
    _, cand = diagnosis["exact"]
    texts = _texts(cand)
    assert any("are not bfloat16 values: float32 scales, where the oracle rounds the scale to bfloat16" in t
               for t in texts)
    assert any("codes:" in t and "(max 1 ulp" in t for t in texts)
    zero = next(f for f in cand["verification"]["failures"] if f["case"] == "production_zero_tiles")
    assert "NaN where the other is a number" in zero["reason"]
    assert any(d.endswith("expected 0xFF (-nan), got 0x7E (+448) (NaN vs number)") for d in zero["differences"])


def test_refusals_inside_the_domain_are_named_apart_from_wrong_answers(diagnosis):
    _, cand = diagnosis["exact"]
    v = cand["verification"]
    assert cand["error"].startswith("wrong on ") and "refused" in cand["error"]
    assert v["refusal_errors"] == {"RuntimeError": v["refused"]}  # its .view on layouts it cannot flatten
    assert v["suggested_where"] == "layout=contiguous,sliced"


def test_under_dequant_zero_and_tiny_tiles_still_fail(diagnosis):
    code, cand = diagnosis["dequant"]
    failing = {f["case"] for f in cand["verification"]["failures"] if f["kind"] == "mismatch"}
    assert code == 1 and "production_zero_tiles" in failing
    assert not any(f["kind"] == "mismatch" and "randn" in f["input"] and "contiguous" in f["input"]
                   for f in cand["verification"]["failures"])  # on ordinary rows, dequantized values agree


def test_the_triton_kernel_and_its_torch_twin_write_the_same_bytes():
    """examples/check_twin.py runs the kernel in Triton's interpreter (CPU) against the twin, byte for byte."""
    import subprocess
    import sys

    pytest.importorskip("triton", reason="Triton is not installed: the interpreter check needs it")
    done = subprocess.run([sys.executable, "examples/check_twin.py", "--tokens", "512"], capture_output=True,
                          text=True, timeout=900)  # ~10 s alone; generous for a loaded 2-core machine
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok  Triton kernel == torch twin, byte for byte")
