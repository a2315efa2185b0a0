"""Debugging options end to end: -p/--profile with --profiler and --savestats, --spew, -b/--debug (pdb)."""

from __future__ import annotations

import pstats
import re
import signal
import subprocess
from pathlib import Path

import pytest

from support import ROOT, TWISTDLITE, LineReader, connect, env, recv_until, run, stop_process, wait_exit
from twistdlite.launch import debug

TACS = ROOT / "tests" / "tacs"
SELFSTOP = str(TACS / "spine_selfstop.tac")
FAILSTART = str(TACS / "spine_failstart.tac")
FAULTY = str(TACS / "spine_faultyproto.tac")


def run_with_input(args: list, text: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run twistdlite with ``text`` on its standard input (for pdb)."""
    return subprocess.run([*TWISTDLITE, *args], cwd=cwd, env=env(), input=text, capture_output=True,
                          text=True, timeout=30)


def spawn_with_stdin(args: list, cwd: Path) -> subprocess.Popen:
    """Start twistdlite with a pipe for its standard input; stdout and stderr merged."""
    return subprocess.Popen([*TWISTDLITE, *args], cwd=cwd, env=env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def tell(proc: subprocess.Popen, text: str) -> None:
    proc.stdin.write(text.encode())
    proc.stdin.flush()


# -- profiling ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("profiler", ["cprofile", "profile"])
def test_savestats_writes_a_loadable_pstats_file(tmp_path, profiler):
    result = run(["-noy", SELFSTOP, "--pidfile", "", "-p", "run.prof", "--profiler", profiler, "--savestats"],
                 cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    stats = pstats.Stats(str(tmp_path / "run.prof"))
    profiled = {(Path(filename).name, name) for filename, _, name in stats.stats}
    assert ("spine_selfstop.tac", "later") in profiled  # the application's own callback ran under it
    assert ("spine_selfstop.tac", "running") in profiled


def test_profile_without_savestats_writes_the_text_report(tmp_path):
    result = run(["-noy", SELFSTOP, "--pidfile", "", "--profile", "report.txt"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = (tmp_path / "report.txt").read_text()
    assert re.search(r"\d+ function calls", report)
    assert "Ordered by: cumulative time" in report
    assert "spine_selfstop.tac" in report


def test_an_unwritable_profile_path_fails_before_the_run(tmp_path):
    result = run(["-noy", SELFSTOP, "-p", "no/such/dir/run.prof"], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "twistdlite: error: cannot write profile no/such/dir/run.prof: No such file or directory\n"
    assert "hello?" not in result.stdout  # the application never ran
    assert not (tmp_path / "twistd.pid").exists()


# -- spew ---------------------------------------------------------------------------------------------

def test_spew_logs_every_call(tmp_path):
    result = run(["-noy", SELFSTOP, "--pidfile", "", "--spew"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    spewed = re.findall(r"\[twistdlite\.spew\] function (\S+) in (\S+), line \d+", result.stdout)
    assert len(spewed) > 50
    called = {(Path(filename).name, name) for name, filename in spewed}
    assert {("spine_selfstop.tac", "running"), ("spine_selfstop.tac", "later")} <= called
    assert "Server Shut Down." in result.stdout


def test_without_spew_nothing_is_traced(tmp_path):
    result = run(["-noy", SELFSTOP, "--pidfile", ""], cwd=tmp_path)
    assert result.returncode == 0 and "twistdlite.spew" not in result.stdout


# -- -b/--debug -----------------------------------------------------------------------------------------

def test_debug_implies_nodaemon(tmp_path):
    result = run(["-b", "-y", SELFSTOP, "--pidfile", ""], cwd=tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "Server Shut Down." in result.stdout  # logged to stdout by this very process: not detached
    assert not (tmp_path / "twistd.log").exists()


@pytest.mark.parametrize("command", ["c", "q"])
def test_an_unhandled_error_opens_pdb_at_the_frame_that_raised_it(tmp_path, command):
    result = run_with_input(["-b", "-y", FAILSTART], f"p secret\n{command}\n", tmp_path)
    assert result.returncode == 1
    assert "(Pdb) 'the-secret-value'" in result.stdout  # the local variable of the failing startService
    assert "spine_failstart.tac(9)startService()" in result.stdout
    assert result.stderr.splitlines()[-1] == "twistdlite: error: start failed: RuntimeError: fragile cannot start"
    assert result.stdout.count("(Pdb)") == 2  # one post-mortem, not one per report of the error
    assert not (tmp_path / "twistd.pid").exists()


def test_without_debug_no_pdb(tmp_path):
    result = run_with_input(["-ny", FAILSTART], "p secret\nc\n", tmp_path)
    assert result.returncode == 1 and "(Pdb)" not in result.stdout + result.stderr
    assert result.stderr == "twistdlite: error: start failed: RuntimeError: fragile cannot start\n"


def test_an_error_in_a_protocol_callback_opens_pdb_and_the_server_goes_on(tmp_path):
    proc = spawn_with_stdin(["-boy", FAULTY, "--pidfile", ""], tmp_path)
    try:
        out = LineReader(proc)
        port = int(out.wait_for(r"starting on (\d+)").group(1))
        with connect(port) as bad:
            bad.sendall(b"boom\r\n")
            out.wait_for(r"\(Pdb\) ")
            tell(proc, "p culprit\nc\n")
            out.wait_for(r"'boom-culprit'")
            assert bad.recv(100) == b""  # that connection was dropped
        with connect(port) as good:
            good.sendall(b"fine\r\n")
            assert recv_until(good, b"\r\n") == b"ok fine\r\n"
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0
        assert "ValueError: bad line boom-culprit" in out.rest()
    finally:
        stop_process(proc)


def test_sigusr2_breaks_into_pdb(tmp_path):
    proc = spawn_with_stdin(["-boy", FAULTY, "--pidfile", ""], tmp_path)
    try:
        out = LineReader(proc)
        port = int(out.wait_for(r"starting on (\d+)").group(1))
        proc.send_signal(signal.SIGUSR2)
        out.wait_for(r"\(Pdb\) ")
        tell(proc, "p 6 * 7\nc\n")
        out.wait_for(r"\(Pdb\) 42\n")
        with connect(port) as sock:  # still serving after the debugger let go
            sock.sendall(b"again\r\n")
            assert recv_until(sock, b"\r\n") == b"ok again\r\n"
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0
    finally:
        stop_process(proc)


def test_root_cause_follows_the_chain():
    try:
        try:
            raise KeyError("first")
        except KeyError:
            raise RuntimeError("second") from None
    except RuntimeError as exc:
        assert isinstance(debug.root_cause(exc), KeyError)
    lone = ValueError("alone")
    assert debug.root_cause(lone) is lone
