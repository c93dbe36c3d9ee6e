"""Declared domains (harness/core/domain.py): parsing, matching, restricted hypothesis strategies, the suggested
--where, and how verification and the pipeline use them (refusals apart from wrong answers, coverage)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cli.commands import main
from harness.core.domain import Clause, Domain, DomainError, failure_pattern, suggest
from harness.core.target import get_target
from harness.judge.verify import MAX_FAILURES_KEPT, InProcess, Verifier
from tests import specialized_candidates as special

TARGET = get_target("quantize_k_cache")
PRODUCTION = Domain.of(special.PRODUCTION)


def test_where_text_and_supports_mapping_read_the_same():
    text = Domain.parse("dtype=bfloat16 d=576 dv=512 tile_size=128")
    assert text == PRODUCTION and text.text == "dtype=bfloat16 d=576 dv=512 tile_size=128"
    assert Domain.parse(text.text) == text  # the text round-trips
    assert Domain().describe() == "everything the oracle accepts" and not Domain()


@pytest.mark.parametrize("clause, admitted, refused", [
    ("dtype=bfloat16,float16", {"dtype": "float16"}, {"dtype": "float32"}),
    ("d!=576", {"d": 512}, {"d": 576}),
    ("d>=512", {"d": 512}, {"d": 511}),
    ("d<512", {"d": 511}, {"d": 512}),
    ("tile_size=128", {"tile_size": 128}, {"dv": 128}),  # a case without the key is outside
])
def test_each_operator(clause, admitted, refused):
    domain = Domain.parse(clause)
    assert domain.admits(admitted) and not domain.admits(refused)


@pytest.mark.parametrize("text, why", [
    ("dtype", "expected key=value"), ("d>=big", "takes one number"), ("", "empty domain"), ("d=", "expected"),
])
def test_bad_where_text_is_one_line(text, why):
    with pytest.raises(DomainError, match=why):
        Domain.parse(text)


def test_unknown_keys_are_named_with_the_known_ones():
    with pytest.raises(DomainError, match=r"--where: unknown parameter dtpye; this target's cases have d, dtype"):
        Domain.parse("dtpye=bfloat16").check_keys({"d", "dtype"}, "--where")


def test_excluded_says_what_was_left_out_by_clause():
    cases = [{"dtype": "float32", "d": 192}, {"dtype": "float16", "d": 576}, {"dtype": "bfloat16", "d": 128}]
    assert Domain.parse("dtype=bfloat16 d=576").excluded(cases) == "dtype float16, float32; d 128, 192"


def test_suggest_keeps_every_accepted_case_and_leaves_out_every_refused_one():
    accepted = [{"dtype": "bfloat16", "d": 576, "values": v} for v in ("randn", "zeros")]
    refused = [{"dtype": "float32", "d": 576, "values": "randn"}, {"dtype": "bfloat16", "d": 192, "values": "zeros"},
               {"dtype": "float16", "d": 192, "values": "randn"}]
    found = suggest(accepted, refused)
    assert found is not None and found.text == "d=576 dtype=bfloat16"
    assert all(found.admits(p) for p in accepted) and not any(found.admits(p) for p in refused)
    assert suggest(accepted, [accepted[0]]) is None  # refusals that no param separates: no suggestion


@settings(max_examples=60, deadline=None)  # health checks on: a strategy that filtered most draws would fail
@given(TARGET.property_strategy(PRODUCTION))
def test_property_cases_are_drawn_inside_the_domain(params):
    assert PRODUCTION.admits(params)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_ranges_restrict_the_draws_too(data):
    domain = Domain.parse("tile_size>=64 layout!=transposed")
    params = data.draw(TARGET.property_strategy(domain))
    assert params["tile_size"] >= 64 and params["layout"] != "transposed"


def test_restrict_draws_listed_values_without_filtering():
    strategy = Domain((Clause("d", "=", (576, 640)), Clause("d", "<", (600,)))).restrict("d", st.integers())
    assert repr(strategy) == "just(576)"  # hypothesis reduces a one-value sampled_from


def test_a_declared_domain_passes_on_it_and_counts_what_it_left_out():
    v = Verifier(TARGET, "exact", examples=20).verify(InProcess(special.production_only, TARGET), "p", domain=PRODUCTION)
    assert v.passed and v.domain == PRODUCTION.text and v.property_cases == 20
    assert v.excluded > 50 and "dtype float16, float32" in v.excluded_text
    assert v.coverage.startswith(f"on its domain {PRODUCTION.text}: {v.cases - 20} named cases and 20 property cases; ")


def test_without_a_domain_refusals_are_counted_apart_and_a_where_is_suggested():
    v = Verifier(TARGET, "exact", examples=20).verify(InProcess(special.production_only, TARGET), "p")
    assert not v.passed and v.wrong == 0 and v.refused == v.failed > 50
    assert v.refusal_errors == {"AssertionError": v.refused}
    assert v.suggested_where is not None and Domain.parse(v.suggested_where).keys <= set(special.PRODUCTION) | {"h_k"}
    reason = v.reason()
    assert reason.startswith(f"refused {v.refused} cases (AssertionError) where ") and "--where" in reason
    assert "wrong on" not in reason


def test_refusals_never_crowd_wrong_answers_out():
    v = Verifier(TARGET, "exact", examples=30).verify(InProcess(special.production_only_float32_scale, TARGET), "p")
    kinds = [f.kind for f in v.failures]
    assert v.refused > MAX_FAILURES_KEPT and kinds.count("refusal") == MAX_FAILURES_KEPT
    assert v.wrong >= 3 and "mismatch" in kinds  # the real mismatches are kept, whatever came first
    reason = v.reason()
    assert reason.startswith(f"wrong on {v.wrong} of the {v.cases - v.refused} cases it did not refuse (" if v.refused
                             else f"wrong on {v.wrong} of {v.cases} cases (")
    assert "scales:" in reason and f"; refused {v.refused} cases (AssertionError)" in reason


# -- through the command line (runners, so a few seconds each) ------------------------------------------

def _cli(capsys, tmp_path, *argv):
    path = tmp_path / "r.json"
    code = main([*argv, "--json", str(path)])
    out, err = capsys.readouterr()
    return code, out, err, (json.loads(path.read_text()) if path.exists() else None)


def test_declared_domain_is_verified_and_timed_only_inside_it(capsys, tmp_path):
    code, out, err, data = _cli(capsys, tmp_path, "run", "--candidate", "tests/specialized_candidates.py:declared",
                                "--examples", "5", "--budget", "0.3", "--no-profile", "--out", str(tmp_path / "reports"))
    assert code in (0, 3), err
    (cand,) = data["candidates"]
    assert cand["verdict"] == "pass" and cand["verification"]["domain"] == PRODUCTION.text
    timed = {t["size"] for t in cand["timings"]}
    assert timed and all(s.startswith("prod-") for s in timed)
    assert any("not timed at seed-512x32x300-fp32: outside its domain (dtype float32" in n for n in cand["notes"])
    report = (tmp_path / "reports" / "quantize_k_cache-cpu.md").read_text()
    assert f"pass on its domain" in report and PRODUCTION.text in report and "named cases outside it not run" in report
    assert "pass on its domain" in out


def test_where_gives_an_external_spec_the_same(capsys, tmp_path):
    code, out, err, data = _cli(capsys, tmp_path, "verify", "--candidate", "tests/specialized_candidates.py:production_only",
                                "--target", "quantize_k_cache", "--examples", "5", "--where", PRODUCTION.text)
    assert code == 0, err
    v = data["candidates"][0]["verification"]
    assert v["domain"] == PRODUCTION.text and v["failed"] == 0 and v["excluded"] > 50


def test_without_where_the_verdict_line_names_refusals_and_mismatches(capsys, tmp_path):
    code, out, err, data = _cli(capsys, tmp_path, "verify", "--target", "quantize_k_cache", "--examples", "10",
                                "--candidate", "tests/specialized_candidates.py:production_only_float32_scale")
    assert code == 1
    cand = data["candidates"][0]
    assert cand["verdict"] == "fail" and cand["error"].startswith("wrong on ")
    assert "refused" in cand["error"] and "--where" in cand["error"]
    flat = " ".join(out.split())
    assert "wrong on" in flat and "refused" in flat and "scales:" in flat
    assert any(f["kind"] == "mismatch" for f in cand["verification"]["failures"])
    from harness.render import report


    from harness.core import schema
    markdown = report.markdown(schema.load(tmp_path / "r.json"))
    assert "wrong on" in markdown and "refused" in markdown and "on everything the oracle accepts" in markdown
    assert "scales:" in markdown.split("Coverage")[1]  # a mismatch is listed, not only refusals


def test_a_domain_that_excludes_every_size_is_a_usage_error(capsys, tmp_path):
    code, out, err, data = _cli(capsys, tmp_path, "bench", "--candidate", "tests/specialized_candidates.py:nothing_to_time",
                                "--target", "quantize_k_cache")
    assert code == 2 and data is None
    assert "no size of quantize_k_cache fits the domain of any candidate (dtype=float16)" in err
    code, _, err, _ = _cli(capsys, tmp_path, "bench", "--candidate", "tests/specialized_candidates.py:declared",
                           "--target", "quantize_k_cache", "--sizes", "8x16x512")
    assert code == 2 and "size 8x16x512 is outside the domain of every candidate" in err


@pytest.mark.parametrize("argv, message", [
    (["--where", "dtpye=bfloat16"], "--where (target quantize_k_cache): unknown parameter dtpye"),
    (["--where", "d>=x"], "--where: bad clause 'd>=x'"),
])
def test_bad_where_is_a_usage_error(capsys, tmp_path, argv, message):
    code, _, err, _ = _cli(capsys, tmp_path, "verify", "--target", "quantize_k_cache", *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_a_domain_without_a_named_case_is_a_usage_error_not_a_vacuous_pass(capsys, tmp_path):
    code, _, err, data = _cli(capsys, tmp_path, "verify", "--target", "quantize_k_cache",
                              "--candidate", "tests/specialized_candidates.py:nothing_to_check")
    assert code == 2 and data is None
    assert "its domain (dtype=float32 d>=4096) admits none of the" in err and "nothing would be checked" in err
    code, _, err, _ = _cli(capsys, tmp_path, "verify", "--target", "quantize_k_cache", "--where", "d>=100000",
                           "--candidate", "candidates/fused.py:fused")
    assert code == 2 and "admits none of the" in err



def test_a_domain_of_only_rejected_inputs_is_no_pass(capsys, tmp_path):
    code, out, err, data = _cli(capsys, tmp_path, "verify", "--target", "quantize_k_cache", "--examples", "5",
                                "--candidate", "tests/specialized_candidates.py:only_error_cases")
    (cand,) = data["candidates"]
    assert code == 1 and cand["verdict"] == "fail" and cand["verification"]["accepted"] == 0
    assert cand["error"].startswith("nothing compared: of its ") and "only error parity was checked" in cand["error"]


def test_round_trips_apply_an_inverse_domain_only_where_the_forward_case_has_the_key():
    domain = Domain.parse("storage=float8_e4m3fn d=576")
    assert domain.admits_known({"d": 576, "dtype": "bfloat16"})  # storage is the inverse's own param
    assert not domain.admits_known({"d": 512})
    assert not domain.admits({"d": 576})  # as a domain of the inverse's own cases it needs storage


def test_failure_pattern_needs_clean_evidence():
    outcomes = [({"dtype": "bf16", "n": i}, False) for i in range(3)] + [({"dtype": "fp32", "n": i}, True) for i in range(3)]
    assert failure_pattern(outcomes) == "only where dtype in {bf16} (never with fp32)"
    assert failure_pattern([({"dtype": "bf16"}, True)]) is None
    assert failure_pattern([({"dtype": "bf16"}, False)]) == "across all parameter values"
    # numbers sorted as numbers, and an unset parameter named as the default, not "None"
    tiles = [({"tile": t}, False) for t in (100, 132, 32, 60, 7, 8, 99)] + [({"tile": None}, True)] * 4
    assert failure_pattern(tiles) == "only where tile in {7, 8, 32, 60, 99, 100, 132} (never with default)"
