"""Web: a static file and a WSGI hello world over HTTP/1.1 keep-alive, 50 connections, side by side.

Servers: ``twistdlite web`` on asyncio and uvloop, Twisted's ``twistd web`` (same options, same files)
and, for the static file, nginx (Debian's, as the C reference: one process, ``master_process off``, its
own temporary configuration on 127.0.0.1; left out when not installed). Each logs every request to an
access log file; nginx's is buffered as twistdlite's is (64 KiB, flushed within a second: ``buffer=64k
flush=1s``; unbuffered, nginx makes a write(2) per request, ~9% of its CPU per request here), so the
comparison is like with like. The load generator is wrk (one thread, 50 keep-alive connections), pinned to the
other CPU than the server's.

Measured per run: requests/s (wrk), and the server's CPU time per request: utime+stime of the server
process (all its threads) from /proc/PID/stat across the run, divided by the requests wrk counted.

Targets: twistdlite on asyncio serves at least 2x twistd web's requests per CPU-second (its CPU per
request at most 0.5x twistd's), for both workloads; on uvloop its CPU per static request is within 3x
nginx's.

Run alone with a small budget: ``python benchmarks/bench_web.py --scale 0.2``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (BenchError, Context, Table, bench_env, free_port, log_line, runs_for,  # noqa: E402
                     scaled, spawn, terminate, twistdlite_cmd, uvloop_available, wait_until)
from servers import two_cpus  # noqa: E402

CONNECTIONS = 50
PAGE_SIZE = 4096
HELLO_APP = '''\
def application(environ, start_response):
    body = b"Hello, world!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

NGINX_CONF = '''\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events { worker_connections 1024; }
http {
    include {mime};
    access_log {dir}/access.log combined buffer=64k flush=1s;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:{port};
        root {root};
    }
}
'''


class WebServer:
    """How to start one server for one workload (``{port}`` in ``cmd`` is replaced by a free port)."""

    def __init__(self, key: str, label: str, cmd: list, missing: str = "", conf: str = "") -> None:
        self.key = key
        self.label = label
        self.cmd = cmd
        self.missing = missing
        self.conf = conf  # an nginx configuration template, written into the run's directory


def servers_for(workload: str, ctx: Context, root: Path) -> list:
    """The servers of ``workload`` ("static" or "wsgi") in the order they take turns."""
    target = ["--path", str(root)] if workload == "static" else ["--wsgi", "hello_app.application"]
    ours = [*twistdlite_cmd(), "-n", "--pidfile", "", "-o"]
    specs = [WebServer("twistdlite-asyncio", "twistdlite web (asyncio)",
                       [*ours, "web", *target, "--listen", "tcp:{port}:interface=127.0.0.1",
                        "--logfile", "access.log"])]
    specs.append(WebServer("twistdlite-uvloop", "twistdlite web (uvloop)",
                           [*ours, "-r", "uvloop", "web", *target, "--listen", "tcp:{port}:interface=127.0.0.1",
                            "--logfile", "access.log"],
                           "" if uvloop_available() else "uvloop not installed"))
    twistd = ctx.twistd
    specs.append(WebServer("twistd", "twistd web",
                           [twistd or "twistd", "-n", "--pidfile", "", "-l", "twistd.log", "web", *target,
                            "--listen", "tcp:{port}:interface=127.0.0.1", "--logfile", "access.log"],
                           "" if twistd else "twistd not installed"))
    if workload == "static":
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        mime = "/etc/nginx/mime.types"
        specs.append(WebServer("nginx", "nginx", [nginx or "nginx", "-c", "{dir}/nginx.conf", "-p", "{dir}"],
                               "" if nginx and os.path.exists(mime) else "nginx not installed",
                               NGINX_CONF.replace("{mime}", mime).replace("{root}", str(root))))
    return specs  # (nginx runs no WSGI application: no nginx row for that workload)


def wait_http(port: int, path: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Poll until ``GET path`` answers 200 on ``port``."""
    import socket

    def ok() -> bool:
        if proc.poll() is not None:
            raise BenchError(f"the server exited with status {proc.returncode} before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
                return sock.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    wait_until(ok, timeout, f"a 200 for {path} on port {port}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port: int, path: str, duration: float, cpu: Optional[int]) -> tuple:
    """(requests/s, requests) of one wrk run: one thread, CONNECTIONS keep-alive connections."""
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(duration))}s", f"http://127.0.0.1:{port}{path}"]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, stdin=subprocess.DEVNULL)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    count = re.search(r"(\d+) requests in", done.stdout)
    if done.returncode != 0 or rate is None or count is None:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stdout[-300:]}{done.stderr[-300:]}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if errors:
        raise BenchError(f"wrk saw {errors.group(1)} error responses")
    return float(rate.group(1)), int(count.group(1))


def measure(spec: WebServer, workdir: Path, path: str, duration: float, server_cpu: Optional[int],
            client_cpu: Optional[int]) -> tuple:
    """Start ``spec``, warm it up, measure once: (requests/s, server CPU µs per request)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [part.replace("{port}", str(port)).replace("{dir}", str(workdir)) for part in spec.cmd]
    if spec.conf:
        (workdir / "nginx.conf").write_text(spec.conf.replace("{dir}", str(workdir)).replace("{port}", str(port)))
    env = bench_env(PYTHONPATH=os.pathsep.join([str(workdir), bench_env()["PYTHONPATH"]]))
    proc = spawn(cmd, cwd=workdir, log=workdir / "server.log", env=env, cpu=server_cpu)
    try:
        wait_http(port, path, proc)
        wrk(port, path, 1, client_cpu)  # warm-up, not counted
        before = cpu_seconds(proc.pid)
        rate, count = wrk(port, path, duration, client_cpu)
        used = cpu_seconds(proc.pid) - before
        if proc.poll() is not None:
            raise BenchError(f"{spec.label} exited during the run")
        return rate, used / count * 1e6
    finally:
        terminate(proc.pid, timeout=10.0)


def workload_tables(ctx: Context, workload: str, letter: str) -> list:
    """Requests/s and CPU per request of every server for one workload."""
    root = ctx.scratch(f"web-{workload}-files")
    (root / "page.html").write_bytes(bytes((i * 7 + 13) % 26 + 97 for i in range(PAGE_SIZE)))
    path = "/page.html" if workload == "static" else "/"
    specs = servers_for(workload, ctx, root)
    if shutil.which("wrk") is None:
        for spec in specs:
            spec.missing = spec.missing or "wrk not installed"
    runs = runs_for(3, ctx.scale)
    duration = scaled(3.0, ctx.scale, 1.0)
    server_cpu, client_cpu = two_cpus()
    rates = {spec.key: [] for spec in specs}
    costs = {spec.key: [] for spec in specs}
    failures = {}
    for round_no in range(runs):
        ctx.settle()
        for spec in specs:
            if spec.missing or spec.key in failures:
                continue
            workdir = ctx.scratch(f"web-{workload}-{spec.key}")
            if workload == "wsgi":
                (workdir / "hello_app.py").write_text(HELLO_APP)
            try:
                rate, cost = measure(spec, workdir, path, duration, server_cpu, client_cpu)
            except BenchError as exc:
                failures[spec.key] = str(exc)
                log_line(f"web {workload}: {spec.label} failed: {exc}")
                continue
            rates[spec.key].append(rate)
            costs[spec.key].append(cost)
        log_line(f"web {workload} round {round_no + 1}/{runs} done")
    what = (f"a {PAGE_SIZE}-byte static file (`/page.html`, served from the same directory by every server)"
            if workload == "static" else "a WSGI hello world (13 bytes, `Content-Length` given; the same "
            "application for both, run in their thread pools)")
    pinned = (f"server pinned to CPU {server_cpu}, wrk to CPU {client_cpu}" if server_cpu is not None
              else "not pinned (fewer than 2 CPUs)")
    throughput = Table(f"web-{workload}", f"9{letter}. Web, {workload}: requests/s", "requests/s",
                       f"wrk, one thread, {CONNECTIONS} keep-alive connections, {duration:g} s per run after a "
                       f"1 s warm-up, {what}; each server writes an access log file; {pinned}. On 2 cores "
                       "wrk's own CPU can cap the fastest servers. Higher is better.",
                       reference="twistd", digits=0)
    cost = Table(f"web-{workload}-cpu", f"9{chr(ord(letter) + 1)}. Web, {workload}: server CPU per request",
                 "µs", "utime+stime of the server process (all threads, /proc/PID/stat) during each measured run "
                 "divided by the requests wrk counted. Lower is better; a ratio of 0.5 to twistd is twice its "
                 "requests per CPU-second.", reference="twistd", digits=1)
    for spec in specs:
        missing = spec.missing or failures.get(spec.key, "")
        throughput.add(spec.key, spec.label, rates[spec.key], missing)
        cost.add(spec.key, spec.label, costs[spec.key], missing)
    cost.target(f"web.{workload}.asyncio.vs-twistd", "twistdlite-asyncio", "<=", 0.5, "twistd")
    cost.target(f"web.{workload}.uvloop.vs-twistd", "twistdlite-uvloop", "<=", 0.5, "twistd")
    if workload == "static":
        cost.target("web.static.uvloop.vs-nginx", "twistdlite-uvloop", "<=", 3.0, "nginx")
        cost.report_ratio("web.static.asyncio.vs-nginx", "twistdlite-asyncio", "nginx")
    return [throughput, cost]


def run(ctx: Context) -> list:
    """The web tables: static file (9a, 9b) and WSGI hello world (9c, 9d)."""
    return [*workload_tables(ctx, "static", "a"), *workload_tables(ctx, "wsgi", "c")]


def main(argv: Optional[list] = None) -> int:
    """Run this benchmark alone and print its tables."""
    import argparse
    import tempfile

    from harness import find_twistd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.3)
    args = parser.parse_args(argv)
    ctx = Context(args.scale, Path(tempfile.mkdtemp(prefix="twistdlite-bench-web-")), find_twistd())
    began = time.monotonic()
    for table in run(ctx):
        print(table.markdown(), end="\n\n")
    print(f"({time.monotonic() - began:.0f} s)")
    shutil.rmtree(ctx.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
