"""The ``harness`` command line: list, run, verify, bench, profile, report, compare, history, export-tests,
comment.

Exit codes: 0 everything asked for passed; 1 a candidate did not pass (or a round trip failed, the
checkout changed, the regression gate tripped); 2 a usage mistake (bad spec, policy, device, size or
path), reported in one line without a traceback (``--debug`` shows one); 3 everything passed but the
timings are not to be trusted: the machine was noisy (other processes took CPU while timing, or the
baseline's medians disagreed within the run; the report says so at the top).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from rich.console import Console

from harness.cli.arguments import parser
from harness.cli.options import PROJECT_COMMANDS, in_project, run_options
from harness.core import result, schema
from harness.core.candidates import SpecError, describe, discover
from harness.core.errors import EXIT_FAILED, EXIT_NOISY, EXIT_OK, EXIT_USAGE, UsageError
from harness.core.target import TargetError, discover_targets, get_target, in_run_order
from harness.judge import gate
from harness.render import console as tty
from harness.render import report, runs
from harness.runner import readonly

if TYPE_CHECKING:
    from harness.judge.pipeline import Pipeline


def _execute(args: argparse.Namespace, out: Console, err: Console, verify: bool, time: bool,
             gated: Callable[["Pipeline", result.RunResult], result.Gate] | None = None) -> list[result.RunResult]:
    """Every target the options cover, in order, each in its own pipeline (and its regression gate, where
    ``gated`` is given, right after it); round trips attached at the end."""
    from harness.judge.pipeline import pipelines, with_round_trips

    planned = pipelines(run_options(args, verify, time))
    runs = []
    for pipeline in planned:
        try:
            with tty.LiveProgress(err) as progress:
                pipeline.progress = progress
                run = pipeline.run()
                runs.append(dataclasses.replace(run, gate=gated(pipeline, run)) if gated else run)
        except KeyboardInterrupt:
            finished = getattr(pipeline, "finished", [])
            if finished:
                out.print(f"interrupted after {len(finished)} of {len(pipeline.candidates)} candidates of "
                          f"{tty.escape(pipeline.target.name)}:")
                out.print(tty.summary_table(_partial(pipeline, finished), out.width))
            raise
    return [with_round_trips(p, r) for p, r in zip(planned, runs)]


def _partial(pipeline: "Pipeline", finished: list) -> result.RunResult:
    from harness.judge.environment import environment

    return result.RunResult(target=pipeline.target.name, function=pipeline.target.function_name,
                            source=pipeline.target.source, baseline=pipeline.baseline_spec,
                            policy=pipeline.options.policy, created="", candidates=tuple(finished),
                            environment=environment(pipeline.options.device, None))


def _json_path(path: str, run: result.RunResult, runs: list[result.RunResult]) -> Path:
    """``--json PATH``: PATH itself for a run of one target; PATH-<target>.json for each of several."""
    p = Path(path)
    return p if len(runs) == 1 else p.with_name(f"{p.stem}-{run.target}{p.suffix or '.json'}")


def _write(path: str | Path, text: str) -> Path:
    try:
        return schema.write_atomic(path, text)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _check_writable(directory: Path, option: str = "--out") -> None:
    """Fail before minutes of work, not after: the output folder must be creatable and writable."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".harness-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to {option} {directory}: {exc.strerror or exc}") from None
    readonly.protect(directory)  # its runners see it read-only: no candidate plants a report there


def _check_output_file(path: str | None, option: str) -> None:
    """An output file's folder must be writable and the path must not be a folder, before any work."""
    if path is None:
        return
    if Path(path).is_dir():
        raise UsageError(f"{option} {path} is a directory, expected a file path")
    _check_writable(Path(path).parent, option)


def cmd_list(args: argparse.Namespace, out: Console) -> int:
    """Targets and candidates as read from source: listing runs no candidate code."""
    targets = discover_targets()
    chosen = [get_target(args.target, targets)] if args.target else in_run_order(targets)
    for target in chosen:
        out.print(f"[bold]{tty.escape(target.name)}[/] — oracle {tty.escape(target.function_name)} "
                  f"({tty.escape(target.source)})")
        for policy in target.policies:
            out.print(f"  --policy {policy:<9} {tty.escape(target.policy_text.get(policy, ''))}", highlight=False)
        out.print(f"  --sizes: {tty.escape(target.sizes_help)}", highlight=False)
        params = sorted({k for case in target.named_cases() for k in case.params})
        out.print(f"  --where over: {tty.escape(', '.join(params))}", highlight=False)
        for cand in discover(target.name, list(targets)):
            spec = tty.plain(cand.spec)
            first = tty.plain(" ".join(cand.doc.split("\n\n")[0].split())) if cand.doc else ""
            first = textwrap.shorten(first, max(30, out.width - 48), placeholder=" …") if first else ""
            if len(spec) > 45:  # a long spec on its own line, its words below, in the column
                out.print(f"  {spec}", highlight=False, markup=False)
                spec = ""
            out.print(f"  {spec:<45} {first}".rstrip(), highlight=False, markup=False)
            if cand.supports:
                out.print(f"  {'':<45} supports only {tty.plain(cand.supports.text)}", highlight=False, markup=False)
    return EXIT_OK


def cmd_machine(args: argparse.Namespace, out: Console) -> int:
    """The line a run's report ends with, measured now: to set a run's figures beside this machine's."""
    from harness.core.fmt import machine_line
    from harness.judge.environment import environment
    from harness.judge.noise import machine_state
    from harness.judge.plan import check_device
    from harness.runner.clocks import cpu_cache, measure_copy_bandwidth

    check_device(args.device)
    state = machine_state()
    env = dataclasses.replace(environment(args.device, measure_copy_bandwidth(args.device)), load_start=state.load1,
                              governor=state.governor)
    if args.device == "cpu":
        cache, source = cpu_cache()
        env = dataclasses.replace(env, cache_bytes=cache, cache_source=source)
    out.print(f"machine: {machine_line(env)}", highlight=False, markup=False, soft_wrap=True)  # one line to grep
    if env.governor:
        out.print(f"CPU frequency governor: {env.governor}", highlight=False, markup=False)
    return EXIT_OK


def cmd_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from harness.render import charts, history

    out_dir = Path(args.out)
    _check_writable(out_dir)
    _check_output_file(args.json, "--json")
    if args.save:
        _check_writable(Path(args.save), "--save")
    previous = _load(args.compare) if args.compare else None
    commit = None
    if args.against:
        from harness.judge import against

        commit = against.resolve(args.against)
    gated = None
    if previous is not None:
        gated = lambda pipeline, run: (gate.against_saved(previous, run, args.fail_slower, args.compare)  # noqa: E731
                                       if run.target == previous.target else None)
    elif commit is not None:
        gated = lambda pipeline, run: against.against(pipeline.plan, run, args.against, commit,  # noqa: E731
                                                      args.fail_slower, pipeline.progress)
    runs = _execute(args, out, err, verify=True, time=True, gated=gated)
    written = []
    for i, run in enumerate(runs):
        stem = out_dir / f"{run.target}-{run.environment.device}"
        if charts.available() and any(c.timings for c in run.candidates):
            drawn = _chart(lambda: charts.speedup_by_size(run), out)
            if drawn is not None:
                run = runs[i] = dataclasses.replace(run, chart=f"{stem.name}-speedup.svg")
                written.append(_write(out_dir / run.chart, drawn))
        written.append(_write(stem.with_suffix(".json"), schema.dumps(run)))
        written.append(_write(stem.with_suffix(".md"), report.markdown(run)))
        if args.save:
            written.append(_write(history.path_of(Path(args.save), run), schema.dumps(run)))
        if args.json:
            _write(_json_path(args.json, run, runs), schema.dumps(run))
    if runs:
        written.append(_write(out_dir / f"index-{runs[0].environment.device}.md", report.index(runs)))
    for run in runs:
        tty.render(run, out, args.show_reproducer)
    out.print("\n".join(f"wrote {tty.plain(path)}" for path in written), highlight=False, markup=False)
    code = _exit_code(runs, err)
    for run in runs:
        if run.gate is not None:
            colour = {"passed": "green", "failed": "red"}.get(run.gate.status, "yellow")
            err.print(f"[{colour}]regression gate {run.gate.status}:[/] {tty.escape(run.gate.reason)}", highlight=False)
            code = _worse(code, gate.EXIT_FOR_STATUS[run.gate.status])
    if previous is not None and not any(run.target == previous.target for run in runs):
        err.print(f"[red]{tty.escape(args.compare)} is a result of {tty.escape(previous.target)}, which this run "
                  f"did not cover[/]", highlight=False)
        return EXIT_FAILED
    return code


def _worse(a: int, b: int) -> int:
    """The more serious of two exit codes: a failure (1) over a noisy or undecided run (3) over success."""
    return max(a, b, key=lambda c: {EXIT_OK: 0, EXIT_NOISY: 1, EXIT_FAILED: 2}.get(c, 3))


def _exit_code(runs: list[result.RunResult], err: Console) -> int:
    """1 when a candidate did not pass (or, timed only, ended in error or failed the audit), a round trip
    failed, or the checkout changed during the run (the terminal summary names the changes); else 0."""
    ok = all(c.verdict in ("pass", "untested") for run in runs for c in run.candidates)
    ok = ok and not any(run.checkout_changes for run in runs)
    ok = ok and all(r.passed for run in runs for r in run.round_trips)
    if not ok:
        return EXIT_FAILED
    noisy = [n.text for run in runs for n in run.noise]
    for note in noisy:
        err.print(f"[yellow]noisy machine:[/] {tty.escape(note)}", highlight=False)
    return EXIT_NOISY if noisy else EXIT_OK


def _finish(args: argparse.Namespace, runs: list[result.RunResult], out: Console, err: Console) -> int:
    if args.json:
        for run in runs:
            _write(_json_path(args.json, run, runs), schema.dumps(run))
    for run in runs:
        tty.render(run, out, getattr(args, "show_reproducer", False))
    return _exit_code(runs, err)


def cmd_verify(args: argparse.Namespace, out: Console, err: Console) -> int:
    _check_output_file(args.json, "--json")
    return _finish(args, _execute(args, out, err, verify=True, time=False), out, err)


def cmd_bench(args: argparse.Namespace, out: Console, err: Console) -> int:
    _check_output_file(args.json, "--json")
    return _finish(args, _execute(args, out, err, verify=False, time=True), out, err)


def cmd_profile(args: argparse.Namespace, out: Console) -> int:
    from harness.judge.pipeline import profile_spec
    from harness.judge.plan import check_device

    check_device(args.device)
    _check_output_file(args.json, "--json")
    try:
        targets = discover_targets()
        name = args.target
        if name is None and args.spec.startswith("oracle:"):
            name = args.spec.removeprefix("oracle:")
        elif name is None and len(targets) > 1:
            name = describe(args.spec).target
        target = get_target(name, targets)
        size = target.parse_size(args.size) if args.size else target.sizes(args.device, quick=True)[-1]
        if args.spec != f"oracle:{target.name}":
            describe(args.spec)
    except (ValueError, TargetError) as exc:
        raise UsageError(str(exc)) from None
    prof = profile_spec(args.spec, target, size, args.device)
    if args.json:
        _write(args.json, json.dumps(dataclasses.asdict(prof), indent=2) + "\n")
    out.print(tty.profile_view(prof))
    return EXIT_OK


def _load(path: str) -> result.RunResult:
    try:
        return schema.load(path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_report(args: argparse.Namespace, out: Console) -> int:
    _check_output_file(args.output, "-o")
    run = _load(args.source)
    if args.format == "terminal":
        if not args.output:
            tty.render(run, out)
            return EXIT_OK
        buffer = io.StringIO()
        tty.render(run, Console(file=buffer, width=140))
        text = buffer.getvalue()
    else:
        text = report.markdown(run) if args.format == "markdown" else report.pr_comment(run)
    if args.output:
        _write(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _chart(draw: Callable[[], str], out: Console) -> str | None:
    """A chart's SVG, or None with a note: a chart is never worth losing a report over."""
    try:
        return draw()
    except Exception as exc:  # matplotlib on untrusted names and values: the tables carry the numbers
        out.print(f"chart not drawn: {tty.plain(type(exc).__name__)}: {tty.plain(exc)}", highlight=False, markup=False)
        return None


def cmd_history(args: argparse.Namespace, out: Console) -> int:
    """Saved runs in order (pure: nothing is run); the chart goes beside them when matplotlib is there."""
    from harness.render import charts, history

    _check_output_file(args.output, "-o")
    directory = Path(args.directory)
    saved = history.load(directory, args.target, args.device)
    chart = None
    if charts.available():
        name = history.chart_name(saved[0].run.target, args.device)
        drawn = _chart(lambda: charts.history([s.run for s in saved], [s.label for s in saved]), out)
        if drawn is not None:
            chart = name
            out.print(f"wrote {tty.plain(_write(directory / chart, drawn))}", highlight=False, markup=False)
    if args.format == "markdown" or args.output:
        text = runs.history(saved, chart) if args.format == "markdown" else _terminal_text(tty.history_table(saved))
        if args.output:
            out.print(f"wrote {tty.plain(_write(args.output, text))}", highlight=False, markup=False)
        else:
            sys.stdout.write(text)
    else:
        out.print(tty.history_table(saved))
    return EXIT_OK


def cmd_compare(args: argparse.Namespace, out: Console) -> int:
    """Two saved runs side by side (pure: nothing is run)."""
    _check_output_file(args.output, "-o")
    old, new = _load(args.old), _load(args.new)
    if (why := gate.mismatch(old, new)) is not None:
        raise UsageError(f"{args.old} and {args.new} cannot be compared: {why}")
    found = gate.changes(old, new, args.noise_floor)
    if not found:
        raise UsageError(f"{args.old} and {args.new} have no candidate (by spec) and size in common: nothing to compare")
    if args.format == "markdown" or args.output:
        text = runs.comparison(old, new, found) if args.format == "markdown" else _terminal_text(
            tty.comparison_table(old, new, found))
        if args.output:
            out.print(f"wrote {tty.plain(_write(args.output, text))}", highlight=False, markup=False)
        else:
            sys.stdout.write(text)
    else:
        out.print(tty.comparison_table(old, new, found))
    out.print(f"compared {len(found)} candidate/size pair{'s' * (len(found) != 1)}", highlight=False)
    return EXIT_OK


def _terminal_text(renderable: object) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=140).print(renderable)
    return buffer.getvalue()


def cmd_export_tests(args: argparse.Namespace, out: Console) -> int:
    from harness.render.export import export_tests

    _check_output_file(args.output, "-o")
    run = _load(args.source)
    if args.candidate:
        describe(args.candidate)  # read, not imported: the generated file imports it when pytest runs
    try:
        text = export_tests(run, args.candidate, args.every_case)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:  # a result whose cases this target cannot rebuild
        raise UsageError(f"{args.source}: a case cannot be exported ({type(exc).__name__}: {exc})") from None
    path = _write(args.output, text)
    out.print(f"wrote {tty.plain(path)}", highlight=False, markup=False)
    return EXIT_OK


def cmd_comment(args: argparse.Namespace, out: Console) -> int:
    from harness.render.prbot import PostError, post_comment

    runs = [_load(path) for path in args.source]
    devices = {run.environment.device for run in runs}
    if len(devices) > 1:
        raise UsageError(f"--from: results of different devices ({', '.join(sorted(devices))}) make separate comments")
    body = report.pr_comment(runs)
    if not args.post:
        sys.stdout.write(body)
        return EXIT_OK
    if args.pr is None:
        raise UsageError("--post needs --pr N")
    try:
        posted = post_comment(body, args.pr, report.marker(runs), args.repo, args.author, args.head_sha)
    except PostError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_FAILED
    out.print(f"{posted.action} the comment on PR {args.pr}: {posted.url}", highlight=False)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse has already printed in one line
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:  # bare `harness`: the commands, on standard error (it is still a usage mistake)
        sys.stderr.write(ap.format_help())
        return EXIT_USAGE
    out, err = tty.make_console(), tty.make_console(stderr=True)
    readonly.forget()  # this command's output folders only (``_check_writable`` names them)
    try:
        if args.command in PROJECT_COMMANDS:
            in_project(args)
        if args.command == "list":
            return cmd_list(args, out)
        if args.command == "machine":
            return cmd_machine(args, out)
        if args.command == "report":
            return cmd_report(args, out)
        if args.command == "profile":
            return cmd_profile(args, out)
        if args.command == "export-tests":
            return cmd_export_tests(args, out)
        if args.command == "comment":
            return cmd_comment(args, out)
        if args.command == "compare":
            return cmd_compare(args, out)
        if args.command == "history":
            return cmd_history(args, out)
        return {"run": cmd_run, "verify": cmd_verify, "bench": cmd_bench}[args.command](args, out, err)
    except (UsageError, SpecError, TargetError) as exc:
        if args.debug:
            raise
        print(f"harness: error: {' '.join(tty.plain(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("harness: interrupted; reports written earlier are untouched", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
