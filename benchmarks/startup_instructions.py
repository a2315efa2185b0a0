"""Instructions from spawn to the first echo, under callgrind: the start-up target without the machine's noise.

    python benchmarks/startup_instructions.py [--runs N]

Runs ``twistdlite -noy examples/echo.tac`` and the bare asyncio script importing
click (``bare_echo.py --udp --click``, the start-up target's reference) under
``valgrind --tool=callgrind`` and prints the instructions each executed from
its first one to its first echo, and their ratio. Wall time on a shared machine
moves by tens of per cent from run to run; these counts move by a few thousand
instructions in ~300 million (what the client's timing changes in the loop).

How: ``PYTHONHASHSEED=0``; ``.pyc`` files written by a warm-up run; a fresh
working directory each run (no stale pidfile); each server runs through a small
wrapper that ends it with ``os._exit(0)`` right after its first ``send()`` (the
echo of the byte a client sends as soon as the port accepts; the client runs in
this process, outside valgrind). The stdlib loop only: uvloop's sockets are not
Python socket objects, so the wrapper cannot see its first send.

The counts include what both pay alike (the interpreter, ``site`` and its
``.pth`` files, asyncio, click). An editable install's finder (a ``.pth`` that
imports pathlib) adds ~16 million to both here; on 2026-12-06 the ratio was
1.082x in the editable test environment and 1.086x in a venv holding only click.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import BENCH_DIR, EXAMPLES, bench_env, free_port, twistdlite_cmd

#: Runs the script in argv[1:] and leaves at its first socket send.
WRAPPER = """\
import os, runpy, socket, sys
_send = socket.socket.send
def send(self, *args):
    _send(self, *args)
    os._exit(0)
socket.socket.send = send
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(script))
runpy.run_path(script, run_name="__main__")
"""


def subjects() -> dict:
    """label -> (the script and its arguments, the working directory's needs)."""
    command = twistdlite_cmd()
    script = command[0] if len(command) == 1 else str(Path(__file__).resolve().parent.parent / "twistdlite"
                                                        / "__main__.py")
    return {
        "twistdlite -noy examples/echo.tac": [script, "-noy", str(EXAMPLES / "echo.tac")],
        "bare asyncio script + import click": [str(BENCH_DIR / "bare_echo.py"), "--udp", "--click"],
    }


def _poke(port: int, deadline: float) -> None:
    """Connect as soon as the port accepts and send one byte (the server leaves at its echo)."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(b"x")
                conn.recv(16)
            return
        except OSError:
            time.sleep(0.002)


def count(argv: list, valgrind: bool = True, timeout: float = 120.0) -> int:
    """Instructions of one run of ``argv`` until its first echo (0 without valgrind: a warm-up)."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="startup-instr-"))
    env = bench_env(ECHO_PORT=str(port), PYTHONHASHSEED="0")
    prefix = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] if valgrind else []
    client = threading.Thread(target=_poke, args=(port, time.monotonic() + timeout), daemon=True)
    client.start()
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", WRAPPER, *argv], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    client.join(5)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    if not valgrind:
        return 0
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    """Count each subject ``--runs`` times; print the medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per subject (default 3)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    medians = {}
    for label, argv in subjects().items():
        count(argv, valgrind=False)  # writes the .pyc files
        counts = [count(argv) for _ in range(args.runs)]
        medians[label] = statistics.median(counts)
        print(f"{label}: {medians[label] / 1e6:.1f} M instructions (runs: "
              f"{', '.join(f'{c / 1e6:.2f}' for c in counts)})", flush=True)
    ours, bare = medians.values()
    print(f"ratio: {ours / bare:.3f}x")


if __name__ == "__main__":
    main()
