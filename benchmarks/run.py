"""Run the whole benchmark suite, print the tables and write BENCHMARKS.md.

    python benchmarks/run.py [--scale 1.0] [--only lifecycle,import,echo,...]
                             [--output BENCHMARKS.md] [--json results.json] [--previous results.json]

Run it from an environment with ``pip install -e '.[bench]'`` (uvloop and
Twisted). Twisted's ``twistd`` is found through ``$TWISTD`` (a path; empty or
``none`` leaves Twisted out) or beside this interpreter; without it, its rows
say "not installed". Every target is a ratio taken in this one run on this one
machine. ``--scale`` shrinks (or grows) durations, counts and repetitions: the
test suite's smoke test runs everything at a tiny scale.

Everything runs on 127.0.0.1; every process the suite starts is killed and
reaped before it exits (the suite is a child subreaper, so daemons come back
to it). Exit status: 0 when every benchmark ran (targets may still be missed,
the tables say so), 1 when a benchmark failed or a process had to be killed.

The sections are the modules listed in :data:`SECTIONS`, each with
``run(ctx: harness.Context) -> list[harness.Table]``. ``benchmarks/bench_tap.py``
(the ``.tap`` save/load benchmark) has ``run(scale: float = 1.0) -> dict``
instead: its dict is shown as a table of ``key | value`` (a list of numbers as
median/min/max); an optional ``"checks"`` entry maps a target's description to
True/False (PASS/MISS), and an optional ``"markdown"`` entry is included as it is.

``--previous`` names the ``--json`` of an earlier full run (the same day, the same
machine): every target then shows its ratio in both runs and the spread between them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (BENCH_DIR, ROOT, Context, Noise, Table, become_subreaper, cleanup,  # noqa: E402
                     find_twistd, log_line, machine, ratio_text, wait_for_quiet)

#: The report's sections, in order: (name for --only, module in benchmarks/, required). A required
#: module that is missing fails the run; an optional one not written yet is listed as not run.
#: To add a benchmark: write benchmarks/bench_NAME.py with ``run(ctx) -> list[Table]`` and list it here.
SECTIONS = (
    ("lifecycle", "bench_lifecycle", True),
    ("import", "bench_import", True),
    ("echo", "bench_echo", True),
    ("connmem", "connmem", True),
    ("logging", "bench_logging", True),
    ("tap", "bench_tap", True),
    ("web", "bench_web", True),
    ("workers", "bench_workers", True),
)
GROUPS = tuple(name for name, _, _ in SECTIONS)
MODULES = {name: module for name, module, _ in SECTIONS}
REQUIRED = {name for name, _, required in SECTIONS if required}


def main(argv=None) -> int:
    """Run the selected benchmarks; returns the exit status."""
    parser = argparse.ArgumentParser(description="Run twistdlite's benchmark suite.")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply durations, counts and repetitions (default 1.0; the smoke test uses 0.02)")
    parser.add_argument("--only", default=",".join(GROUPS),
                        help=f"comma-separated benchmarks to run (default all: {','.join(GROUPS)})")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"),
                        help="where to write the Markdown report ('-' for nowhere; default BENCHMARKS.md)")
    parser.add_argument("--json", dest="json_path", help="also write the raw results as JSON here")
    parser.add_argument("--previous", metavar="JSON",
                        help="the --json of an earlier run: show each target's ratio in both runs and the spread")
    parser.add_argument("--wait-quiet", type=float, default=60.0, metavar="SECONDS",
                        help="first wait up to this long for other processes to leave the CPUs alone, and up "
                             "to twice that in all before rounds of measurements (default 60; 0: never wait)")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in only if name not in GROUPS]
    if unknown or args.scale <= 0:
        parser.error(f"unknown benchmark {', '.join(unknown)}" if unknown else "--scale must be > 0")
    previous = None
    if args.previous:
        try:
            previous = json.loads(Path(args.previous).read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"cannot read --previous {args.previous}: {exc}")

    become_subreaper()
    signal.signal(signal.SIGTERM, _exit_on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="twistdlite-bench-"))
    ctx = Context(args.scale, workdir, find_twistd(), quiet_budget=2 * args.wait_quiet)
    ctx.flags = "".join(f" {flag} {value:g}" for flag, value, default in (
        ("--scale", args.scale, 1.0), ("--wait-quiet", args.wait_quiet, 60.0)) if value != default)
    if args.previous:
        ctx.flags += f" --previous {Path(args.previous).name}"
    quiet = ""
    if args.wait_quiet > 0:
        log_line(f"waiting up to {args.wait_quiet:g} s for a quiet machine")
        ok, waited = wait_for_quiet(args.wait_quiet)
        quiet = (f"waited {waited:.0f} s for other processes to go quiet" if ok else
                 f"other processes kept the machine busy for all of the {waited:.0f} s waited; started anyway")
    noise = Noise()
    began = time.monotonic()
    sections: list = []
    errors: list = []
    leftovers: list = []
    try:
        for name in only:
            log_line(f"running {name}")
            try:
                tables = run_group(name, ctx)
                sections.append((name, tables))
                errors += [(name, f"table {table.id} ({table.title}) holds no measurement")
                           for table in tables if table.empty()]
            except Exception as exc:  # one benchmark failing must not lose the others' numbers
                traceback.print_exc()
                errors.append((name, f"{type(exc).__name__}: {exc}"))
                sections.append((name, []))
            finally:
                leftovers += cleanup()
    finally:
        leftovers += cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - began
    settled = f"waited {ctx.waited:.0f} s in all before rounds for quiet moments" if ctx.waited >= 1 else ""
    report = render(sections, errors, leftovers, ctx, elapsed,
                    "; ".join(filter(None, [quiet, settled, noise.describe()])), previous)
    print(report)
    if args.output != "-":
        Path(args.output).write_text(report + "\n")
        log_line(f"wrote {args.output}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(as_json(sections, errors, leftovers, elapsed), indent=1))
    log_line(f"done in {elapsed:.0f} s")
    return 1 if errors or leftovers else 0


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the finally blocks, which kill and reap


def run_group(name: str, ctx: Context) -> list:
    """Run one section; its tables ([] for an optional section whose module is not written yet)."""
    path = BENCH_DIR / f"{MODULES[name]}.py"
    if not path.exists():
        if name in REQUIRED:
            raise FileNotFoundError(f"benchmarks/{path.name} is missing")
        log_line(f"{name}: benchmarks/{path.name} does not exist yet; not run")
        return []
    if name == "tap":
        return [tap_table(ctx, path)]
    module = __import__(MODULES[name])
    return module.run(ctx)


def tap_table(ctx: Context, path: Path) -> Table:
    """Run benchmarks/bench_tap.py and show its dict."""
    table = Table("tap", "8. .tap save and load", "", "`benchmarks/bench_tap.py`.")
    spec = importlib.util.spec_from_file_location("bench_tap", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.run(scale=ctx.scale)
    return table_from_dict(table, result)


def table_from_dict(table: Table, result: dict) -> Table:
    """Show a benchmark's plain dict as a ``key | value`` table with its optional checks."""
    rows = []
    for key, value in result.items():
        if key == "checks":
            for what, ok in dict(value).items():
                table.require(f"tap.{what}", str(what), None if ok is None else bool(ok))
            continue
        if key == "markdown":
            table.notes.append(str(value))
            continue
        rows.append([str(key), _show(value)])
    table.grid = (["measurement", "value"], rows)
    return table


def _show(value) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        return (f"median {statistics.median(value):,.4g} (min {min(value):,.4g}, max {max(value):,.4g}, "
                f"{len(value)} runs)")
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_show(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(sections: list, errors: list, leftovers: list, ctx: Context, elapsed: float, noise: str = "",
           previous: Optional[dict] = None) -> str:
    """The whole report as Markdown (with ``previous``, another run's JSON: both runs' ratios and their spread)."""
    from findings import FINDINGS, NOTES

    tables = [table for _, group in sections for table in group]
    for table in tables:
        table.evaluate()
    checks = [(table, check) for table in tables for check in table.checks]
    counts = {result: sum(1 for _, c in checks if c.result == result)
              for result in ("PASS", "MISS", "n/a", "reported")}
    earlier = {check_id: outcome for table in (previous or {}).get("tables", {}).values()
               for check_id, outcome in table.get("checks", {}).items()}
    not_run = [f"{name} (`benchmarks/{MODULES[name]}.py` is not written yet)" for name, group in sections
               if not group and name not in REQUIRED and not (BENCH_DIR / f"{MODULES[name]}.py").exists()]
    out = [
        "# Benchmarks",
        "",
        f"Generated by `python benchmarks/run.py{ctx.flags}` on "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')} in {elapsed:.0f} s. Every ratio is taken within this one run on "
        "this one machine (absolute numbers drift on shared machines; ratios much less). Medians of several "
        "runs, with min and max; subjects take turns within each round.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {what} | {value} |" for what, value in machine()],
        *([f"| other work during the run | {noise} |"] if noise else []),
        "",
        "## Targets",
        "",
        f"{counts['PASS']} met, {counts['MISS']} missed, {counts['n/a']} not measured"
        + (f"; {counts['reported']} ratios reported without a target" if counts["reported"] else "") + "."
        + (f" Not run: {'; '.join(not_run)}." if not_run else ""),
        "",
    ]
    if previous is not None:
        out += [f"Each ratio is given for this run and for the other full run of the same day "
                f"({previous.get('generated', 'an earlier run')}), with the spread between the two "
                "(the larger over the smaller, minus one); a result that differs between the runs says so.",
                "",
                "| measurement | target | ratio | other run | spread | result |",
                "|---|---|---:|---:|---:|---|"]
    else:
        out += ["| measurement | target | ratio | result |", "|---|---|---:|---|"]
    for table, check in checks:
        ratio = ratio_text(check.ratio, check.factor) if check.ratio is not None else "—"
        if check.result in ("PASS", "MISS"):
            result = f"**{check.result}**"
        else:
            result = f"n/a ({check.why})" if check.result == "n/a" and check.why else check.result
        if previous is None:
            out.append(f"| {table.title} | {table.describe(check)} | {ratio} | {result} |")
            continue
        other = earlier.get(check.id, {})
        other_ratio = other.get("ratio")
        spread = "—"
        if check.ratio and other_ratio:
            spread = f"{max(check.ratio, other_ratio) / min(check.ratio, other_ratio) - 1:.0%}"
        if other.get("result") and other["result"] != check.result:
            result += f" (other run: {other['result']})"
        other_text = ratio_text(other_ratio, check.factor) if other_ratio is not None else other.get("result", "—")
        out.append(f"| {table.title} | {table.describe(check)} | {ratio} | {other_text} | {spread} | {result} |")
    out += goals_section(checks, earlier)
    misses = [(table, check) for table, check in checks if check.result == "MISS"]
    if misses:
        out += ["", "## Missed targets: the reason found, and the fix", ""]
        unexplained = ("Not analysed yet: profile it (`python -X importtime`, cProfile or py-spy) and record "
                       "the reason in `benchmarks/findings.py`.")
        grouped: dict = {}  # one paragraph per distinct finding, naming every miss it explains
        for table, check in misses:
            ratio = f" ({ratio_text(check.ratio, check.factor)})" if check.ratio is not None else ""
            finding = FINDINGS.get(check.id, unexplained)
            key = finding if finding != unexplained else check.id
            grouped.setdefault(key, (finding, []))[1].append(f"**MISS — {table.describe(check)}**{ratio}")
        for finding, named in grouped.values():
            out += [f"- {'; '.join(named)}. {finding}", ""]
    if errors or leftovers:
        out += ["", "## Problems in this run", ""]
        out += [f"- benchmark `{name}` failed: {message}" for name, message in errors]
        out += [f"- had to kill a process left running: {what}" for what in leftovers]
    out += ["", "## Results", ""]
    for table in tables:
        out += [table.markdown(), ""]
    if NOTES:
        out += ["## Notes", "", NOTES.strip(), ""]
    out += ["## How to run", "",
            "```sh",
            "python3 -m venv .venv && .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/run.py",
            "# or with Twisted in another environment:  TWISTD=/path/to/twistd python benchmarks/run.py",
            "```"]
    return "\n".join(out).rstrip() + "\n"


def goals_section(checks: list, earlier: dict) -> list:
    """The goals of ``findings.GOALS``, each met or missed in this run (and in the other run, when given)."""
    from findings import GOALS

    by_id = {check.id: (table, check) for table, check in checks}
    lines = ["", "## The goals of issue 11", "",
             "Each goal and the targets above that measure it (ratios in this run"
             + ("; the other run's after the slash" if earlier else "") + "). A missed goal's reason and fix "
             "are in the next section.", "",
             "| goal | measured as | result |", "|---|---|---|"]
    for goal, ids in GOALS:
        measured = [by_id[check_id] for check_id in ids if check_id in by_id]
        if not measured:
            lines.append(f"| {goal} | — | not measured in this run |")
            continue
        parts, verdicts, others = [], [], []
        for table, check in measured:
            ratio = ratio_text(check.ratio, check.factor) if check.ratio is not None else "—"
            other = earlier.get(check.id, {})
            if other:
                ratio += " / " + (ratio_text(other["ratio"], check.factor) if other.get("ratio") is not None
                                  else "—")
                others.append(other.get("result"))
            parts.append(f"{table.title.split(' ', 1)[0].rstrip('.')} {table.label_of(check.subject)}: {ratio}")
            verdicts.append(check.result)
        lines.append(f"| {goal} | {'; '.join(parts)} | {_verdict(verdicts)}"
                     + (f" (other run: {_verdict(others)})" if others and _verdict(others) != _verdict(verdicts)
                        else "") + " |")
    return lines


def _verdict(results: list) -> str:
    """One word for a goal from its targets' results."""
    judged = [result for result in results if result in ("PASS", "MISS")]
    if not judged:
        return "reported" if "reported" in results else "not measured"
    if all(result == "PASS" for result in judged):
        return "**met**"
    if all(result == "MISS" for result in judged):
        return "**missed**"
    return f"**partly met** ({judged.count('PASS')} of {len(judged)} targets)"


def as_json(sections: list, errors: list, leftovers: list, elapsed: float) -> dict:
    """The raw results: every row's samples and every target's outcome."""
    data = {"generated": time.strftime("%Y-%m-%d %H:%M %Z"), "elapsed": elapsed, "errors": errors,
            "leftovers": leftovers, "tables": {}}
    for name, group in sections:
        for table in group:
            table.evaluate()
            data["tables"][table.id] = {
                "group": name,
                "title": table.title,
                "unit": table.unit,
                "rows": {row.key: {"label": row.label, "samples": row.samples, "missing": row.missing}
                         for row in table.rows},
                "grid": table.grid,
                "checks": {c.id: {"result": c.result, "ratio": c.ratio, "why": c.why} for c in table.checks},
            }
    return data


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
