"""Attacks on the judge through the pipe, the clock, other processes and the terminal (an attacker's pass
over the runner design): each costs only the attacker's verdict, with a one-line reason, and the run, its
reports and the other candidates' results are intact."""

from pathlib import Path

import pytest


from harness.core import schema
from harness.cli.commands import main

WIRE = "tests/hostile/wire.py"
PLANTED = Path(__file__).resolve().parent.parent / "harness" / "__pycache__" / "planted_by_a_candidate.cpython-311.pyc"


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    out = tmp_path_factory.mktemp("wire")
    argv = ["run", "--target", "quantize_k_cache", "--out", str(out), "--sizes", "1x32x576", "--budget", "0.5", "--examples", "3", "--no-profile"]
    for name in ("deep_json", "huge_int", "huge_shape", "zero_time", "slows_the_baseline", "prints_escapes"):
        argv += ["--candidate", f"{WIRE}:{name}"]
    argv += ["--candidate", "candidates/fused.py:fused"]
    code = main(argv)
    return code, {c.name: c for c in schema.load(out / "quantize_k_cache-cpu.json").candidates}, out


def test_frames_the_judge_cannot_rebuild_are_that_candidates_error(attacked):
    _, by_name, out = attacked
    assert by_name["deep_json"].error == "sent malformed data on the runner pipe (frame's JSON is nested too deeply)"
    assert by_name["huge_shape"].verdict == "error"
    assert by_name["huge_shape"].error.startswith("sent malformed data on the runner pipe (")
    assert (out / "quantize_k_cache-cpu.md").exists()


def test_an_integer_too_long_to_read_is_that_candidates_error(attacked):
    code, by_name, out = attacked
    c = by_name["huge_int"]
    assert c.verdict == "error" and c.timings == ()
    assert c.error.startswith("sent malformed data on the runner pipe (frame's JSON cannot be read (ValueError: "), c.error
    assert "\n" not in c.error and len(c.error) < 400
    assert code == 1 and by_name["fused"].verdict == "pass" and by_name["fused"].timings
    report = (out / "quantize_k_cache-cpu.md").read_text()
    assert "`huge_int`" in report and "`fused`" in report


@pytest.mark.parametrize("payload, reason", [
    (b'{"kind": "called", "value": ' + b"9" * 5000 + b"}", "frame's JSON cannot be read (ValueError: Exceeds the limit (4300 digits)"),
    (b"9" * 5000, "frame's JSON cannot be read (ValueError: "),
    (b'{"kind": "called"', "frame is not JSON ("),
    (b'{"kind": "\xff"}', "frame is not JSON ("),
    (b"[" * 20000 + b"]" * 20000, "frame's JSON is nested too deeply"),
    (b'{"kind": 7}', "frame is not an object with a 'kind'"),
])
def test_every_frame_the_judge_cannot_parse_is_a_protocol_error(payload, reason):
    import os
    import struct

    from harness.core.protocol import ProtocolError, read_frame

    r, w = os.pipe()
    try:
        os.write(w, struct.pack("<4sIQ", b"HRN1", len(payload), 0) + payload)
        os.close(w)
        with pytest.raises(ProtocolError) as caught:
            read_frame(r)
        assert str(caught.value).startswith(reason) and "\n" not in str(caught.value)
    finally:
        os.close(r)


def test_a_frame_cut_short_is_a_closed_pipe_not_malformed_data():
    import os
    import struct

    from harness.core.protocol import Closed, read_frame

    r, w = os.pipe()
    os.write(w, struct.pack("<4sIQ", b"HRN1", 100, 0) + b'{"kind": ')
    os.close(w)
    with pytest.raises(Closed):
        read_frame(r)
    os.close(r)


@pytest.mark.parametrize("desc", [
    {"kind": "tensor", "dtype": "float32", "shape": [10 ** 40], "nbytes": 4},
    {"kind": "tensor", "dtype": "float32", "shape": [1.5], "nbytes": 4},
    {"kind": "tensor", "dtype": "float32", "shape": [1], "nbytes": "4"},
    {"kind": "tensor", "dtype": "Tensor", "shape": [1], "nbytes": 4},
    {"kind": "list", "items": [{"kind": "scalar", "value": [1]}]},
])
def test_every_value_the_judge_cannot_rebuild_is_a_protocol_error(desc):
    from harness.core.protocol import ProtocolError, decode_value

    with pytest.raises(ProtocolError):
        decode_value(desc, b"\0" * 4)


def test_a_zero_time_is_malformed(attacked):
    _, by_name, _ = attacked
    c = by_name["zero_time"]
    assert c.verdict == "error" and c.error == "sent malformed data on the runner pipe (a time of 0.0)"


def test_a_helper_that_stops_the_other_runner_during_timing_is_caught(attacked):
    _, by_name, _ = attacked
    c = by_name["slows_the_baseline"]
    assert c.verdict == "error" and c.timings == ()
    assert c.error.startswith("started 1 process while it was timed (killed)"), c.error


def test_the_others_are_still_judged(attacked, capfd):
    code, by_name, _ = attacked
    assert code == 1
    assert by_name["prints_escapes"].verdict == "pass" and by_name["fused"].verdict == "pass"
    assert by_name["fused"].timings


def test_a_runners_output_reaches_the_terminal_without_its_control_characters(tmp_path, capfd):
    assert main(["verify", "--target", "quantize_k_cache", "--examples", "1", "--candidate", f"{WIRE}:prints_escapes"]) == 0
    err = capfd.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "?]0;owned??[2J?[1;32mharness: all candidates pass" in err


def test_a_planted_bytecode_file_fails_the_run(capsys, isolated):
    """In mount namespaces the checkout is read-only to the candidate: the plant raises, nothing is written;
    without, the checkout comparison finds the file."""
    try:
        code = main(["verify", "--target", "quantize_k_cache", "--examples", "1", "--candidate", f"{WIRE}:plants_bytecode"])
        planted = PLANTED.exists()
    finally:
        PLANTED.unlink(missing_ok=True)
    assert code == 1
    said = capsys.readouterr().out.replace("\n", "")
    if isolated:
        assert not planted and "Read-only file system" in said, said
    else:
        assert f"{PLANTED} created" in said


@pytest.mark.parametrize("mutate, message", [
    ("deep", "nested too deeply"),
    (lambda d: d["candidates"][-1]["timings"][0].update(speedup=float("inf")), "speedup: expected a finite number"),
    (lambda d: d["candidates"][-1]["timings"][0].update(speedup=float("nan")), "speedup: expected a finite number"),
    (lambda d: d["candidates"][-1]["timings"][0].update(pair_speedups=[1.0, 1.1], pair_verdicts=["faster"] * 3),
     "2 pair speedups but 3 pair verdicts"),
    (lambda d: d["candidates"][-1]["timings"][0].update(pair_speedups=[1.0] * 100000, pair_verdicts=["faster"] * 100000), "pairs of runners (at most 64)"),
])
def test_crafted_results_are_refused_in_one_line(attacked, tmp_path, capsys, mutate, message):
    import json

    _, _, out = attacked
    data = json.loads((out / "quantize_k_cache-cpu.json").read_text())
    path = tmp_path / "crafted.json"
    if mutate == "deep":
        path.write_text(json.dumps(data)[:-1] + ', "deep": ' + "[" * 5000 + "]" * 5000 + "}")
    else:
        mutate(data)
        path.write_text(json.dumps(data))
    for command in (["report", "--from", str(path)], ["comment", "--from", str(path)]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err


def test_zero_times_in_a_result_still_render(attacked, tmp_path, capsys):
    import json

    _, _, out = attacked
    data = json.loads((out / "quantize_k_cache-cpu.json").read_text())
    # the candidate whose regression cases were timed (the best always is; under load it need not be fused)
    timed = next(c for c in data["candidates"] if c["case_timings"])
    timed["case_timings"][0]["candidate_s"] = 0
    path = tmp_path / "zero.json"
    path.write_text(json.dumps(data))
    assert main(["report", "--from", str(path)]) == 0
