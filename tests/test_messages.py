"""The runner protocol's typed messages: each one survives its trip through a frame's JSON, and whatever a
runner could send that is not one of the expected messages is a one-line ``ProtocolError``."""

import json

import pytest

from harness.core import messages as m
from harness.core.protocol import ProtocolError

SAMPLES = [
    m.CallCase({"name": "c", "family": "seed", "params": {}, "seed": 0}, "cpu"),
    m.CallOn([{"tensor": 0}], {"dv": 512}, None),
    m.Prepare({"name": "s", "family": "size", "params": {}, "seed": 1}, fresh=True, warm=False, move_inputs=True),
    m.Place(3, 8, 2), m.Round(8, 3, 2), m.TimedOutput(4, digest=True), m.OutputFor(3, 4), m.TimeCase({"name": "c"}),
    m.Release(), m.ProfileAt({"name": "s"}),
    m.Ready(2, ["threads 4 -> 2"]), m.LoadFailed("cannot import x"), m.Prepared("ab12", 0.004), m.Prepared("ab12"),
    m.Timed(0.001, 0.0005), m.Digest("torch.uint8(4,):0000abcd"), m.Ok(), m.Profiled({"lines": []}),
    m.Failed("RuntimeError: boom"), m.StateChanged(["flush-denormal on"]),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda msg: type(msg).__name__)
def test_every_message_survives_a_frame(message):
    header = json.loads(json.dumps(message.header()))
    assert m.parse(header) == message
    assert m.parse(header, type(message)) == message


@pytest.mark.parametrize("header, reason", [
    ({"kind": "timed", "seconds": 0.0}, "a time of 0.0"),
    ({"kind": "timed", "seconds": float("nan")}, "a time of nan"),
    ({"kind": "timed", "seconds": 1e9}, "a time of 1000000000.0"),
    ({"kind": "timed", "seconds": True}, "'seconds' is bool"),
    ({"kind": "timed", "seconds": "0.1"}, "'seconds' is str"),
    ({"kind": "timed", "seconds": 0.1, "written_s": -1.0}, "a write time of -1.0"),
    ({"kind": "timed"}, "without 'seconds'"),
    ({"kind": "digest", "digest": "x" * (m.MAX_DIGEST + 1)}, "an output digest of"),
    ({"kind": "ready", "threads": 2, "state_changes": ["ok", 3]}, "'state_changes' is list"),
    ({"kind": "prepared", "input_digest": 7}, "'input_digest' is int"),
    ({"kind": "no such kind"}, "'no such kind' message"),
    ({"kind": ["a"]}, "message"),
    ({}, "'None' message"),
])
def test_what_is_not_a_message_is_refused_in_one_line(header, reason):
    with pytest.raises(ProtocolError, match=reason.replace("(", r"\(").replace(")", r"\)")) as refused:
        m.parse(header)
    assert "\n" not in str(refused.value)


def test_a_reply_of_another_kind_than_expected_is_refused():
    with pytest.raises(ProtocolError, match="a 'ok' message where 'timed' was due"):
        m.parse(m.Ok().header(), m.Timed)
    assert m.parse({"kind": "timed", "seconds": 2}, m.Timed) == m.Timed(2)  # an integer is a number of seconds


def test_every_request_the_runner_answers_has_a_kind_of_its_own():
    kinds = [cls.kind for cls in (*m.REQUESTS, *m.REPLIES)]
    assert len(set(kinds)) == len(kinds) and all(kinds)
