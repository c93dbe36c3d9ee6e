"""Declared targets (harness/core/declared.py): a function judged from a few lines of pyproject.toml — the
worked example run as a new user runs it, the declaration's mistakes as one-line errors, and the target a
runner rebuilds from the reference it is sent."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.core.declared import DeclarationError, DeclaredTarget, from_ref
from harness.core.target import load_target

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "row_softmax"
SOFTMAX = {"oracle": "softmax_ref:softmax_slow",
           "inputs": {"x": {"shape": ["rows", "cols"], "dtype": ["float32", "bfloat16"]}},
           "params": {"rows": {"min": 1, "max": 4096}, "cols": {"min": 1, "max": 4096}},
           "values": ["randn", "huge", "inf_nan"], "compare": ["ulp(8)", "exact"]}


def _harness(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "harness", *argv], cwd=cwd, env=env, capture_output=True, text=True)


def test_the_worked_example_passes_the_right_softmax_and_fails_the_wrong_one(tmp_path):
    done = _harness("verify", "--examples", "10", "--json", str(tmp_path / "v.json"), cwd=EXAMPLE)
    assert done.returncode == 1, done.stderr[-2000:]
    import json

    verdicts = {c["name"]: c for c in json.loads((tmp_path / "v.json").read_text())["candidates"]}
    assert verdicts["vectorized"]["verdict"] == "pass"
    wrong = verdicts["no_max"]
    assert wrong["verdict"] == "fail" and "elements differ" in wrong["error"]
    assert wrong["verification"]["pattern"].startswith("only where values in {huge")
    assert json.loads((tmp_path / "v.json").read_text())["policy"] == "ulp(8)"  # the first declared, not "exact"


def test_its_toml_is_short():
    lines = [line for line in (EXAMPLE / "pyproject.toml").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert len(lines) <= 20, lines


def test_a_runner_rebuilds_the_judges_target_from_its_reference():
    target = DeclaredTarget("row_softmax", SOFTMAX)
    again = load_target(target.ref)
    assert again.policies == target.policies and again.inputs == target.inputs
    case = target.named_cases()[3]
    first, second = target.build(case, "cpu"), again.build(case, "cpu")
    assert torch.equal(first.args[0].view(torch.uint8), second.args[0].view(torch.uint8))
    assert from_ref(target.ref.partition(":")[2]).ref == target.ref


def test_cases_carry_params_dtype_and_values_and_stay_small():
    target = DeclaredTarget("row_softmax", SOFTMAX)
    cases = target.named_cases()
    assert len({c.name for c in cases}) == len(cases)
    assert {c.params["dtype"] for c in cases} == {"float32", "bfloat16"}
    assert {c.params["values"] for c in cases} == {"randn", "huge", "inf_nan"}
    assert {1, 3, 33, 129} <= {c.params["cols"] for c in cases}  # odd sizes and a power of two's neighbours
    assert all(c.params["rows"] * c.params["cols"] <= 1 << 16 for c in cases)
    size = target.parse_size("rows=3,cols=5")
    assert (size.params["rows"], size.params["cols"]) == (3, 5)
    assert target.case_bytes(size) == 2 * 3 * 5 * 4  # read x once, write an output like it once (float32)


@pytest.mark.parametrize("change, message", [
    ({"colour": 1}, "unknown key(s) colour"),
    ({"oracle": "softmax_slow"}, 'oracle must be "module:function"'),
    ({"inputs": {"x": {"shape": ["rows", "depth"]}}}, "'depth' is not a declared param"),
    ({"params": {"rows": {"min": 5, "max": 1}, "cols": 4}}, "params.rows must be { min = A, max = B }"),
    ({"values": ["gaussian"]}, "unknown value family 'gaussian'"),
    ({"compare": "close"}, "bad comparison 'close'"),
    ({"kwargs": ["dim"]}, "kwargs: 'dim' is not a declared param"),
    ({"raises": ["NoSuchError"]}, "'NoSuchError' is not a built-in exception"),
    ({"inputs": {"x": {"shape": ["rows"], "dtype": "float33"}}}, "unknown dtype 'float33'"),
])
def test_declaration_mistakes_are_named_in_one_line(change, message):
    with pytest.raises(DeclarationError) as refused:
        DeclaredTarget("row_softmax", {**SOFTMAX, **change})
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert str(refused.value).startswith("[tool.harness.targets.row_softmax]")


def test_a_mistake_in_pyproject_is_a_usage_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.harness.targets.f]\noracle = "m:f"\ninputs = { x = { shape = [4], '
                                             'dtype = "float32" } }\ncompare = "approx"\n')
    done = _harness("list", cwd=tmp_path)
    assert done.returncode == 2 and "bad comparison 'approx'" in done.stderr and "Traceback" not in done.stderr
