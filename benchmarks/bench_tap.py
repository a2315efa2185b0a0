"""The shutdown ``.tap``: save and load an application of 10,000 services; restart-to-listening.

    python benchmarks/bench_tap.py [--scale 1.0]

In process: save (pickle + header + digest + atomic write with fsync) and load
(read + checks + unpickle) times of an application of 10,000 services, signed
and unsigned, and the file size. In real processes: the time from the command
to a listening socket for the same application started from its ``.tac``
(``twistdlite -noy``) and restarted from its shutdown ``.tap``
(``twistdlite -nof``), for the 10,000-service application and for
``examples/counter.tac``. Target: the restart listens within 20% of the
``.tac`` start.

The suite runner (``benchmarks/run.py``) calls :func:`run` and shows its dict.
Everything runs on 127.0.0.1; every process started here is stopped and
reaped before :func:`run` returns.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Callable, Optional

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
HOST = "127.0.0.1"
DEADLINE = 30.0
TARGET = 1.20  # restart-to-listening at most 20% slower than the .tac start

APP_MODULE = '''\
"""The benchmark's application: groups of 100 services (90 Services, 10 TimerServices) and a TCP server."""
from twistdlite import internet, protocol, service


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class EchoFactory(protocol.ServerFactory):
    protocol = Echo


class Worker(service.Service):
    """A service with a little configuration, as real ones have."""

    def __init__(self, index):
        self.index = index
        self.settings = {"retries": 3, "timeout": 2.5, "tags": ["a", "b"], "label": f"worker-{index}"}


def noop():
    pass


def build(name, services, port):
    application = service.Application(name)
    groups = max(1, services // 100)
    for g in range(groups):
        group = service.MultiService()
        group.setName(f"group{g}")
        group.setServiceParent(application)
        for i in range(100 if g < groups - 1 else services - 100 * (groups - 1)):
            index = g * 100 + i
            child = internet.TimerService(3600, noop) if i % 10 == 9 else Worker(index)
            child.setName(f"s{index}")
            child.setServiceParent(group)
    tcp = internet.TCPServer(port, EchoFactory(), interface="127.0.0.1")
    tcp.setName("tcp")
    tcp.setServiceParent(application)
    return application
'''

APP_TAC = '''\
import os
import tapbench_app
application = tapbench_app.build("TapBench", int(os.environ["TAPBENCH_SERVICES"]), int(os.environ["TAPBENCH_PORT"]))
'''


class BenchError(RuntimeError):
    """A measurement could not be taken."""


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONDEVMODE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _ms(samples: list) -> list:
    return [round(s * 1000, 3) for s in samples]


def _timed(func: Callable[[], object], runs: int) -> list:
    import gc

    samples = []
    for _ in range(runs):
        gc.collect()  # start each sample from the same heap, not with the last one's garbage
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return samples


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(DEADLINE)
        raise BenchError("a server did not stop within the deadline") from None


def _start_to_listening(args: list, cwd: Path, port: int, env: dict) -> float:
    """Seconds from spawning ``twistdlite ARGS`` to a connectable socket on ``port``; then stop it."""
    while _listening(port):  # the previous run's socket must be gone first
        time.sleep(0.001)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "twistdlite", *args], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + DEADLINE
        while not _listening(port):
            if proc.poll() is not None:
                raise BenchError(f"twistdlite {' '.join(args)} exited with {proc.returncode} before listening")
            if time.monotonic() > deadline:
                raise BenchError(f"twistdlite {' '.join(args)} did not listen within {DEADLINE:g} s")
            time.sleep(0.0005)
        elapsed = time.perf_counter() - start
    finally:
        code = _stop(proc)
    if code != 0:
        raise BenchError(f"twistdlite {' '.join(args)} exited with {code}")
    return elapsed


def _compare_starts(workdir: Path, tac: str, tap: str, port: int, runs: int, env: dict) -> tuple:
    """Alternate .tac and .tap starts (after one warm-up each on longer runs); returns (tac, tap) samples."""
    tac_args, tap_args = ["-noy", tac], ["-nof", tap]
    if runs >= 5:
        _start_to_listening(tac_args, workdir, port, env)
        _start_to_listening(tap_args, workdir, port, env)
    from_tac, from_tap = [], []
    for index in range(runs):
        order = [(tac_args, from_tac), (tap_args, from_tap)]
        for args, samples in (order if index % 2 == 0 else order[::-1]):
            samples.append(_start_to_listening(args, workdir, port, env))
    return from_tac, from_tap


def _save_shutdown_tap(workdir: Path, tac: str, port: int, name: str, env: dict) -> Path:
    """Run ``tac`` once and stop it, so it saves its real ``<name>-shutdown.tap``."""
    _start_to_listening(["-ny", tac], workdir, port, env)
    path = workdir / f"{name}-shutdown.tap"
    if not path.exists():
        raise BenchError(f"{path.name} was not saved")
    return path


def measure_in_process(workdir: Path, services: int, runs: int) -> dict:
    """Save and load times of an application of ``services`` services, and its file size."""
    import pickle

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # this checkout, wherever the suite runs from
    from twistdlite.launch import persist

    sys.path.insert(0, str(workdir))
    try:
        import tapbench_app

        app = tapbench_app.build("TapBench", services, 0)
        path = str(workdir / "inproc.tap")
        key = persist.TapKey(os.urandom(32), "bench.key")
        save = _timed(lambda: persist.save(app, path, paths=[str(workdir)]), runs)
        size = os.path.getsize(path)
        load = _timed(lambda: persist.load(path), runs)
        loaded, _ = persist.load(path)
        count = sum(len(group) for group in loaded if hasattr(group, "services"))
        if count < services:
            raise BenchError(f"the loaded application has {count} services, not {services}")
        dumps = _timed(lambda: pickle.dumps(app, protocol=persist.PICKLE_PROTOCOL), runs)
        payload = pickle.dumps(app, protocol=persist.PICKLE_PROTOCOL)
        loads = _timed(lambda: pickle.loads(payload), runs)
        signed_path = str(workdir / "signed.tap")
        save_signed = _timed(lambda: persist.save(app, signed_path, key, [str(workdir)]), runs)
        load_signed = _timed(lambda: persist.load(signed_path, key), runs)
    finally:
        sys.path.remove(str(workdir))
    return {
        "services in the application": services,
        ".tap file size (bytes)": size,
        "bytes per service": round(size / services, 1),
        "save (ms)": _ms(save),
        "load (ms)": _ms(load),
        "pickle.dumps alone (ms)": _ms(dumps),
        "pickle.loads alone (ms)": _ms(loads),
        "save, signed with --tap-key (ms)": _ms(save_signed),
        "load, signed with --tap-key (ms)": _ms(load_signed),
    }


def run(scale: float = 1.0) -> dict:
    """Run the benchmark; returns a dict of numbers (lists are samples) with a ``checks`` entry."""
    services = max(100, int(round(10_000 * scale)))
    runs = max(3, int(round(7 * min(scale, 1.0) if scale < 1 else 7 * scale)))
    process_runs = max(2, int(round(10 * scale)))
    with tempfile.TemporaryDirectory(prefix="bench-tap-") as scratch:
        workdir = Path(scratch)
        (workdir / "tapbench_app.py").write_text(APP_MODULE)
        (workdir / "tapbench.tac").write_text(APP_TAC)
        result = measure_in_process(workdir, services, runs)

        port = _free_port()
        env = _env(TAPBENCH_SERVICES=str(services), TAPBENCH_PORT=str(port))
        tac = str(workdir / "tapbench.tac")
        tap = _save_shutdown_tap(workdir, tac, port, "TapBench", env)
        big_tac, big_tap = _compare_starts(workdir, tac, tap.name, port, process_runs, env)

        counter_port = _free_port()
        counter_env = _env(COUNTER_PORT=str(counter_port))
        counter_tac = str(ROOT / "examples" / "counter.tac")
        counter_tap = _save_shutdown_tap(workdir, counter_tac, counter_port, "Counter", counter_env)
        small_tac, small_tap = _compare_starts(workdir, counter_tac, counter_tap.name, counter_port,
                                               process_runs, counter_env)

    big_ratio = statistics.median(big_tap) / statistics.median(big_tac)
    small_ratio = statistics.median(small_tap) / statistics.median(small_tac)
    result.update({
        f"{services:,}-service app: command to listening from .tac (ms)": _ms(big_tac),
        f"{services:,}-service app: command to listening from .tap (ms)": _ms(big_tap),
        f"{services:,}-service app: .tap / .tac (median)": round(big_ratio, 3),
        "counter.tac: command to listening from .tac (ms)": _ms(small_tac),
        "counter.tac: command to listening from .tap (ms)": _ms(small_tap),
        "counter.tac: .tap / .tac (median)": round(small_ratio, 3),
    })
    result["checks"] = {
        f"{services:,}-service app restarted from its .tap listens within 20% of its .tac start":
            big_ratio <= TARGET,
        "counter restarted from its .tap listens within 20% of its .tac start": small_ratio <= TARGET,
    }
    result["markdown"] = (
        "Save = pickle + header + SHA-256 + write to a temporary file + fsync + rename + fsync of the "
        "directory; load = read + ownership/mode checks + digest + unpickle. Start-to-listening is "
        "from spawning `twistdlite -noy app.tac` or `twistdlite -nof app-shutdown.tap` to the first "
        "accepted TCP connection, alternating the two (after one warm-up each at full scale).")
    return result


def _show(value: object) -> str:
    if isinstance(value, list) and value:
        return f"median {statistics.median(value):,.3f} (min {min(value):,.3f}, max {max(value):,.3f}, n={len(value)})"
    return str(value)


def main(argv: Optional[list] = None) -> int:
    """Print the results, one ``key: value`` per line; exit 1 when a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the sizes and repetitions")
    args = parser.parse_args(argv)
    result = run(args.scale)
    for key, value in result.items():
        if key == "checks":
            for what, ok in value.items():
                print(f"{'PASS' if ok else 'MISS'}: {what}")
        elif key != "markdown":
            print(f"{key}: {_show(value)}")
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
