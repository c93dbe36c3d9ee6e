"""The device's timing lane: verification steps of different judge workers run together; a timer waits
for the steps in flight, then has the device alone, and a stream of steps cannot starve it."""

import threading
import time

from harness.judge.lanes import Lanes


def test_timing_waits_for_steps_in_flight_and_blocks_new_ones(tmp_path):
    verifier, timer, other = Lanes(tmp_path, "cpu"), Lanes(tmp_path, "cpu"), Lanes(tmp_path, "cpu")
    log: list[str] = []
    in_step = threading.Event()

    def step() -> None:
        with verifier.work():
            in_step.set()
            time.sleep(0.3)
            log.append("step done")

    def time_it() -> None:
        in_step.wait()
        with timer.timing():
            log.append("timing")
            time.sleep(0.3)
            log.append("timing done")

    def late_step() -> None:
        in_step.wait()
        time.sleep(0.1)  # after the timer asked for the lane
        with other.work():
            log.append("late step")

    threads = [threading.Thread(target=f) for f in (step, time_it, late_step)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert log == ["step done", "timing", "timing done", "late step"]


def test_steps_of_several_workers_overlap_and_a_timer_inside_its_own_step_does_not_deadlock(tmp_path):
    a, b = Lanes(tmp_path, "cuda"), Lanes(tmp_path, "cuda")
    with a.work():
        with b.work():  # shared: both at once
            pass
    with a.timing():
        with a.work():  # its own verification step while it times (a spot check in an extra runner)
            pass
    with b.timing():  # released: the next timer gets the lane at once
        pass
