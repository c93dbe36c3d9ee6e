"""``--cluster ADDRESS``: candidates judged on a Dask distributed cluster.  ``judge_on_cluster`` runs in the
judge, as a Dask client; ``judge_task`` runs on the Dask workers.

Each candidate is one Dask task.  The worker that runs it is a judge for that task: it never imports
candidate code; it keeps, per worker process, the judge's tools for the plan (a runner pool whose
baseline runners serve every candidate it judges), starts the candidate's runners locally from the run's
snapshot (sent with the task, so every host executes the code the run started with) and returns data —
the ``CandidateResult``, with the host and device that judged it.  Worker processes on one host share the
device's timing lane (``lanes``, in a per-user temporary folder), so candidates verify concurrently and
are timed one at a time per device.  A worker lost mid-run: Dask runs its task again on another worker;
a task that loses every worker it is tried on is ``error: its cluster worker was lost``, and nothing judged
elsewhere is lost.

Workers need this project where they start (``dask worker ADDRESS --nthreads 1``, from the project root,
with harness and torch installed): the oracles a plan names are imported from there.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from harness.runner import snapshot
from harness.core.errors import UsageError
from harness.judge.plan import RunPlan
from harness.core.result import CandidateResult, Verdict

_TASKS: dict[str, Any] = {}  # in a worker process: the judge's tools per plan
_ONE_AT_A_TIME = threading.Lock()  # a worker process judges one candidate at a time, whatever its threads


def _plan_key(run_plan: RunPlan, sources: snapshot.Snapshot) -> str:
    return f"{sources.digest}:{run_plan.target.name}:{hash(repr(run_plan.options))}"


def _task_for(run_plan: RunPlan, sources: snapshot.Snapshot) -> Any:
    """This worker process's tools for ``run_plan`` (made on its first candidate of the run)."""
    from harness.runner.clocks import measure_copy_bandwidth
    from harness.judge.lanes import Lanes
    from harness.judge.pipeline import make_task
    from harness.judge.task import CaseChoice

    key = _plan_key(run_plan, sources)
    if key not in _TASKS:
        for old in _TASKS.values():  # another run's runners: not needed any more
            old.pool.close()
        _TASKS.clear()
        device = run_plan.options.device
        folder = Path(tempfile.gettempdir()) / f"harness-lanes-{os.getuid()}"
        folder.mkdir(mode=0o700, exist_ok=True)
        lanes = Lanes(folder, device)
        with lanes.timing():  # this device's own copy bandwidth, for the physics check, measured alone
            copy_gbps = measure_copy_bandwidth(device) if run_plan.options.time else None
        task = make_task(run_plan, lambda *a, **k: None, copy_gbps)
        task.share_device(lanes)
        task.cases = CaseChoice(every=True)  # the workers do not see each other's results: every candidate's cases
        _TASKS[key] = task
    return _TASKS[key]


def judge_task(run_plan: RunPlan, spec: str, sources: snapshot.Snapshot) -> tuple[CandidateResult, int | None]:
    """On a Dask worker: one candidate judged, with where."""
    import dataclasses

    from harness.core.machine import where_judged

    with _ONE_AT_A_TIME, snapshot.during(sources):
        task = _task_for(run_plan, sources)
        cand = next(c for c in run_plan.candidates if c.spec == spec)
        outcome = task.judge(cand)
        return dataclasses.replace(outcome, judged_on=where_judged(run_plan.options.device)), task.pool.threads


def judge_on_cluster(run_plan: RunPlan, sources: snapshot.Snapshot, address: str,
                     on_done: Callable[[CandidateResult], None]) -> list[tuple[CandidateResult, int | None]]:
    """Each candidate's result, in the plan's order, judged on the cluster at ``address``."""
    try:
        from distributed import Client, as_completed
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker
    except ImportError:
        raise UsageError("--cluster needs Dask distributed: pip install -e '.[cluster]'") from None
    try:
        client = Client(address, timeout=30)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"--cluster {address}: cannot reach a Dask scheduler there ({exc})") from None
    done: dict[str, tuple[CandidateResult, int | None]] = {}
    try:
        scattered = client.scatter(sources, broadcast=True)
        futures = {client.submit(judge_task, run_plan, cand.spec, scattered, pure=False, retries=1): cand
                   for cand in run_plan.candidates}
        for future in as_completed(futures):
            cand = futures[future]
            try:
                done[cand.spec] = future.result()
            except (KilledWorker, FutureCancelledError) as exc:
                lost = CandidateResult(name=cand.name, spec=cand.spec, doc=cand.doc, verdict=Verdict.ERROR,
                                       error=f"its cluster worker was lost ({type(exc).__name__})")
                done[cand.spec] = (lost, None)
            on_done(done[cand.spec][0])
    finally:
        client.close()
    return [done[c.spec] for c in run_plan.candidates]
