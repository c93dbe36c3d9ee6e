"""A second target is one new module in an oracles package plus its candidates: no change to harness/."""

import sys
import textwrap

import pytest

from harness.render import report


from harness.core import schema
from harness.core.config import BenchConfig
from harness.core.errors import UsageError
from harness.judge.pipeline import Pipeline
from harness.judge.plan import RunOptions
from harness.core.target import TargetError, discover_targets, get_target, in_run_order

TOY = '''
    """A toy target: y = 2 * x, compared exactly, one byte per element."""
    import torch
    from harness.core.target import Call, Case, Comparison, Difference, Target

    def double(x):
        assert x.dim() == 1
        return x * 2

    class Double(Target):
        name = "double"
        function_name = "double"
        source = "toy.py"

        def oracle(self, x):
            return double(x)

        def build(self, case, device):
            g = torch.Generator().manual_seed(case.seed)
            shape = [case.params["n"]] * case.params.get("dims", 1)
            return Call((torch.randn(shape, generator=g).to(device),))

        def named_cases(self):
            return [Case("small", "seed", {"n": 3}), Case("two_dims", "error", {"n": 2, "dims": 2})]

        def compare(self, call, expected, got, policy):
            bad = (expected != got).nonzero().flatten().tolist()
            if not bad:
                return Comparison.passed()
            return Comparison(False, f"{len(bad)} elements differ",
                              tuple(Difference("y", f"index {i}", str(float(expected[i])), str(float(got[i]))) for i in bad[:3]))

        def bytes_moved(self, call):
            return 8 * call.args[0].numel()

        def sizes(self, device, quick):
            return [Case("n-4096", "size", {"n": 4096})]

    TARGET = Double()
'''

CANDIDATES = '''
    def good(x):
        """Adds x to itself."""
        assert x.dim() == 1
        return x + x

    def off_by_one(x):
        """Wrong."""
        return x * 2 + 1
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    pkg = tmp_path / "toy_oracles"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "double.py").write_text(textwrap.dedent(TOY))
    (tmp_path / "toy_candidates.py").write_text(textwrap.dedent(CANDIDATES))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield discover_targets("toy_oracles"), tmp_path
    for name in [m for m in sys.modules if m.startswith("toy_oracles")]:
        del sys.modules[name]


def test_toy_target_runs_through_the_whole_pipeline(toy):
    targets, where = toy
    assert list(targets) == ["double"]
    options = RunOptions(target="double", candidates=[f"{where}/toy_candidates.py:good", f"{where}/toy_candidates.py:off_by_one"],
                         examples=0, bench=BenchConfig(budget_s=0.2, min_rounds=3))
    run = Pipeline(options, targets=targets).run()
    good, bad = run.candidates
    assert (good.verdict, bad.verdict) == ("pass", "fail"), (good.error, bad.error)
    assert good.verification.cases == 5  # two named cases, their repeat twins and the timing size
    assert bad.verification.failures[0].reason == "3 elements differ"
    assert good.headline.size == "n-4096" and good.headline.bytes_moved == 8 * 4096
    assert bad.timings == ()  # a candidate that failed verification is not timed
    text = report.markdown(run)
    assert "`double`" in text and "3 elements differ" in text
    assert schema.load_text(schema.dumps(run)) == run


def test_unknown_target_is_a_usage_error(toy):
    targets, _ = toy
    with pytest.raises(UsageError, match="unknown target 'nope'; known: double"):
        Pipeline(RunOptions(target="nope"), targets=targets)


def test_with_several_targets_none_is_a_default():
    with pytest.raises(TargetError, match=r"this project has 3 targets \(dequantize_k_cache, quantize_k_cache, "
                                          r"per_token_group_quant_fp8\): choose one with --target"):
        get_target(None)
    assert [t.name for t in in_run_order(discover_targets())] == ["quantize_k_cache", "dequantize_k_cache",
                                                                  "per_token_group_quant_fp8"]


# -- harness/ knows no target ------------------------------------------------------------------------

# The words of the first two targets; harness/ must not need any of them (``quantile`` and ``property``
# are fine: the patterns look for the words, not for letters inside others).
TARGET_WORDS = r"fp8|float8|e4m3|quantiz|(?<![a-z])k[-_ ]?cache|(?<![a-z])rope|(?<![a-z])tiles?(?![a-z])|tile_size"


def test_harness_never_mentions_a_target():
    import re
    from pathlib import Path

    import harness

    found = [f"{path.name}:{n}: {line.strip()}" for path in sorted(Path(harness.__file__).parent.glob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(TARGET_WORDS, line, re.IGNORECASE)]
    assert found == []
    assert re.search(TARGET_WORDS, "tile_size quantize_k_cache K-cache rope float8_e4m3fn", re.IGNORECASE)
    assert not re.search(TARGET_WORDS, "quantile property", re.IGNORECASE)


def test_a_run_covers_every_target_inverse_last_and_candidates_pick_theirs():
    from harness.judge.pipeline import pipelines as plan

    assert [p.target.name for p in plan(RunOptions(time=False))] == ["quantize_k_cache", "dequantize_k_cache",
                                                                     "per_token_group_quant_fp8"]
    pipelines = plan(RunOptions(candidates=["candidates/dequant_fused.py:dequant_fused"], time=False))
    assert [p.target.name for p in pipelines] == ["dequantize_k_cache"] and pipelines[0].round_trips is None
    with pytest.raises(UsageError, match=r"3 targets \(dequantize_k_cache, quantize_k_cache, per_token_group_quant_fp8\): "
                                         r"say which one the --candidate specs are for with --target"):
        plan(RunOptions(candidates=["tests/wrong_candidates.py:wrong_for_fp16"]))
    assert [p.target.name for p in plan(RunOptions(target="quantize_k_cache", time=False,
                                                   candidates=["tests/wrong_candidates.py:wrong_for_fp16"]))] == [
        "quantize_k_cache"]


def test_the_profiled_size_is_the_headline_size_also_with_quick():
    from harness.judge.plan import plan

    (pipeline,) = plan(RunOptions(target="quantize_k_cache", quick=True, time=False))
    quick = pipeline.target.sizes("cpu", quick=True)
    assert pipeline.headline_size == max(quick, key=pipeline.target.case_bytes)
    assert pipeline.headline_size.name == "seed-512x32x300-fp32" != quick[-1].name  # not merely the last size
