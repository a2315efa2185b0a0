"""The benchmark suite cannot rot: run every benchmark once at a tiny scale, and unit-test its pieces.

Twisted is not needed: unless ``$TWISTD`` names a twistd, its rows must say "not installed".
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from support import ROOT

BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
from bench_import import parse_importtime  # noqa: E402


def test_the_whole_suite_runs_at_tiny_scale(tmp_path):
    report, raw = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"
    env = dict(os.environ, TWISTD=os.environ.get("TWISTD", "none"))
    done = subprocess.run([sys.executable, str(BENCH / "run.py"), "--scale", "0.02", "--wait-quiet", "0",
                           "--output", str(report), "--json", str(raw)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = report.read_text()
    assert text == done.stdout  # printed and written alike
    data = json.loads(raw.read_text())
    assert data["errors"] == [] and data["leftovers"] == []
    tables = data["tables"]
    assert set(tables) >= {"startup", "memory", "daemon", "stop", "import", "echo", "echo-cpu", "idle", "idle-mem",
                           "logging", "tap"}
    for table_id, table in tables.items():  # every table holds real measurements
        assert_measured(table_id, table)
    for table_id in ("startup", "memory", "daemon", "stop", "echo", "echo-cpu", "idle-mem", "logging"):
        samples = tables[table_id]["rows"]["twistdlite" if table_id in ("daemon", "stop", "logging")
                                            else "twistdlite-asyncio"]["samples"]
        assert samples and all(value > 0 for value in samples), (table_id, samples)
    assert tables["logging"]["rows"]["stdlib"]["samples"]
    assert tables["startup"]["rows"]["bare-click-asyncio"]["samples"]
    held = [row for row in tables["idle"]["grid"][1] if row[0] == "twistdlite (asyncio)"]
    expected = min(200, harness.nofile_limits()[1] - 200)  # scaled down when the hard limit is low
    assert held and held[0][1] == f"{expected:,}", tables["idle"]["grid"]
    tap = dict(tables["tap"]["grid"][1])
    assert float(tap["services in the application"]) > 0 and tap["save (ms)"].startswith("median "), tap
    # A hard rule, checked for real: importing the API pulls in nothing of the launcher's.
    assert tables["import"]["checks"]["import.no-click"]["result"] == "PASS"
    for heading in ("## Machine", "## Targets", "1. Start-up to ready", "2. Daemon start", "3. Stop",
                    "4. Idle memory", "5. Import cost", "6a. Echo throughput", "6b. Echo: server CPU per line",
                    "idle connections", "6d. Memory per idle connection", "7. Logging throughput",
                    "8. .tap save and load"):
        assert heading in text, heading
    if env["TWISTD"] == "none":
        assert "not installed" in tables["echo"]["rows"]["twistd"]["missing"]
        assert tables["echo"]["checks"]["echo.asyncio.vs-twistd"]["result"] == "n/a"


def assert_measured(table_id: str, table: dict) -> None:
    """A table holds measurements: a grid with rows, or rows each with samples (or a program not installed)."""
    if table["grid"] is not None:
        header, rows = table["grid"]
        assert rows and all(len(row) == len(header) for row in rows), (table_id, table["grid"])
        assert any(any(char.isdigit() for char in str(cell)) for row in rows for cell in row[1:]), table_id
        return
    assert table["rows"], table_id
    for key, row in table["rows"].items():
        assert row["samples"] or row["missing"].endswith("not installed"), (table_id, key, row)
        # Numbers (a difference, such as memory per connection at a tiny scale, may come out below zero).
        assert all(isinstance(value, (int, float)) and math.isfinite(value) for value in row["samples"]), (table_id, key)


def test_bad_arguments_are_refused(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH / "run.py"), "--only", "nonsense", "--output", "-"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert "unknown benchmark nonsense" in done.stderr


def test_targets_are_judged_on_medians():
    table = harness.Table("t", "T", "ms", "d", reference="ref")
    table.add("ref", "reference", [10.0, 11.0, 12.0])
    table.add("fast", "fast one", [5.0, 6.0, 100.0])  # median 6 despite one outlier
    table.add("gone", "not here", missing="not installed")
    below = table.target("a", "fast", "<=", 0.5, "ref")
    above = table.target("b", "fast", ">=", 1.0, "ref")
    absent = table.target("c", "gone", "<=", 1.0, "ref")
    table.evaluate()
    assert (below.result, round(below.ratio, 3)) == ("MISS", round(6 / 11, 3))
    assert above.result == "MISS"
    assert absent.result == "n/a" and "not installed" in absent.why
    text = table.markdown()
    assert "| not here | not installed |" in text
    assert "**MISS** (0.55×)" in text


def test_yes_no_checks_and_grids_render():
    table = harness.Table("g", "G", "", "d")
    table.grid = (["a", "b"], [["x", "1"]])
    table.require("ok", "it works", True, "because")
    table.require("bad", "it fails", False)
    text = table.markdown()
    assert "| x | 1 |" in text
    assert "- it works: **PASS** — because" in text and "- it fails: **MISS**" in text


def test_importtime_output_is_summed_per_package():
    text = ("import time: self [us] | cumulative | imported package\n"
            "import time:       100 |        100 |   click.types\n"
            "import time:       250 |        350 | click\n"
            "import time:        40 |         40 | json\n"
            "some other line\n")
    total, packages = parse_importtime(text)
    assert total == 390
    assert packages == [("click", 350), ("json", 40)]


def test_twistd_is_found_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TWISTD", "none")
    assert harness.find_twistd() is None
    fake = tmp_path / "twistd"
    fake.write_text("#!/opt/tw/bin/python3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("TWISTD", str(fake))
    assert harness.find_twistd() == str(fake)
    assert harness.twistd_python(str(fake)) == "/opt/tw/bin/python3"
    monkeypatch.setenv("TWISTD", str(tmp_path / "missing"))
    assert harness.find_twistd() is None


def test_a_bench_tap_dict_becomes_a_table():
    import run

    table = run.table_from_dict(harness.Table("tap", "8", "", "d"),
                                {"save_s": [0.5, 0.25, 1.0], "size_bytes": 1234, "checks": {"fast enough": False}})
    text = table.markdown()
    assert "| save_s | median 0.5 (min 0.25, max 1, 3 runs) |" in text
    assert "| size_bytes | 1234 |" in text
    assert "- fast enough: **MISS**" in text


def test_a_ratio_that_rounds_to_its_target_shows_three_decimals():
    assert harness.ratio_text(0.8461, 0.85) == "0.846×"
    assert harness.ratio_text(1.2345, 1.3) == "1.23×"


@pytest.mark.parametrize("count", [1, 3])
def test_runs_scale_but_never_reach_zero(count):
    assert harness.runs_for(count, 0.001) == 1
    assert harness.runs_for(count, 1.0) == count


def test_the_instruction_count_wrapper_ends_each_subject_at_its_first_echo():
    import startup_instructions

    for argv in startup_instructions.subjects().values():  # without valgrind: exit status 0 once it echoed
        assert startup_instructions.count(argv, valgrind=False, timeout=60) == 0
