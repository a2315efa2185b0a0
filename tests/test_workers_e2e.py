"""``--workers N`` end to end: real supervisors and workers on 127.0.0.1 (see twistdlite/launch/workers.py).

Each test starts one pool and drives it through several items of issue 15, to
keep the suite lean; every wait polls with a deadline, nothing sleeps blind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from daemon_helpers import Daemons, open_fds
from support import (ROOT, TWISTDLITE, LineReader, children, env, is_gone, kill_hard, listening_port, read_pid, run,
                     spawn, stop_process, wait_for_file_text, wait_gone, wait_until)

APP = ROOT / "tests" / "tacs" / "workers_app.tac"


def ask(port: int, command: bytes = b"pid", timeout: float = 5.0) -> str:
    """Send one command on a new connection; the answer line."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(command + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(100)
            if not chunk:
                break
            data += chunk
    return data.decode().strip()


def workers_of(pid: int) -> set:
    """The live child processes of ``pid``."""
    return children(pid)


class Load:
    """New connections at a bounded rate (each asks ``version``) in a thread, counting failures."""

    def __init__(self, port: int, rate: float = 200.0, limit: float = 20.0) -> None:
        self.port = port
        self.pause = 1.0 / rate
        self.limit = limit
        self.answers: list = []
        self.failures: list = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        end = time.monotonic() + self.limit
        while not self.done.is_set() and time.monotonic() < end:
            try:
                answer = ask(self.port, b"version")
                if not answer:
                    raise ConnectionError("closed without an answer")
                self.answers.append(answer)
            except OSError as exc:
                self.failures.append(repr(exc))
            time.sleep(self.pause)

    def stop(self) -> "Load":
        """Stop and wait for the thread."""
        self.done.set()
        self.thread.join(10)
        return self


def start_foreground(tmp_path: Path, *args: str, mode: str = "serve", ready: str = r"All \d+ workers are ready"):
    proc = spawn(["-noy", str(APP), "--pidfile", "", *args], cwd=tmp_path, WORKERS_MODE=mode)
    out = LineReader(proc)
    out.wait_for(ready)
    return proc, out


def stop_foreground(proc: subprocess.Popen) -> None:
    stop_process(proc)
    for pid in list(workers_of(proc.pid)):
        kill_hard(pid)


def test_pool_spreads_connections_replaces_workers_resizes_and_stops(tmp_path):
    proc, out = start_foreground(tmp_path, "--workers", "2", "--worker-timeout", "1", "--pidfile", "pool.pid")
    try:
        port = listening_port(out.text)
        assert re.search(r"\[worker 1\] .*starting on", out.text) and re.search(r"\[worker 2\] .*starting on",
                                                                                 out.text)
        # Connections reach more than one worker.
        seen: set = set()
        for _ in range(400):
            seen.add(ask(port))
            if len(seen) == 2:
                break
        assert seen == {str(pid) for pid in workers_of(proc.pid)}, seen

        # A worker killed with SIGKILL under load is replaced within a bounded time.
        load = Load(port)
        victim = int(sorted(seen)[0])
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        number = out.wait_for(rf"Worker (\d) \(PID {victim}\) was killed by SIGKILL").group(1)
        new = int(out.wait_for(rf"Worker {number} \(PID (\d+)\) is ready").group(1))
        replaced_in = time.monotonic() - killed_at
        load.stop()
        assert replaced_in < 5.0, replaced_in
        assert load.answers, load.failures
        assert new in workers_of(proc.pid) and victim not in workers_of(proc.pid)
        status = run(["--pidfile", "pool.pid", "status"], cwd=tmp_path)
        assert re.search(rf"worker {number}: PID {new}, up \d+ s, 1 restart, serving", status.stdout), status.stdout

        # A worker whose event loop is blocked beyond --worker-timeout is killed and replaced.
        blocker = socket.create_connection(("127.0.0.1", port), timeout=5)
        blocker.sendall(b"block\n")
        blocked = out.wait_for(r"Worker (\d) \(PID (\d+)\) sent no heartbeat for [\d.]+ s "
                               r"\(--worker-timeout 1\); killing it with SIGKILL")
        out.wait_for(rf"Worker {blocked.group(1)} \(PID (?!{blocked.group(2)})\d+\) is ready")
        blocker.close()

        # SIGTTIN adds a worker, SIGTTOU retires one.
        os.kill(proc.pid, signal.SIGTTIN)
        third = out.wait_for(r"Worker 3 \(PID (\d+)\) is ready").group(1)
        assert len(workers_of(proc.pid)) == 3
        os.kill(proc.pid, signal.SIGTTOU)
        out.wait_for(rf"Worker 3 \(PID {third}\) stopped\.")
        wait_until(lambda: len(workers_of(proc.pid)) == 2, what="two workers")

        # SIGTERM stops every worker gracefully, then the supervisor: exit 0.
        workers = workers_of(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, out.rest()
        text = out.rest()
        for pid in workers:
            assert re.search(rf"Worker \d \(PID {pid}\) stopped\.", text)
            assert is_gone(pid)
    finally:
        stop_foreground(proc)


def test_daemon_pool_readiness_status_log_rotation_reload_and_stop(tmp_path):
    daemons = Daemons()
    tac = tmp_path / "app.tac"
    shutil.copy(APP, tac)
    shutil.copy(APP.parent / "workers_services.py", tmp_path)
    log = tmp_path / "app.log"
    try:
        started = run(["-y", str(tac), "--workers", "2", "--pidfile", "app.pid", "-l", "app.log"], cwd=tmp_path)
        assert started.returncode == 0, started.stderr
        # Ready only once every worker is: the line is there when the launching command returns.
        assert "All 2 workers are ready." in log.read_text()
        supervisor = daemons.track(read_pid(tmp_path / "app.pid"))
        workers = workers_of(supervisor)
        assert len(workers) == 2
        pidfile = str(tmp_path / "app.pid")
        for pid in workers:  # the supervisor holds the pidfile and its lock; the workers never do
            assert pidfile not in open_fds(pid).values()
        assert pidfile in open_fds(supervisor).values()
        port = listening_port(log.read_text())

        status = run(["--pidfile", "app.pid", "status"], cwd=tmp_path)
        assert status.returncode == 0
        for pid in workers:
            assert re.search(rf"worker [12]: PID {pid}, up \d+ s, 0 restarts", status.stdout), status.stdout

        # SIGUSR1 rotates the one log file; the workers' lines land in the new one.
        os.kill(supervisor, signal.SIGUSR1)
        wait_until(lambda: (tmp_path / "app.log.1").exists(), what="the rotated log")
        for _ in range(20):
            ask(port, b"say")
        assert re.search(r"\[worker [12],Echo,\d+,127\.0\.0\.1\] hello from \d+", log.read_text())

        # SIGHUP under a bounded load of new connections: a new generation, no connection fails. The log was
        # moved away first (as logrotate does): SIGHUP reopens it, so every line below is in a new app.log.
        tac.write_text(tac.read_text().replace('VERSION = "1"', 'VERSION = "2"'))
        log.rename(tmp_path / "app.log.moved")
        loads = [Load(port, limit=20.0) for _ in range(3)]  # three clients: connections arrive while retiring
        wait_until(lambda: all(len(load.answers) > 10 for load in loads), what="load before the reload")
        os.kill(supervisor, signal.SIGHUP)
        wait_for_file_text(log, r"Reloaded: generation 2 serving; retiring 2 workers")
        for pid in workers:
            wait_for_file_text(log, rf"Worker \d \(PID {pid}\) stopped\.")
        counts = [len(load.answers) for load in loads]
        wait_until(lambda: all(len(load.answers) > count + 10 for load, count in zip(loads, counts)),
                   what="load after the reload")
        for load in loads:
            load.stop()
            assert load.failures == [], load.failures
            assert set(load.answers) == {"1", "2"} and load.answers[-1] == "2"
        second = workers_of(supervisor)
        assert len(second) == 2 and not second & workers

        # A reload that listens somewhere new binds it; one that no longer does closes it.
        tac.write_text(tac.read_text().replace("EXTRA_PORTS = 0", "EXTRA_PORTS = 1"))
        os.kill(supervisor, signal.SIGHUP)
        wait_for_file_text(log, r"Reloaded: generation 3 serving")
        extra = {int(p) for p in re.findall(r"starting on (\d+)", log.read_text())} - {port}
        assert len(extra) == 1
        extra_port = extra.pop()
        assert ask(extra_port, b"version") == "2"
        tac.write_text(tac.read_text().replace("EXTRA_PORTS = 1", "EXTRA_PORTS = 0"))
        os.kill(supervisor, signal.SIGHUP)
        wait_for_file_text(log, rf"Closing the listening socket 127\.0\.0\.1:{extra_port}: the reloaded "
                                r"application does not use it\.")
        with pytest.raises(ConnectionRefusedError):
            ask(extra_port)
        assert ask(port, b"version") == "2"
        second = workers_of(supervisor)

        # A reload whose .tac has a syntax error: the error is logged, the workers keep serving.
        tac.write_text(tac.read_text() + "\ndef broken(:\n")
        os.kill(supervisor, signal.SIGHUP)
        wait_for_file_text(log, r"Reload failed: .*the running workers keep serving")
        assert ask(port, b"version") == "2"
        assert workers_of(supervisor) == second

        stopped = run(["--pidfile", "app.pid", "stop"], cwd=tmp_path)
        assert stopped.returncode == 0, stopped.stderr
        text = log.read_text()
        assert "Saving the application as the supervisor loaded it" in text
        assert (tmp_path / "pool-shutdown.tap").exists()
        assert not (tmp_path / "app.pid").exists() and not (tmp_path / "app.pid.workers").exists()
        for pid in second:
            wait_gone(pid)
    finally:
        daemons.cleanup()


def test_a_worker_failing_to_start_fails_the_whole_start(tmp_path):
    before = children()
    result = run(["-y", str(APP), "--workers", "2", "--pidfile", "f.pid", "-l", "f.log"], cwd=tmp_path,
                 WORKERS_MODE="failstart")
    assert result.returncode == 1
    assert re.fullmatch(r"twistdlite: error: worker [12] \(PID \d+\): start failed: RuntimeError: "
                        r"this worker cannot start\n", result.stderr), result.stderr
    assert not (tmp_path / "f.pid").exists() and not (tmp_path / "f.pid.workers").exists()
    assert "this worker cannot start" in (tmp_path / "f.log").read_text()
    # The daemon and its workers exit by themselves (the launching command returns at the report).
    wait_until(lambda: not children() - before, timeout=10, what="the failed daemon and its workers gone")
    assert not re.search(r"killed by SIGTERM|Bad file descriptor", (tmp_path / "f.log").read_text())


def test_supervisor_killed_takes_its_workers_and_the_next_start_proceeds(tmp_path):
    daemons = Daemons()
    try:
        args = ["-y", str(APP), "--workers", "2", "--pidfile", "k.pid", "-l", "k.log"]
        assert run(args, cwd=tmp_path).returncode == 0
        supervisor = daemons.track(read_pid(tmp_path / "k.pid"))
        port = listening_port((tmp_path / "k.log").read_text())
        workers = workers_of(supervisor)
        os.kill(supervisor, signal.SIGKILL)
        for pid in workers | {supervisor}:
            wait_gone(pid, 5)
        again = run([*args[:-1], "k2.log"], cwd=tmp_path, WORKERS_PORT=str(port))
        assert again.returncode == 0, again.stderr
        daemons.track(read_pid(tmp_path / "k.pid"))
        assert ask(port, b"version") == "1"
        assert run(["--pidfile", "k.pid", "stop"], cwd=tmp_path).returncode == 0
    finally:
        daemons.cleanup()


def test_a_crash_loop_stops_the_pool(tmp_path):
    proc = spawn(["-noy", str(APP), "--pidfile", "", "--workers", "2", "--crash-limit", "3"], cwd=tmp_path,
                 WORKERS_MODE="crashloop")
    out = LineReader(proc)
    try:
        assert proc.wait(30) == 1
        text = out.rest()
        assert "Replacing worker" in text
        assert re.search(r"Workers crashed 3 times within 30 s \(--crash-limit, --crash-window\): stopping the "
                         r"pool\. Last error: Worker \d \(PID \d+\) exited with status 4", text), text
    finally:
        stop_foreground(proc)


def test_a_worker_that_will_not_stop_is_killed_and_the_exit_status_says_so(tmp_path):
    proc, out = start_foreground(tmp_path, "--workers", "2", "--shutdown-timeout", "0.5", mode="wedge")
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 1
        assert re.search(r"Worker \d \(PID \d+\) did not stop within 0.5 s; killing it with SIGKILL",
                         out.rest())
    finally:
        stop_foreground(proc)


@pytest.mark.parametrize("mode, reason", [
    ("datagram", r"--workers: the UNIXDatagramServer cannot be shared by workers"),
    ("client", r"--workers: the application bound no listening stream socket .* \(a client-only application\?\)"),
    ("latebind", r"worker \d \(PID \d+\): Couldn't listen on 127.0.0.1:0: a worker of --workers cannot listen "
                 r"on a socket of its own \(this port was asked for in startService or later"),
])
def test_applications_that_cannot_be_shared_are_refused(tmp_path, mode, reason):
    result = run(["-noy", str(APP), "--pidfile", "", "--workers", "2"], cwd=tmp_path, WORKERS_MODE=mode,
                 WORKERS_PATH=str(tmp_path / "dgram.sock"))
    assert result.returncode == 1
    assert re.fullmatch(r"twistdlite: error: " + reason + r".*\n", result.stderr), result.stderr
    assert not (tmp_path / "dgram.sock").exists()


def http_get(port: int, path: str) -> tuple:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def probe_until(port: int, path: str, code: int) -> dict:
    """Ask ``path`` until it answers ``code``; the JSON body."""
    return wait_until(lambda: (lambda r: r[1] if r[0] == code else None)(http_get(port, path)),
                      what=f"{path} {code}")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_health_endpoint(tmp_path, workers):
    gate = tmp_path / "gate"
    proc = spawn(["-noy", str(APP), "--pidfile", "", "--workers", workers, "--worker-timeout", "60", "--health",
                  "tcp:0:interface=127.0.0.1"], cwd=tmp_path, WORKERS_MODE="slowstop", WORKERS_GATE=str(gate))
    out = LineReader(proc)
    try:
        probe = int(out.wait_for(r"HealthProbe starting on (\d+)").group(1))
        port = int(out.wait_for(r"ServerFactory starting on (\d+)").group(1))
        out.wait_for(r"All 2 workers are ready" if workers == "2" else r"Misbehaving|ServerFactory starting on")
        assert probe_until(probe, "/readyz", 200)["status"] == "ready"
        code, body = http_get(probe, "/livez")
        assert code == 200 and body["status"] == "live", body
        assert http_get(probe, "/other")[0] == 404
        if workers == "2":  # a worker's blocked loop: /livez 503 long before --worker-timeout kills it
            blocked = socket.create_connection(("127.0.0.1", port), timeout=10)
            blocked.sendall(b"gate\n")
            assert blocked.recv(100) == b"blocking\n"
            body = probe_until(probe, "/livez", 503)
            assert body["status"] == "not live" and "sent no heartbeat" in body["reason"], body
            Path(str(gate) + ".loop").touch()
            assert blocked.recv(100) == b"unblocked\n"
            blocked.close()
            probe_until(probe, "/livez", 200)
            Path(str(gate) + ".hold").touch()  # a worker being replaced: /readyz 503 until it has started
            with socket.create_connection(("127.0.0.1", port), timeout=10) as crash:
                crash.sendall(b"crash\n")
            body = probe_until(probe, "/readyz", 503)
            assert "1 of 2 workers serving (replacing the others)" == body["reason"], body
            Path(str(gate) + ".start").touch()
            probe_until(probe, "/readyz", 200)
        proc.send_signal(signal.SIGTERM)  # stopService waits for the gate: /readyz 503 meanwhile
        body = probe_until(probe, "/readyz", 503)
        assert body == {"status": "not ready", "reason": "shutting down"}, body
        assert http_get(probe, "/livez")[0] == 200
        gate.touch()
        assert proc.wait(20) == 0, out.rest()
    finally:
        stop_foreground(proc)


def command_name(pid: int) -> str:
    """The process's command name; "" once it is gone (it may be reaped between listing and reading)."""
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _unshare() -> str:
    return shutil.which("unshare") or ""


@pytest.mark.skipif(os.geteuid() != 0 or not _unshare(), reason="needs root and unshare(1)")
def test_as_pid_1_reaps_orphans_and_forwards_sigterm(tmp_path):
    proc = subprocess.Popen([_unshare(), "--pid", "--fork", "--mount-proc", *TWISTDLITE, "-noy", str(APP),
                             "--pidfile", ""], cwd=tmp_path, env=env(WORKERS_MODE="orphan"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    out = LineReader(proc)
    try:
        out.wait_for(r"Starting 1 workers \(PID 1 supervises them\)")
        out.wait_for(r"All 1 workers are ready")
        supervisor = wait_until(lambda: next(iter(workers_of(proc.pid)), None), what="the supervisor")
        # The worker's shell left a background sleep, adopted by PID 1: once it exits, it is reaped.
        wait_until(lambda: not any(command_name(pid) == "sleep" for pid in children(supervisor, zombies=True)),
                   what="the orphan reaped")
        os.kill(supervisor, signal.SIGTERM)
        assert proc.wait(20) == 0, out.rest()
        assert re.search(r"Worker 1 \(PID \d+\) stopped\.", out.rest())
    finally:
        stop_process(proc)


def test_systemd_hears_ready_when_every_worker_is_and_reloading_at_sighup(tmp_path):
    from test_notify import Listener

    listener = Listener(str(tmp_path / "notify.sock"))
    proc = spawn(["-noy", str(APP), "--pidfile", "", "--workers", "2"], cwd=tmp_path,
                 NOTIFY_SOCKET=listener.address)
    out = LineReader(proc)
    try:
        listener.wait_for("READY")
        assert "All 2 workers are ready." in out.rest()
        os.kill(proc.pid, signal.SIGHUP)
        listener.wait_for("RELOADING")
        out.wait_for(r"Reloaded: generation 2 serving")
        wait_until(lambda: listener.keys().count("READY") == 2, what="READY=1 after the reload")
        proc.send_signal(signal.SIGTERM)
        listener.wait_for("STOPPING")
        assert proc.wait(20) == 0, out.rest()
    finally:
        listener.close()
        stop_foreground(proc)


def test_ctrl_c_in_a_terminal_stops_the_pool_gracefully(tmp_path):
    """A terminal signals its whole foreground process group: the workers hear it from their supervisor only."""
    proc = subprocess.Popen([*TWISTDLITE, "-noy", str(APP), "--pidfile", "", "--workers", "2"], cwd=tmp_path,
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    out = LineReader(proc)
    try:
        out.wait_for(r"All 2 workers are ready")
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(20) == 0, out.rest()
        text = out.rest()
        assert "again" not in text and len(re.findall(r"Worker \d \(PID \d+\) stopped\.", text)) == 2, text
    finally:
        stop_foreground(proc)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_health_endpoint_that_cannot_be_bound_fails_the_start(tmp_path, workers):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        spec = f"tcp:{taken.getsockname()[1]}:interface=127.0.0.1"
        result = run(["-noy", str(APP), "--pidfile", "", "--workers", workers, "--health", spec], cwd=tmp_path)
    assert result.returncode == 1
    assert re.search(rf"^twistdlite: error: --health {spec}: .*[Aa]ddress already in use", result.stderr,
                     re.M), result.stderr
