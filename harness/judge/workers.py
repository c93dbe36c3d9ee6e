"""Judge workers: ``--jobs N`` judges N candidates at once.  ``judge_in_workers`` runs in the judge;
``_start`` and ``_judge`` run in each worker, a process spawned by the judge (multiprocessing "spawn").

A worker is a judge for the tasks it is given: it never imports candidate code; it keeps a runner pool of
its own (its baseline's runners live as long as it does), takes candidates from the judge one at a time
(``task.CandidateTask``) and sends back their ``CandidateResult`` — data.  Workers verify concurrently and
take turns at the device (``lanes``).  Each worker has a place (``placement``): on a machine of several GPUs
one of them (workers dealt round-robin, one timing lane per GPU), and on CUDA a CPU of its own that its
runners share (one worker's pairs all launch from one core; two workers' never from the same one while
there are cores enough).  Every runner a worker starts loads the run's snapshot
(``snapshot``), and the judge hands out no candidate until every worker has imported what it needs, so
no candidate's runner can edit code a worker has yet to read.  A worker that dies takes only its own
candidate with it: that one gets ``error: its judge worker was lost``, and the others are judged on.
"""

from __future__ import annotations

import atexit
import dataclasses
import multiprocessing
import os
import queue
import tempfile
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from harness.core.machine import visible_gpus
from harness.runner import snapshot
from harness.judge.plan import RunPlan
from harness.core.result import CandidateResult, Verdict

_WORKER: dict[str, Any] = {}  # in a worker: its task


@dataclass(frozen=True)
class Placement:
    """Where one judge worker works: its GPU (None: the machine's only one, or the CPU), the CPU its
    runners share on CUDA, and the CPUs they import on (``process.load_cpu``)."""
    gpu: str | None
    cpu: int
    load: tuple[int, ...] = ()


def placement(slot: int, gpus: Sequence[str], cpus: Sequence[int], jobs: int = 1) -> Placement:
    """Worker ``slot``'s (of ``jobs``) place: GPUs and CPUs dealt round-robin, the first ``jobs`` CPUs one
    to a worker for its runners, the rest dealt likewise for their imports (fewer than the workers: shared
    round-robin; none left: its own CPU)."""
    rest = list(cpus[jobs:])
    load = tuple(rest[slot % jobs::jobs]) or ((rest[slot % len(rest)],) if rest else ())
    return Placement(gpus[slot % len(gpus)] if len(gpus) > 1 else None, cpus[slot % len(cpus)], load)


def _start(run_plan: RunPlan, copy_gbps: float | None, sources: snapshot.Snapshot, lane_folder: str,
           events: Any, started: Any, place: Any, annotated: Any) -> None:
    """A worker's start: its place (``place``: a queue of them; before anything touches the GPU), its
    judge's tools, its baseline's runners loaded (as a verification step).  It waits for every other worker
    to have got this far (``started``, a barrier) before taking a candidate.  ``annotated``: the workers'
    shared record of whose regression cases were timed (``task.CaseChoice``)."""
    from harness.judge import process
    from harness.judge.lanes import Lanes
    from harness.judge.pipeline import make_task
    from harness.judge.task import CaseChoice

    where: Placement = place.get(timeout=300)
    if where.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = where.gpu  # the worker and every runner it starts see that GPU alone
    process.pin_runners(where.cpu, where.load)
    snapshot.during(sources).__enter__()  # for the worker's whole life: every runner it starts loads this copy
    snapshot.Finder(sources).install()  # and what it imports from now on is served from the snapshot too
    started.wait(timeout=300)
    lanes = Lanes(lane_folder, run_plan.options.device + (where.gpu or ""))  # one timing lane per device

    def progress(event: str, **details: Any) -> None:
        if event == "step":
            events.put((event, details))

    task = make_task(run_plan, progress, copy_gbps)
    task.share_device(lanes)
    task.cases = CaseChoice(annotated, annotated.get_lock)
    atexit.register(task.pool.close)
    _WORKER.update(task=task, lanes=lanes, baselines=False, gpu=where.gpu)


def _ready() -> bool:
    """The worker's baseline runners loaded, as a verification step (not while another worker times); a
    baseline that cannot be loaded is the run's usage error, raised in the judge."""
    from harness.judge.sandbox import LoadFailed, RunnerError

    task = _WORKER["task"]
    if task.plan.options.time and not _WORKER["baselines"]:
        with _WORKER["lanes"].work():
            task.pool.start_baselines(task.plan.options.bench.likely_pairs)
            task.pool.baseline()
            for runner in task.pool.extra:
                try:
                    runner.ready()
                except (LoadFailed, RunnerError):
                    pass  # loaded it once already: the pair that needs it says what went wrong
    _WORKER["baselines"] = True
    return True


def _judge(spec: str) -> tuple[CandidateResult, int | None]:
    _ready()
    task = _WORKER["task"]
    cand = next(c for c in task.plan.candidates if c.spec == spec)
    result = task.judge(cand)
    if _WORKER["gpu"] is not None:  # one of several GPUs: which one judged it
        from harness.core.machine import where_judged

        result = dataclasses.replace(result, judged_on=f"{where_judged(task.plan.options.device)} (GPU {_WORKER['gpu']})")
    return result, task.pool.threads


def judge_in_workers(run_plan: RunPlan, copy_gbps: float | None, sources: snapshot.Snapshot,
                     progress: Callable[..., None],
                     on_done: Callable[[CandidateResult], None]) -> list[tuple[CandidateResult, int | None]]:
    """Each candidate's result (and the torch threads its baseline ran with), in the plan's order, judged
    by ``--jobs`` workers; ``on_done`` is told of each as it finishes.  A worker that dies breaks the whole
    pool of workers: the candidates not finished then are judged again by fresh workers, once; any still
    unfinished after that are lost."""
    done: dict[str, tuple[CandidateResult, int | None]] = {}
    annotated = multiprocessing.get_context("spawn").Array("d", [0.0, 0.0])  # shared by every worker (both tries)
    for _ in range(2):
        remaining = [c for c in run_plan.candidates if c.spec not in done]
        if not remaining or not _judge_some(run_plan, remaining, copy_gbps, sources, progress, done, on_done, annotated):
            break
    for cand in run_plan.candidates:
        if cand.spec not in done:
            done[cand.spec] = (CandidateResult(name=cand.name, spec=cand.spec, doc=cand.doc, verdict=Verdict.ERROR,
                                               error="its judge worker was lost (the process died), twice"), None)
            on_done(done[cand.spec][0])
    return [done[c.spec] for c in run_plan.candidates]


def _judge_some(run_plan: RunPlan, cands: list, copy_gbps: float | None, sources: snapshot.Snapshot,
                progress: Callable[..., None], done: dict, on_done: Callable[[CandidateResult], None],
                annotated: Any) -> list:
    """Judge ``cands`` in a fresh pool of workers, into ``done``; those left unfinished by a broken pool."""
    jobs = min(run_plan.options.jobs, len(cands))
    context = multiprocessing.get_context("spawn")
    events, started, places = context.Queue(), context.Barrier(jobs), context.Queue()
    gpus, cpus = visible_gpus(run_plan.options.device), sorted(os.sched_getaffinity(0))
    for slot in range(jobs):
        places.put(placement(slot, gpus, cpus, jobs))
    relay = threading.Thread(target=_relay, args=(events, progress), daemon=True)
    relay.start()
    try:
        with tempfile.TemporaryDirectory(prefix="harness-lanes-") as folder, \
                ProcessPoolExecutor(jobs, mp_context=context, initializer=_start,
                                    initargs=(run_plan, copy_gbps, sources, folder, events, started, places, annotated)) as pool:
            for ready in [pool.submit(_ready) for _ in range(jobs)]:  # every worker started (the barrier) before
                ready.result()  # any candidate is handed out
            futures = [(cand, pool.submit(_judge, cand.spec)) for cand in cands]
            for cand, future in futures:
                if (outcome := _outcome(future)) is not None:
                    done[cand.spec] = outcome
                    on_done(outcome[0])
    except BrokenProcessPool:  # a worker died while starting
        pass
    finally:
        events.put(None)
        relay.join(timeout=5)
    return [c for c in cands if c.spec not in done]


def _outcome(future: Future) -> tuple[CandidateResult, int | None] | None:
    try:
        return future.result()
    except BrokenProcessPool:
        return None


def _relay(events: Any, progress: Callable[..., None]) -> None:
    """The workers' progress, shown by the judge."""
    while True:
        try:
            item = events.get(timeout=1.0)
        except queue.Empty:
            continue
        except (EOFError, OSError):
            return
        if item is None:
            return
        event, details = item
        progress(event, **details)
