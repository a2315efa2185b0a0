"""Shared machinery of the benchmark suite: processes, timing, statistics and result tables.

Every process a benchmark starts is spawned through :func:`spawn` (or recorded
with :func:`adopt` when it is a daemon), so :func:`cleanup` can kill and reap
whatever is still alive however a run ends. The suite makes itself a child
subreaper (:func:`become_subreaper`) so detached daemons are re-parented to it
and reaped here instead of lingering as zombies.

Everything talks to 127.0.0.1 only; every wait has a deadline.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT / "tests"))

# The tests' process helpers, shared (the suite, like the test session, is a child subreaper).
import support  # noqa: E402
from support import become_subreaper, children, is_gone, read_pid  # noqa: E402,F401
EXAMPLES = ROOT / "examples"
HOST = "127.0.0.1"
DEADLINE = 30.0

_started: dict[int, str] = {}


class BenchError(RuntimeError):
    """A benchmark could not take its measurement (a server did not start, a deadline passed...)."""


# -- processes -------------------------------------------------------------------------------------

def bench_env(**extra: str) -> dict:
    """The environment of every spawned process: this checkout importable, no inherited tuning.

    ``PYTHONDONTWRITEBYTECODE`` is dropped so the warm-up round leaves ``.pyc`` files, as an
    installed package has: otherwise every start would recompile twistdlite's sources.
    """
    dropped = ("PYTHONDEVMODE", "PYTHONDONTWRITEBYTECODE", "PYTHONMALLOC",
               "PYTHONASYNCIODEBUG", "PYTHONTRACEMALLOC", "PYTHONPROFILEIMPORTTIME")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def _preexec(cpu: Optional[int], raise_nofile: bool) -> Optional[Callable[[], None]]:
    if cpu is None and not raise_nofile:
        return None

    def setup() -> None:
        if raise_nofile:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return setup


def spawn(cmd: Sequence[str], cwd: Path, log: Path, env: Optional[dict] = None, cpu: Optional[int] = None,
          raise_nofile: bool = False, stdin: int = subprocess.DEVNULL) -> subprocess.Popen:
    """Start ``cmd`` with its output in the file ``log``; recorded for :func:`cleanup`."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env or bench_env(), stdin=stdin, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=_preexec(cpu, raise_nofile))
    _started[proc.pid] = shlex.join(cmd)
    return proc


def adopt(pid: int, what: str) -> None:
    """Record a process this run caused to exist (a daemon), so :func:`cleanup` ends it."""
    _started[pid] = what


def wait_until(condition: Callable[[], object], timeout: float, what: str, longest: float = 0.02) -> object:
    """Poll ``condition`` (1 ms, backing off to ``longest``) until truthy; :class:`BenchError` at the deadline."""
    return support.wait_until(condition, timeout, what, first=min(0.001, longest), longest=longest, error=BenchError)


def terminate(pid: int, timeout: float = 10.0, sig: int = signal.SIGTERM) -> bool:
    """Send ``sig``, wait (bounded) for the exit, SIGKILL if it is still there; True if it obeyed ``sig``."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        _started.pop(pid, None)
        is_gone(pid)
        return True
    try:
        wait_until(lambda: is_gone(pid), timeout, f"PID {pid} to exit")
        obeyed = True
    except BenchError:
        obeyed = False
        kill_hard(pid)
    _started.pop(pid, None)
    return obeyed


def kill_hard(pid: int) -> None:
    """SIGKILL ``pid`` if it still runs, and reap it."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        wait_until(lambda: is_gone(pid), 5.0, f"PID {pid} to die")
    except BenchError:
        pass
    _started.pop(pid, None)


def cleanup() -> list[str]:
    """Kill and reap every process this run started that still lives; returns what had to be killed."""
    killed = []
    for pid, what in list(_started.items()):
        if not is_gone(pid):
            killed.append(f"{pid} {what}")
            kill_hard(pid)
        _started.pop(pid, None)
    for pid in children():  # our own children and adopted daemons only
        if not is_gone(pid):
            killed.append(f"{pid} (adopted)")
            kill_hard(pid)
    return killed


# -- the network -----------------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def echo_once(port: int, payload: bytes = b"ping\r\n", timeout: float = 2.0) -> bool:
    """One connect + echo round trip; True when the echo came back whole."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(payload)
            data = b""
            while len(data) < len(payload):
                chunk = sock.recv(65536)
                if not chunk:
                    return False
                data += chunk
            return data == payload
    except OSError:
        return False


def wait_serving(port: int, proc: Optional[subprocess.Popen] = None, timeout: float = DEADLINE,
                 payload: bytes = b"ping\r\n") -> float:
    """Poll until an echo round trip on ``port`` succeeds; returns the monotonic time it did."""
    deadline = time.monotonic() + timeout
    while True:
        if echo_once(port, payload):
            return time.monotonic()
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"the server exited with status {proc.returncode} before serving")
        if time.monotonic() > deadline:
            raise BenchError(f"nothing served on port {port} within {timeout:g} s")
        time.sleep(0.001)


def rss_kib(pid: int) -> int:
    """The resident set size of ``pid`` in KiB."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for PID {pid}")


def nofile_limits() -> tuple[int, int]:
    """This process's (soft, hard) limit on open files."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def raise_nofile() -> int:
    """Raise this process's soft open-file limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the programs under test -----------------------------------------------------------------------

def twistdlite_cmd() -> list[str]:
    """The ``twistdlite`` console script of this interpreter's environment (``python -m`` otherwise)."""
    script = Path(sys.executable).parent / "twistdlite"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "twistdlite"]


def find_twistd() -> Optional[str]:
    """Twisted's ``twistd``: ``$TWISTD`` (empty or ``none`` disables), else the one beside this Python."""
    configured = os.environ.get("TWISTD")
    if configured is not None:
        if configured.strip().lower() in ("", "none", "0", "no"):
            return None
        path = shutil.which(configured)
        return path
    beside = Path(sys.executable).parent / "twistd"
    if beside.exists() and os.access(beside, os.X_OK):
        return str(beside)
    return None


def twistd_python(twistd: str) -> str:
    """The interpreter a ``twistd`` script runs on (from its ``#!`` line)."""
    with open(twistd, "rb") as handle:
        first = handle.readline().decode("utf-8", "replace").strip()
    if first.startswith("#!"):
        parts = first[2:].split()
        if parts and Path(parts[0]).name != "env":
            return parts[0]
    beside = Path(twistd).parent / "python"
    return str(beside) if beside.exists() else sys.executable


def twisted_version(twistd: Optional[str]) -> Optional[str]:
    """The Twisted version of that ``twistd``, or None."""
    if twistd is None:
        return None
    try:
        out = subprocess.run([twistd, "--version"], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL, env=bench_env()).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+\.\d+[\w.]*)", out)
    return match.group(1) if match else out.strip() or None


def twisted_extras(twistd: Optional[str]) -> str:
    """Which optional TLS packages Twisted's interpreter has (they make twistd start heavier)."""
    if twistd is None:
        return ""
    code = ("import importlib.util as u; print(' '.join(n for n in ('OpenSSL', 'service_identity', 'cryptography') "
            "if u.find_spec(n)))")
    try:
        out = subprocess.run([twistd_python(twistd), "-c", code], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"with {', '.join(out)} installed (Twisted's tls extra)" if out else "plain (no TLS extras installed)"


def package_version(name: str) -> Optional[str]:
    """The installed version of distribution ``name`` in this interpreter's environment, or None."""
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def uvloop_available() -> bool:
    """True when uvloop can be imported here."""
    import importlib.util

    return importlib.util.find_spec("uvloop") is not None


def machine() -> list[tuple[str, str]]:
    """A description of this machine and software, as (what, value) pairs."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = "unknown"
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    twistd = find_twistd()
    import twistdlite

    return [
        ("CPU", cpu),
        ("cores", f"{os.cpu_count()} ({usable} usable by this run)"),
        ("memory", memory),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"),
        ("twistdlite", twistdlite.__version__),
        ("uvloop", package_version("uvloop") or "not installed"),
        ("Twisted", (f"{twisted_version(twistd)}, {twisted_extras(twistd)} ({twistd}, Python {twistd_python(twistd)})"
                     if twistd else "not installed (set TWISTD=/path/to/twistd)")),
        ("open-file limit", "soft {}, hard {}".format(*nofile_limits())),
    ]


class Noise:
    """How busy the machine was with other work while the suite ran (from /proc/stat and os.times)."""

    def __init__(self) -> None:
        self.load_start = os.getloadavg()[0]
        self.busy_start, self.total_start = self._machine()
        self.ours_start = self._ours()

    @staticmethod
    def _machine() -> tuple[float, float]:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        tick = os.sysconf("SC_CLK_TCK")
        return (sum(fields) - idle) / tick, sum(fields) / tick

    @staticmethod
    def _ours() -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system

    def describe(self) -> str:
        """One line: the load average at start and end, and the CPU other processes used meanwhile."""
        busy, total = self._machine()
        ours = self._ours() - self.ours_start
        others = max(0.0, (busy - self.busy_start) - ours)
        cores = os.cpu_count() or 1
        wall = (total - self.total_start) / cores
        share = others / (total - self.total_start) if total > self.total_start else 0.0
        return (f"load average {self.load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; other "
                f"processes used {others:.0f} CPU-seconds during the {wall:.0f} s run ({share:.0%} of the "
                f"machine's {cores} cores){' — numbers are noisier than on an idle machine' if share > 0.05 else ''}")


def wait_for_quiet(max_wait: float, threshold: float = 0.15, window: float = 1.0) -> tuple[bool, float]:
    """Wait (at most ``max_wait`` s) until other processes use under ``threshold`` of the machine for
    ``window`` s; returns (quiet, seconds waited). This process is idle meanwhile, so any CPU use is others'."""
    began = time.monotonic()
    while True:
        busy0, total0 = Noise._machine()
        time.sleep(window)
        busy1, total1 = Noise._machine()
        share = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
        waited = time.monotonic() - began
        if share < threshold:
            return True, waited
        if waited + window > max_wait:
            return False, waited


# -- statistics and result tables -------------------------------------------------------------------

@dataclass
class Row:
    """One subject of a measurement: its samples, or why there are none."""

    key: str
    label: str
    samples: list = field(default_factory=list)
    missing: str = ""  # e.g. "not installed"; set when samples is empty on purpose
    note: str = ""

    @property
    def median(self) -> Optional[float]:
        """The median sample, or None."""
        return statistics.median(self.samples) if self.samples else None


@dataclass
class Check:
    """A target: ``subject`` median OP ``factor`` x ``reference`` median (OP "report": the ratio, no target)."""

    id: str
    subject: str
    reference: str
    op: str  # "<=", ">=", "is" (yes/no) or "report" (a ratio reported, no target)
    factor: float
    ratio: Optional[float] = None
    result: str = "n/a"
    why: str = ""


@dataclass
class Table:
    """One measurement: rows of samples, ratios to a reference row, and targets."""

    id: str
    title: str
    unit: str
    description: str
    rows: list = field(default_factory=list)
    reference: Optional[str] = None
    checks: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    digits: int = 1
    scale: float = 1.0  # displayed value = sample * scale
    grid: Optional[tuple] = None  # (header, rows) shown instead of sample rows, for non-statistical tables

    def empty(self) -> bool:
        """True when the table holds no measurement: no row with samples, or a grid with no row."""
        if self.grid is not None:
            return not self.grid[1]
        return not any(row.samples for row in self.rows)

    def row(self, key: str) -> Optional[Row]:
        """The row called ``key``, or None."""
        return next((row for row in self.rows if row.key == key), None)

    def add(self, key: str, label: str, samples: Iterable[float] = (), missing: str = "", note: str = "") -> Row:
        """Append a row."""
        row = Row(key, label, list(samples), missing, note)
        self.rows.append(row)
        return row

    def target(self, id: str, subject: str, op: str, factor: float, reference: str) -> Check:
        """Add a target (evaluated by :meth:`evaluate`)."""
        check = Check(id, subject, reference, op, factor)
        self.checks.append(check)
        return check

    def report_ratio(self, id: str, subject: str, reference: str) -> Check:
        """Report ``subject``'s median as a ratio to ``reference``'s in the targets, without a target."""
        check = Check(id, subject, reference, "report", 0.0)
        self.checks.append(check)
        return check

    def require(self, id: str, label: str, ok: Optional[bool], detail: str = "") -> Check:
        """Add a yes/no target (``ok`` None: could not be judged)."""
        check = Check(id, label, "", "is", 0.0, None, "n/a" if ok is None else "PASS" if ok else "MISS", detail)
        self.checks.append(check)
        return check

    def evaluate(self) -> None:
        """Compute each target's ratio and PASS/MISS (n/a when a side has no samples)."""
        for check in self.checks:
            if check.op == "is":
                continue
            subject, reference = self.row(check.subject), self.row(check.reference)
            if subject is None or reference is None or subject.median is None or reference.median is None:
                check.ratio, check.result = None, "n/a"
                absent = [(row.label, row.missing or "failed") if row else (key, "absent")
                          for row, key in ((subject, check.subject), (reference, check.reference))
                          if row is None or row.median is None]
                check.why = "no measurement for " + ", ".join(f"{name} ({why})" for name, why in absent)
                continue
            if reference.median == 0:
                check.ratio, check.result = None, "n/a"
                continue
            check.ratio = subject.median / reference.median
            if check.op == "report":
                check.result = "reported"
                continue
            ok = check.ratio <= check.factor if check.op == "<=" else check.ratio >= check.factor
            check.result = "PASS" if ok else "MISS"

    def value(self, sample: Optional[float]) -> str:
        """A sample formatted for display."""
        if sample is None:
            return "—"
        return f"{sample * self.scale:,.{self.digits}f}"

    def label_of(self, key: str) -> str:
        """The display label of row ``key``."""
        row = self.row(key)
        return row.label if row else key

    def markdown(self) -> str:
        """The table (and its targets and notes) as Markdown."""
        self.evaluate()
        lines = [f"### {self.title}", "", self.description, ""]
        if self.grid is not None:
            header, grid_rows = self.grid
            if grid_rows:
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|---" + "|---:" * (len(header) - 1) + "|")
                lines += ["| " + " | ".join(str(cell) for cell in cells) + " |" for cells in grid_rows]
            lines += self._yes_no_checks()
            for note in self.notes:
                lines += ["", note]
            return "\n".join(lines)
        ref = self.row(self.reference) if self.reference else None
        ref_label = ref.label if ref else None
        header = ["", f"median ({self.unit})", "min", "max", "runs"]
        if ref_label:
            header.append(f"ratio to {ref_label}")
        header += ["target", "result"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header) - 2)) + "|---|---|")
        for row in self.rows:
            own = [c for c in self.checks if c.subject == row.key and c.op in ("<=", ">=")]
            targets = "; ".join(f"{'≤' if c.op == '<=' else '≥'} {c.factor:g}× {self.label_of(c.reference)}"
                                for c in own)
            results = "; ".join(
                (f"**{c.result}** ({ratio_text(c.ratio, c.factor)})" if c.ratio is not None else c.result)
                for c in own)
            label = row.label + (f" ({row.note})" if row.note else "")
            if row.samples:
                cells = [label, self.value(row.median), self.value(min(row.samples)), self.value(max(row.samples)),
                         str(len(row.samples))]
            else:
                cells = [label, row.missing or "failed", "—", "—", "0"]
            if ref_label:
                if row.samples and ref is not None and ref.median:
                    cells.append(f"{row.median / ref.median:.2f}×")
                else:
                    cells.append("—")
            cells += [targets or "report", results or "—"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += self._yes_no_checks()
        for note in self.notes:
            lines += ["", note]
        return "\n".join(lines)

    def _yes_no_checks(self) -> list:
        checks = [c for c in self.checks if c.op == "is"]
        if not checks:
            return []
        return [""] + [f"- {c.subject}: **{c.result}**" + (f" — {c.why}" if c.why else "") for c in checks]

    def describe(self, check: Check) -> str:
        """One line saying what ``check`` demands."""
        if check.op == "is":
            return check.subject
        if check.op == "report":
            return f"{self.label_of(check.subject)} ÷ {self.label_of(check.reference)} (reported, no target)"
        op = "≤" if check.op == "<=" else "≥"
        return f"{self.label_of(check.subject)} {op} {check.factor:g}× {self.label_of(check.reference)}"


def ratio_text(ratio: float, factor: float = 0.0) -> str:
    """A ratio as ``1.23×``; three decimals when two would look equal to the target's factor."""
    text = f"{ratio:.2f}"
    if factor and float(text) == factor:
        text = f"{ratio:.3f}"
    return text + "×"


def median_or_none(samples: Sequence[float]) -> Optional[float]:
    """The median, or None for no samples."""
    return statistics.median(samples) if samples else None


def scaled(base: float, scale: float, least: float) -> float:
    """``base * scale``, but never below ``least``."""
    return max(least, base * scale)


def runs_for(base: int, scale: float) -> int:
    """How many repetitions at this scale (at least 1)."""
    return max(1, round(base * scale))


def log_line(message: str) -> None:
    """Progress on stderr (the tables go to stdout)."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


@dataclass
class Context:
    """What every benchmark module's ``run`` gets: the scale, a scratch directory, and twistd (or None)."""

    scale: float
    workdir: Path
    twistd: Optional[str]
    quiet_budget: float = 0.0  # seconds :meth:`settle` may still spend waiting, over the whole run
    waited: float = 0.0
    flags: str = ""  # the command line's options that change what is measured, for the report

    def settle(self, longest: float = 10.0) -> None:
        """Before a round: wait (bounded by ``longest`` and what is left of the budget) for a quiet machine."""
        allowed = min(longest, self.quiet_budget - self.waited)
        if allowed <= 0:
            return
        _, waited = wait_for_quiet(allowed, threshold=0.10, window=0.3)
        self.waited += waited

    def scratch(self, name: str) -> Path:
        """A fresh, empty directory under the run's scratch directory."""
        path = self.workdir / name
        suffix = 0
        while path.exists():
            suffix += 1
            path = self.workdir / f"{name}-{suffix}"
        path.mkdir(parents=True)
        return path
