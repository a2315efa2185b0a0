"""tap2deb and tap2rpm end to end: build packages from examples/reverse_app.tac and from a shutdown .tap,
inspect them with the distributions' own tools, lint them, and run what they install.

The packages are built once per module (building and linting are slow): a .deb and an .rpm from the
.tac, and a --keep-state .deb and .rpm from a .tap. Each is unpacked into a temporary root and the
unit's own ExecStart (its paths moved into that root) runs with the system's /usr/bin/python3, which
has neither twistdlite nor its dependencies: the package must carry them.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List

import pytest

from support import EXAMPLES, ROOT, LineReader, spawn, wait_for_file_text, wait_until
from twistdlite.packaging import application, build, cli, model

SYSTEM_PYTHON = "/usr/bin/python3"
MAINTAINER = "Jane Doe <jane@example.org>"
TAC = EXAMPLES / "reverse_app.tac"

needs_dpkg = pytest.mark.skipif(not (shutil.which("dpkg-deb") and shutil.which("dpkg-buildpackage")),
                                reason="dpkg-deb/dpkg-buildpackage are not installed (Debian packages dpkg, dpkg-dev)")
needs_rpm = pytest.mark.skipif(not (shutil.which("rpmbuild") and shutil.which("rpm2cpio") and shutil.which("cpio")),
                               reason="rpmbuild/rpm2cpio/cpio are not installed (Debian packages rpm, cpio)")
needs_python = pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason="no /usr/bin/python3")


def tool(*args: str, cwd: Path = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a packaging tool with a deadline; its output as text."""
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL, env=dict(os.environ, LC_ALL="C.UTF-8"))
    if check:
        assert result.returncode == 0, f"{args}: {result.stderr}{result.stdout}"
    return result


def tap2(kind: str, *args: str) -> int:
    """Run tap2deb or tap2rpm in this process; its exit status."""
    command = cli.tap2deb if kind == "deb" else cli.tap2rpm
    return cli.run(command, f"tap2{kind}", list(args))


def tap2_printing(kind: str, *args: str, cwd: Path = None) -> tuple:
    """Run tap2deb or tap2rpm in this process (in ``cwd``): its exit status and what it printed."""
    before = os.getcwd()
    printed = io.StringIO()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(printed):
            code = tap2(kind, *args)
    finally:
        os.chdir(before)
    return code, printed.getvalue()


# -- the packages, built once ------------------------------------------------------------------

@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("packages")


@pytest.fixture(scope="module")
def shutdown_tap(tmp_path_factory) -> Path:
    """A real shutdown .tap: examples/reverse_app.tac run (port 0) and stopped with SIGTERM."""
    rundir = tmp_path_factory.mktemp("tapsource")
    proc = spawn(["-n", "--pidfile", "", "-d", str(rundir), "-y", str(TAC)], REVERSE_PORT="0")
    try:
        LineReader(proc).wait_for(r"starting on \d+")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        proc.stdout.close()
    tap = rundir / "Reverser-shutdown.tap"
    assert tap.is_file()
    return tap


@pytest.fixture(scope="module")
def tac_deb(out) -> Path:
    if not (shutil.which("dpkg-deb") and shutil.which("dpkg-buildpackage")):
        pytest.skip("dpkg-deb/dpkg-buildpackage are not installed")
    assert tap2_printing("deb", "-t", str(TAC), "-m", MAINTAINER, "--watchdog", "30", "-q", "-u",
                         "-d", str(out / "reverse-app_1.0_all.deb")) == (0, "")  # -q: nothing printed
    return out / "reverse-app_1.0_all.deb"


#: What tap2rpm printed when it built tac_rpm.
RPM_BUILD: Dict[str, str] = {}
RPM_SUMMARY = "Reverses each line it is sent"
RPM_DESCRIPTION = "A line protocol on TCP port 2323:\n\nevery line comes back reversed."


@pytest.fixture(scope="module")
def tac_rpm(out) -> Path:
    """The .rpm of the .tac, with every default that can be: the name (reverse-app, which rpmlint takes for a
    language pack: its -app is an ISO 639 code), the file name and place (the current directory)."""
    if not shutil.which("rpmbuild"):
        pytest.skip("rpmbuild is not installed")
    code, RPM_BUILD["printed"] = tap2_printing("rpm", "-t", str(TAC), "-V", "2.1", "-e", RPM_SUMMARY,
                                               "-l", RPM_DESCRIPTION, cwd=out)
    assert code == 0
    return out / "reverse-app-2.1-1.noarch.rpm"


@pytest.fixture(scope="module")
def tap_packages(out, shutdown_tap) -> Dict[str, Path]:
    """A --keep-state .deb and .rpm from the shutdown .tap (its module named with --include)."""
    found = {}
    include = str(EXAMPLES / "reverse.py")
    if shutil.which("dpkg-deb") and shutil.which("dpkg-buildpackage"):
        assert tap2("deb", "-t", str(shutdown_tap), "-p", "reverser-state", "-m", MAINTAINER, "--keep-state",
                    "--include", include, "-q", "-d", str(out / "reverser-state_1.0_all.deb")) == 0
        found["deb"] = out / "reverser-state_1.0_all.deb"
    if shutil.which("rpmbuild"):
        assert tap2("rpm", "-t", str(shutdown_tap), "-p", "reverser-state", "--keep-state", "--include", include,
                    "-q", "--rpmfile", str(out / "reverser-state-1.0-1.noarch.rpm")) == 0
        found["rpm"] = out / "reverser-state-1.0-1.noarch.rpm"
    return found


def unpack(package: Path, root: Path) -> Path:
    """Unpack a .deb or .rpm into ``root``; returns ``root``."""
    root.mkdir()
    if package.suffix == ".deb":
        tool("dpkg-deb", "-x", str(package), str(root))
    else:
        subprocess.run(f"rpm2cpio {shlex.quote(str(package))} | cpio -idm --quiet", shell=True, cwd=root,
                       check=True, timeout=60)
    return root


def unit_of(root: Path, name: str) -> Path:
    for base in ("lib/systemd/system", "usr/lib/systemd/system"):
        path = root / base / f"{name}.service"
        if path.is_file():
            return path
    raise AssertionError(f"no {name}.service in {root}")


def unit_fields(path: Path) -> Dict[str, List[str]]:
    """``{key: [values]}`` of a unit file."""
    fields: Dict[str, List[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            fields.setdefault(key, []).append(value)
    return fields


# -- what the packages hold --------------------------------------------------------------------

@needs_dpkg
def test_the_deb_is_architecture_all_and_holds_the_application_twistdlite_and_its_dependencies(tac_deb):
    info = tool("dpkg-deb", "-I", str(tac_deb)).stdout
    for field in ("Package: reverse-app", "Version: 1.0", "Architecture: all", f"Maintainer: {MAINTAINER}",
                  "Depends: python3 (>= 3.9)", "Description: Reverser service run by twistdlite"):
        assert field in info, field
    for script in ("postinst", "prerm", "postrm", "conffiles", "md5sums"):
        assert re.search(rf"\b{script}\b", info), script
    names = [line.split()[-1] for line in tool("dpkg-deb", "-c", str(tac_deb)).stdout.splitlines()]
    for path in ["./usr/lib/reverse-app/app/reverse_app.tac", "./usr/lib/reverse-app/app/reverse.py",
                 "./usr/lib/reverse-app/lib/twistdlite/__init__.py", "./usr/lib/reverse-app/lib/twistdlite/launch/cli.py",
                 "./usr/lib/reverse-app/lib/click/__init__.py", "./usr/lib/reverse-app/lib/daemon/daemon.py",
                 "./usr/lib/reverse-app/lib/lockfile/__init__.py", "./lib/systemd/system/reverse-app.service",
                 "./usr/lib/sysusers.d/reverse-app.conf", "./etc/init.d/reverse-app",
                 "./usr/share/doc/reverse-app/copyright", "./usr/share/doc/reverse-app/changelog.gz"]:
        assert path in names, path
    assert any(re.search(r"/lib/python_daemon-[\d.]+\.dist-info/LICENSE", n) for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "twistdlite/packaging" in n]
    assert not [n for n in names if not n.startswith(("./usr/lib/reverse-app/", "./lib/systemd/", "./etc/init.d/",
                                                      "./usr/lib/sysusers.d/", "./usr/share/doc/reverse-app/"))
                and not n.endswith("/")]


@needs_rpm
def test_the_rpm_is_noarch_and_holds_the_application_twistdlite_and_its_dependencies(tac_rpm):
    info = tool("rpm", "-qpi", str(tac_rpm)).stdout
    for field in (r"Name\s*: reverse-app\n", r"Version\s*: 2\.1", r"Release\s*: 1", r"Architecture: noarch",
                  r"Packager\s*: tap2rpm <root@localhost>", r"License\s*: MIT AND BSD-3-Clause AND Apache-2.0",
                  rf"Summary\s*: {RPM_SUMMARY}\n", "Description :\n" + re.escape(RPM_DESCRIPTION)):
        assert re.search(field, info), (field, info)
    files = tool("rpm", "-qpl", str(tac_rpm)).stdout.split()
    for path in ["/usr/lib/reverse-app/app/reverse_app.tac", "/usr/lib/reverse-app/app/reverse.py",
                 "/usr/lib/reverse-app/lib/twistdlite/__init__.py", "/usr/lib/reverse-app/lib/click/__init__.py",
                 "/usr/lib/reverse-app/lib/daemon/daemon.py", "/usr/lib/reverse-app/lib/lockfile/__init__.py",
                 "/usr/lib/systemd/system/reverse-app.service", "/usr/lib/sysusers.d/reverse-app.conf"]:
        assert path in files, path
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    assert not [f for f in files if not f.startswith(("/usr/lib/reverse-app", "/usr/lib/systemd/system/reverse-app.",
                                                      "/usr/lib/sysusers.d/reverse-app.", "/usr/share/doc/reverse-app"))]
    requires = tool("rpm", "-qpR", str(tac_rpm)).stdout
    assert "python3 >= 3.9" in requires


@needs_dpkg
def test_the_unit_is_hardened_type_notify_as_the_package_user_with_the_watchdog_asked_for(tac_deb, tmp_path):
    root = unpack(tac_deb, tmp_path / "root")
    fields = unit_fields(unit_of(root, "reverse-app"))
    expected = {"Type": "notify", "User": "reverse-app", "Group": "reverse-app", "StateDirectory": "reverse-app",
                "RuntimeDirectory": "reverse-app", "Restart": "on-failure", "NoNewPrivileges": "yes",
                "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
                "CapabilityBoundingSet": "", "AmbientCapabilities": "", "WatchdogSec": "30",
                "WantedBy": "multi-user.target"}
    for key, value in expected.items():
        assert fields.get(key) == [value], (key, fields.get(key))
    command = shlex.split(fields["ExecStart"][0])
    assert command[:6] == ["/usr/bin/python3", "-m", "twistdlite", "--nodaemon", "--pidfile", ""]
    assert command[6:8] == ["-l", "-"] and "-o" in command
    assert command[-2:] == ["-y", "/usr/lib/reverse-app/app/reverse_app.tac"]
    sysusers = (root / "usr/lib/sysusers.d/reverse-app.conf").read_text()
    assert re.search(r"^u reverse-app - \".*\" /var/lib/reverse-app", sysusers, re.M)


def test_a_listen_below_1024_or_the_flag_grants_only_cap_net_bind_service(monkeypatch):
    monkeypatch.setenv("REVERSE_PORT", "80")
    params = dict(tapfile=str(TAC), app_type=None, protocol=None, maintainer=MAINTAINER, description=None,
                  long_description=None, version="1.0", includes=(), privileged=False, watchdog=None,
                  keep_state=False, quiet=True)
    prepared = build.Prepared(cli.make_request("deb", params))
    assert prepared.privileged_ports == [80]
    unit = prepared.unit()
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n" in unit
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE\n" in unit
    monkeypatch.setenv("REVERSE_PORT", "8080")
    unprivileged = build.Prepared(cli.make_request("deb", params))
    assert unprivileged.privileged_ports == [] and "CapabilityBoundingSet=\n" in unprivileged.unit()
    flagged = build.Prepared(cli.make_request("deb", dict(params, privileged=True)))
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE\n" in flagged.unit()


@needs_dpkg
def test_systemd_analyze_verify_accepts_the_units(tac_deb, tap_packages, tmp_path, request):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    packages = [tac_deb, *tap_packages.values()]
    if "rpm" in tap_packages:
        packages.append(request.getfixturevalue("tac_rpm"))
    units = []
    for number, package in enumerate(packages):
        root = unpack(package, tmp_path / f"root{number}")
        units.extend(root.glob("*lib/systemd/system/*.service"))
        units.extend(root.glob("usr/lib/systemd/system/*.service"))
    assert len(units) == len(packages)
    for unit in units:
        result = tool("systemd-analyze", "verify", str(unit), check=False)
        assert result.returncode == 0 and not result.stderr.strip(), f"{unit.name}: {result.stderr}"


# -- linted ------------------------------------------------------------------------------------

@needs_dpkg
def test_lintian_reports_no_errors_and_no_warnings_on_the_debs(tac_deb, tap_packages):
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed")
    debs = [tac_deb] + ([tap_packages["deb"]] if "deb" in tap_packages else [])
    result = tool("lintian", *map(str, debs), check=False)
    assert result.returncode == 0, result.stdout + result.stderr  # lintian fails on an error
    tags = [line for line in result.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert not tags, "\n".join(tags)


def rpmlint(*args: Path) -> tuple:
    """rpmlint's errors (``package: E: message``) and its exit status."""
    result = tool("rpmlint", *map(str, args), check=False)
    return sorted(re.findall(r"^\S+: E: .*$", result.stdout, re.M)), result.returncode


@needs_rpm
def test_rpmlint_reports_no_errors_with_the_rpmlintrc_written_beside_the_packages(tac_rpm, tap_packages):
    if shutil.which("rpmlint") is None:
        pytest.skip("rpmlint is not installed")
    packages = {"reverse-app": tac_rpm}
    if "rpm" in tap_packages:
        packages["reverser-state"] = tap_packages["rpm"]
    for name, rpm in packages.items():
        srpm = rpm.parent / rpm.name.replace(".noarch.rpm", ".src.rpm")
        rc = rpm.parent / f"{name}.rpmlintrc"
        assert rpmlint("-r", rc, rpm, srpm) == ([], 0), name
        # What the filter hides, and only that: never signed (-u), and the name's "-app" taken for a language.
        messages = ["no-signature"] + (["no-dependency-on locales-app"] if name == "reverse-app" else [])
        hidden = [f"{name}.noarch: E: no-signature", f"{name}.src: E: no-signature"]
        hidden += [f"{name}.noarch: E: {message}" for message in messages[1:]]
        errors, status = rpmlint(rpm, srpm)
        assert errors == sorted(hidden) and status != 0
        text = rc.read_text()
        filters = re.findall(r"^addFilter\(.*\)$", text, re.M)
        assert filters == ['addFilter(r" E: (' + "|".join(messages) + ')$")']  # one filter: always used
        for message in messages:
            assert f"# {message}:\n#   " in text  # each with why


@needs_rpm
def test_without_q_tap2rpm_says_what_it_wrote_by_default_in_the_current_directory(tac_rpm):
    directory = tac_rpm.parent
    assert RPM_BUILD["printed"].splitlines() == [f"wrote {directory / name}" for name in (
        "reverse-app-2.1-1.noarch.rpm", "reverse-app-2.1-1.src.rpm", "reverse-app.rpmlintrc")]


# -- the source packages ------------------------------------------------------------------------

@needs_dpkg
def test_the_debian_source_package_rebuilds_the_same_deb_with_dpkg_buildpackage(tac_deb, tmp_path):
    dsc = tac_deb.parent / "reverse-app_1.0.dsc"
    assert dsc.is_file() and (tac_deb.parent / "reverse-app_1.0.tar.xz").is_file()
    tool("dpkg-source", "-x", str(dsc), str(tmp_path / "src"))
    tool("dpkg-buildpackage", "-us", "-uc", "-b", "-d", cwd=tmp_path / "src")
    rebuilt = tmp_path / "reverse-app_1.0_all.deb"

    def listing(deb: Path) -> list:
        return sorted(line.split()[-1] for line in tool("dpkg-deb", "-c", str(deb)).stdout.splitlines())

    assert listing(rebuilt) == listing(tac_deb)


@needs_rpm
def test_the_src_rpm_holds_the_spec_and_sources_and_rebuilds(tac_rpm, tmp_path):
    srpm = tac_rpm.parent / "reverse-app-2.1-1.src.rpm"
    assert set(tool("rpm", "-qpl", str(srpm)).stdout.split()) == {"reverse-app.spec", "reverse-app-2.1.tar.gz",
                                                                  "reverse-app.rpmlintrc"}
    tool("rpmbuild", "--rebuild", "--quiet", "--define", f"_topdir {tmp_path}", str(srpm))
    rebuilt = tmp_path / "RPMS" / "noarch" / tac_rpm.name
    assert tool("rpm", "-qpl", str(rebuilt)).stdout == tool("rpm", "-qpl", str(tac_rpm)).stdout


# -- what they install runs ---------------------------------------------------------------------

def exec_start(root: Path, name: str, state: Path) -> tuple:
    """The unit's ExecStart, environment and working directory, with its paths moved under ``root``."""
    fields = unit_fields(unit_of(root, name))

    def moved(text: str) -> str:
        return text.replace(f"/usr/lib/{name}", f"{root}/usr/lib/{name}").replace(f"/var/lib/{name}", str(state))

    command = [moved(arg) for arg in shlex.split(fields["ExecStart"][0])]
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    for entry in fields["Environment"]:
        key, value = entry.split("=", 1)
        env[key] = moved(value)
    return command, env, moved(fields["WorkingDirectory"][0])


def reverse_once(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"hello\r\n")
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = conn.recv(100)
            if not chunk:
                break
            data += chunk
        return data


def await_message(manager: socket.socket, messages: List[str], wanted: str, timeout: float = 10.0) -> None:
    """Receive notify datagrams into ``messages`` until one holds ``wanted``; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while not any(wanted in m.split("\n") for m in messages):
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted} within {timeout} s: {messages}"
        manager.settimeout(left)
        try:
            messages.append(manager.recv(4096).decode())
        except socket.timeout:
            pass


def serve_once(command: list, env: dict, cwd: str, notify: Path = None) -> str:
    """Run the unit's command until it serves, reverse a line through it, stop it with SIGTERM: its output.

    With ``notify`` (a path for the socket), play systemd's part: the service must say READY=1
    once it serves, ping the watchdog and say STOPPING=1 at SIGTERM.
    """
    manager = None
    if notify is not None:
        manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        manager.bind(str(notify))
        manager.settimeout(10)
        env = dict(env, NOTIFY_SOCKET=str(notify), WATCHDOG_USEC="200000")
    proc = subprocess.Popen(command, env=dict(env, REVERSE_PORT="0"), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    reader = LineReader(proc)
    try:
        if manager is not None:
            messages: List[str] = []
            await_message(manager, messages, "READY=1")
        port = int(reader.wait_for(r"starting on (\d+)").group(1))
        assert reverse_once(port) == b"olleh\r\n"
        if manager is not None:
            await_message(manager, messages, "WATCHDOG=1")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        output = reader.rest()
        proc.stdout.close()
    if manager is not None:
        manager.settimeout(0)
        try:
            while True:
                messages.append(manager.recv(4096).decode())
        except BlockingIOError:
            pass
        manager.close()
        assert any("STOPPING=1" in m for m in messages), messages
    assert code == 0, output
    return output


def assert_carried(root: Path, env: dict, cwd: str) -> None:
    """The system python imports twistdlite and its dependencies from the unpacked package."""
    result = subprocess.run([SYSTEM_PYTHON, "-c", "import twistdlite, click, daemon, lockfile\n"
                             "for m in (twistdlite, click, daemon, lockfile): print(m.__file__)"],
                            env=env, cwd=cwd, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert all(line.startswith(str(root)) for line in result.stdout.split()), result.stdout


@needs_python
@pytest.mark.parametrize("kind", ["deb", "rpm"])
def test_the_units_own_command_serves_the_unpacked_application_with_the_system_python(kind, request, tmp_path):
    if kind == "deb" and not (shutil.which("dpkg-deb") and shutil.which("dpkg-buildpackage")):
        pytest.skip("dpkg is not installed")
    if kind == "rpm" and not (shutil.which("rpmbuild") and shutil.which("rpm2cpio") and shutil.which("cpio")):
        pytest.skip("rpm/cpio are not installed")
    package = request.getfixturevalue("tac_deb" if kind == "deb" else "tac_rpm")
    name = "reverse-app"
    root = unpack(package, tmp_path / "root")
    state = tmp_path / "state"
    state.mkdir()
    command, env, cwd = exec_start(root, name, state)
    assert command[0] == SYSTEM_PYTHON
    assert_carried(root, env, cwd)
    output = serve_once(command, env, cwd, notify=tmp_path / "notify")  # Type=notify: as systemd would
    assert "application: Reverser" in output
    assert list(state.iterdir()) == []  # -o: nothing saved


@needs_python
@pytest.mark.parametrize("kind", ["deb", "rpm"])
def test_keep_state_restarts_from_the_last_shutdown_tap(kind, tap_packages, tmp_path):
    if kind not in tap_packages:
        pytest.skip(f"cannot build a .{kind} here")
    root = unpack(tap_packages[kind], tmp_path / "root")
    state = tmp_path / "state"
    state.mkdir()
    command, env, cwd = exec_start(root, "reverser-state", state)
    assert command[:2] == ["/bin/sh", "-c"] and "exec /usr/bin/python3 -m twistdlite" in command[2]
    assert f"-f {root}/usr/lib/reverser-state/app/Reverser-shutdown.tap" in command[2]
    serve_once(command, env, cwd)  # the first start: from the packaged .tap
    saved = state / "Reverser-shutdown.tap"
    assert saved.is_file()
    first = saved.stat().st_mtime_ns
    # Tell the second start from the first: the shell line runs the state's .tap when it exists.
    traced = subprocess.run(["/bin/sh", "-c", command[2].replace("exec ", "echo "), *command[3:]], env=env,
                            capture_output=True, text=True, timeout=10).stdout
    assert traced.strip().endswith(f"-f {saved}")
    serve_once(command, env, cwd)
    assert saved.stat().st_mtime_ns >= first


@needs_dpkg
@needs_python
def test_the_init_script_starts_checks_and_stops_the_daemon(tac_deb, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the init script runs as root")
    root = unpack(tac_deb, tmp_path / "root")
    script = (root / "etc/init.d/reverse-app").read_text()
    assert "### BEGIN INIT INFO" in script and "# Default-Start:     2 3 4 5" in script
    for old, new in [("/usr/lib/reverse-app", f"{root}/usr/lib/reverse-app"),
                     ("STATEDIR=/var/lib/reverse-app", f"STATEDIR={tmp_path}/state"),
                     ("RUNDIR=/run/reverse-app", f"RUNDIR={tmp_path}/run"),
                     ("LOGDIR=/var/log/reverse-app", f"LOGDIR={tmp_path}/log"),
                     ("DAEMON_USER=reverse-app", "DAEMON_USER=root")]:
        assert old in script, old
        script = script.replace(old, new)
    init = tmp_path / "init"
    init.write_text(script)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "REVERSE_PORT": "0", "LC_ALL": "C.UTF-8"}

    def service(action: str) -> subprocess.CompletedProcess:
        return subprocess.run(["/bin/sh", str(init), action], env=env, capture_output=True, text=True, timeout=30)

    assert service("status").returncode == 3
    started = service("start")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        port = int(wait_for_file_text(tmp_path / "log" / "reverse-app.log", r"starting on (\d+)").group(1))
        assert reverse_once(port) == b"olleh\r\n"
        assert service("status").returncode == 0
    finally:
        stopped = service("stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert service("status").returncode == 3
    assert not (tmp_path / "run" / "reverse-app.pid").exists()


# -- maintainer scripts --------------------------------------------------------------------------

FAKES = {"runlevel": 1, "getent": "${GETENT_RC:-2}"}
FAKED = ["systemd-sysusers", "adduser", "deluser", "delgroup", "useradd", "userdel", "groupadd", "groupdel",
         "update-rc.d", "deb-systemd-helper", "deb-systemd-invoke", "systemctl", "invoke-rc.d", "python3"]


def fake_bin(tmp_path: Path) -> Path:
    """Programs the scripts call, each logging its arguments to $CALLS."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name in FAKED + list(FAKES):
        (directory / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "$CALLS"\nexit {FAKES.get(name, 0)}\n')
        (directory / name).chmod(0o755)
    return directory


def run_script(text: str, args: List[str], tmp_path: Path, systemd: bool, **env: str) -> List[str]:
    """Run a maintainer script with fakes (systemd running or not); the calls it made."""
    running = tmp_path / "systemd-system"
    if systemd:
        running.mkdir(exist_ok=True)
    init_d = tmp_path / "init.d"
    init_d.mkdir(exist_ok=True)
    for name in ("reverse-app",):
        (init_d / name).write_text(f'#!/bin/sh\necho "init.d/{name} $*" >> "$CALLS"\n')
        (init_d / name).chmod(0o755)
    text = text.replace("/run/systemd/system", str(running) if systemd else str(tmp_path / "absent"))
    text = text.replace("/etc/init.d/", f"{init_d}/")
    script = tmp_path / "script"
    script.write_text(text)
    calls = tmp_path / "calls"
    calls.write_text("")
    bin_dir = tmp_path / "bin" if (tmp_path / "bin").is_dir() else fake_bin(tmp_path)
    result = subprocess.run(["/bin/sh", str(script), *args], capture_output=True, text=True, timeout=30,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls), **env})
    assert result.returncode == 0, result.stderr
    return calls.read_text().splitlines()


@needs_dpkg
def test_the_deb_scripts_do_what_dh_installsystemd_does_and_nothing_where_systemd_does_not_run(tac_deb, tmp_path):
    control = tmp_path / "control"
    tool("dpkg-deb", "-e", str(tac_deb), str(control))
    postinst, prerm, postrm = ((control / name).read_text() for name in ("postinst", "prerm", "postrm"))

    calls = run_script(postinst, ["configure"], tmp_path, systemd=False)
    assert "systemd-sysusers reverse-app.conf" in calls and "update-rc.d reverse-app defaults" in calls
    assert any(call.startswith("adduser --system --group") and call.endswith(" reverse-app") for call in calls)
    assert "deb-systemd-helper enable reverse-app.service" in calls
    assert not [c for c in calls if c.startswith(("systemctl", "deb-systemd-invoke", "invoke-rc.d"))], calls

    calls = run_script(postinst, ["configure"], tmp_path, systemd=True)
    assert "systemctl --system daemon-reload" in calls and "deb-systemd-invoke start reverse-app.service" in calls
    calls = run_script(postinst, ["configure", "0.9"], tmp_path, systemd=True)
    assert "deb-systemd-invoke restart reverse-app.service" in calls

    assert "init.d/reverse-app stop" in run_script(prerm, ["remove"], tmp_path, systemd=False)
    assert "deb-systemd-invoke stop reverse-app.service" in run_script(prerm, ["remove"], tmp_path, systemd=True)
    assert not run_script(prerm, ["upgrade", "1.1"], tmp_path, systemd=True)

    calls = run_script(postrm, ["remove"], tmp_path, systemd=False)
    assert calls == ["deb-systemd-helper mask reverse-app.service"]
    calls = run_script(postrm, ["purge"], tmp_path, systemd=False, GETENT_RC="0")
    for call in ("update-rc.d reverse-app remove", "deb-systemd-helper purge reverse-app.service",
                 "deluser --system --quiet reverse-app", "delgroup --system --quiet reverse-app"):
        assert call in calls, (call, calls)
    assert "rm -rf \"/var/lib/$NAME\"" in postrm


@needs_rpm
def test_the_rpm_scriptlets_do_what_the_systemd_macros_do_and_nothing_where_systemd_does_not_run(tac_rpm,
                                                                                                  tmp_path):
    def scriptlet(tag: str) -> str:
        return tool("rpm", "-qp", "--qf", f"%{{{tag}}}", str(tac_rpm)).stdout

    pre, post, preun, postun = (scriptlet(tag) for tag in ("PREIN", "POSTIN", "PREUN", "POSTUN"))
    calls = run_script(pre, ["1"], tmp_path, systemd=False)
    assert "groupadd -r reverse-app" in calls and any(c.startswith("useradd -r -g reverse-app") for c in calls)
    for script, arg in ((post, "1"), (preun, "0"), (postun, "1")):
        assert not run_script(script, [arg], tmp_path, systemd=False), script
    assert "systemctl enable --now reverse-app.service" in run_script(post, ["1"], tmp_path, systemd=True)
    assert not [c for c in run_script(post, ["2"], tmp_path, systemd=True) if "enable" in c]
    assert "systemctl --no-reload disable --now reverse-app.service" in run_script(preun, ["0"], tmp_path, True)
    assert "systemctl try-restart reverse-app.service" in run_script(postun, ["1"], tmp_path, systemd=True)
    assert "userdel reverse-app" in run_script(postun, ["0"], tmp_path, systemd=False, GETENT_RC="0")


@needs_rpm
def test_the_spec_uses_the_systemd_macros_where_they_are_defined(tac_rpm, tmp_path):
    if shutil.which("rpmspec") is None:
        pytest.skip("rpmspec is not installed")
    srpm = tac_rpm.parent / "reverse-app-2.1-1.src.rpm"
    subprocess.run(f"rpm2cpio {shlex.quote(str(srpm))} | cpio -i --quiet reverse-app.spec", shell=True, cwd=tmp_path,
                   check=True, timeout=60)
    defines = []
    for macro in ("systemd_post", "systemd_preun", "systemd_postun_with_restart"):
        defines += ["--define", f"{macro}() MACRO_{macro} %{{?*}}"]
    parsed = tool("rpmspec", "-P", *defines, str(tmp_path / "reverse-app.spec")).stdout
    for macro in ("systemd_post", "systemd_preun", "systemd_postun_with_restart"):
        assert f"MACRO_{macro} reverse-app.service" in parsed
    assert "As %systemd_post does" not in parsed


# -- bad input -----------------------------------------------------------------------------------

def failing(kind: str, capsys, *args: str) -> tuple:
    code = tap2(kind, *args)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"tap2{kind}: error: "), err
    return code, err


@pytest.mark.parametrize("kind", ["deb", "rpm"])
def test_a_missing_application_file_is_one_line_exit_1_and_nothing_written(kind, capsys, tmp_path):
    code, err = failing(kind, capsys, "-t", str(tmp_path / "nope.tac"), "-m", MAINTAINER,
                        "-d" if kind == "deb" else "--rpmfile", str(tmp_path / f"x.{kind}"))
    assert code == 1 and "does not exist" in err
    code, err = failing(kind, capsys, "-t", str(tmp_path), "-y", "python", "-m", MAINTAINER, "-p", "x1")
    assert code == 1 and "not a readable file" in err
    code, err = failing(kind, capsys, "-t", str(TAC), "-m", MAINTAINER, "--include", str(tmp_path / "gone.py"),
                        "-d" if kind == "deb" else "--rpmfile", str(tmp_path / f"x.{kind}"))
    assert code == 1 and "--include" in err and "no such file" in err
    assert list(tmp_path.iterdir()) == []


def test_the_application_file_is_twistd_tap_by_default(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = failing("rpm", capsys)
    assert code == 1 and "application file 'twistd.tap' does not exist" in err
    code, err = failing("deb", capsys, "-m", MAINTAINER)
    assert code == 1 and "application file 'twistd.tap' does not exist" in err
    assert list(tmp_path.iterdir()) == []


def test_a_tac_without_application_is_one_line_exit_1(capsys, tmp_path):
    tac = tmp_path / "empty.tac"
    tac.write_text("x = 1\n")
    code, err = failing("deb", capsys, "-t", str(tac), "-m", MAINTAINER, "-d", str(tmp_path / "x.deb"))
    assert code == 1 and "does not define 'application'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.tac"]


@pytest.mark.parametrize("maintainer", [None, "Jane Doe", "Jane <not-an-email>", "<jane@example.org>"])
def test_the_deb_needs_a_maintainer_with_an_email(maintainer, capsys):
    args = ["-t", str(TAC)] + (["-m", maintainer] if maintainer is not None else [])
    code, err = failing("deb", capsys, *args)
    assert code == 2 and "Full Name <user@example.org>" in err


@pytest.mark.parametrize("args, says", [
    (["-V", "v1"], "a digit first"), (["-V", "1.0-2"], "a digit first"),
    (["-p", "Bad_Name"], "lower-case letters, digits and '-'"), (["-p", "a"], "2 to 32 characters"),
    (["--watchdog", "0"], "greater than 0"), (["-y", "perl"], "'perl' is not one of"),
    (["-y", "source"], "AOT (.tas) files are not supported"),
])
def test_invalid_options_say_what_is_valid_exit_2(args, says, capsys):
    code, err = failing("rpm", capsys, "-t", str(TAC), *args)
    assert code == 2 and says in err, err


def test_a_file_name_that_makes_no_package_name_asks_for_p(capsys, tmp_path):
    tac = tmp_path / "123.tac"
    tac.write_text("")
    code, err = failing("deb", capsys, "-t", str(tac), "-m", MAINTAINER)
    assert code == 2 and "give one with -p" in err


@pytest.mark.parametrize("kind", ["deb", "rpm"])
def test_an_output_directory_that_is_missing_is_one_line_exit_1(kind, capsys, tmp_path):
    flag = "-d" if kind == "deb" else "--rpmfile"
    code, err = failing(kind, capsys, "-t", str(TAC), "-m", MAINTAINER, flag, str(tmp_path / "no" / "x.pkg"))
    assert code == 1 and "does not exist" in err


# Root reads and writes anywhere: what a user may not read or write is tried as nobody, for real.

@pytest.fixture
def as_nobody():
    """Run ``tap2deb``/``tap2rpm ARGS`` as nobody (no supplementary groups, no capabilities)."""
    from daemon_helpers import NOBODY, _user_kwargs, launch_env, unprivileged_python

    python, why = unprivileged_python()
    if python is None:
        pytest.skip(f"cannot run a command as nobody: {why}")

    def run(kind: str, *args: str) -> subprocess.CompletedProcess:
        main = f"from twistdlite.packaging.cli import {kind}_main; {kind}_main()"
        return subprocess.run([python, "-c", main, *args], cwd="/", env=launch_env(python), capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL, **_user_kwargs(NOBODY))

    return run


@pytest.fixture
def dirs():
    """``(a root-owned directory nobody may read but not write, one nobody owns)``, removed after."""
    from daemon_helpers import nobody_dir, public_dir

    made = (public_dir("tap2pkg-root-"), nobody_dir("tap2pkg-nobody-"))
    yield made
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def one_line_error(result: subprocess.CompletedProcess, kind: str) -> str:
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"tap2{kind}: error: "), result.stderr
    assert result.stdout == ""
    return result.stderr


@pytest.mark.parametrize("kind", ["deb", "rpm"])
def test_an_output_directory_nobody_may_write_to_is_one_line_exit_1_as_nobody(kind, as_nobody, dirs):
    readonly, _ = dirs
    flag = "-d" if kind == "deb" else "--rpmfile"
    err = one_line_error(as_nobody(kind, "-t", str(TAC), "-m", MAINTAINER, flag, str(readonly / "x.pkg")), kind)
    assert f"output directory '{readonly}' is not writable" in err
    assert list(readonly.iterdir()) == []


@pytest.mark.parametrize("kind", ["deb", "rpm"])
def test_an_application_file_or_module_nobody_may_read_is_one_line_exit_1_as_nobody(kind, as_nobody, dirs):
    private, out = dirs
    flag = "-d" if kind == "deb" else "--rpmfile"
    secret = private / "secret.tac"
    secret.write_text((EXAMPLES / "reverse_app.tac").read_text())
    secret.chmod(0o600)
    err = one_line_error(as_nobody(kind, "-t", str(secret), "-m", MAINTAINER, flag, str(out / "x.pkg")), kind)
    assert f"application file '{secret}' is not a readable file" in err
    # A readable application whose directory holds a module nobody may read (it would travel with it).
    app = private / "app.tac"
    app.write_text("from twistdlite import service\napplication = service.Application('app')\n")
    app.chmod(0o644)
    (private / "helper.py").write_text("SECRET = 1\n")
    (private / "helper.py").chmod(0o600)
    err = one_line_error(as_nobody(kind, "-t", str(app), "-m", MAINTAINER, flag, str(out / "x.pkg")), kind)
    assert f"cannot read '{private / 'helper.py'}', which the package would carry" in err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("kind, program, package", [("deb", "dpkg-deb", "dpkg"),
                                                    ("deb", "dpkg-buildpackage", "dpkg-dev"),
                                                    ("rpm", "rpmbuild", "rpm")])
def test_a_missing_build_tool_says_what_to_install_exit_1(kind, program, package, capsys, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("dpkg-deb", "dpkg-buildpackage", "make", "rpmbuild"):
        if name != program:
            (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
            (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    out = tmp_path / "out"
    out.mkdir()
    flag = "-d" if kind == "deb" else "--rpmfile"
    code, err = failing(kind, capsys, "-t", str(TAC), "-m", MAINTAINER, flag, str(out / f"x.{kind}"))
    assert code == 1
    assert f"{program} is not installed: install the {package} package (apt-get install {package}" in err
    assert list(out.iterdir()) == []


@needs_dpkg
def test_a_failing_build_leaves_no_half_written_package(capsys, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dpkg-buildpackage").write_text("#!/bin/sh\necho 'dpkg-source: error: disk full' >&2\nexit 2\n")
    (bin_dir / "dpkg-buildpackage").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    out = tmp_path / "out"
    out.mkdir()
    code, err = failing("deb", capsys, "-t", str(TAC), "-m", MAINTAINER, "-d", str(out / "x.deb"))
    assert code == 1 and "dpkg-buildpackage failed: dpkg-source: error: disk full" in err
    assert list(out.iterdir()) == []


def test_an_application_on_twistdlite_web_depends_on_the_distributions_httptools():
    pytest.importorskip("httptools")
    from twistdlite.packaging import debian, rpm

    params = dict(tapfile=str(EXAMPLES / "web_service.tac"), app_type=None, protocol=None, maintainer=MAINTAINER,
                  description=None, long_description=None, version="1.0", includes=(), privileged=False,
                  watchdog=None, keep_state=False, quiet=True)
    prepared = build.Prepared(cli.make_request("deb", params))
    assert prepared.system_packages == ["python3-httptools"]
    assert "Depends: python3 (>= 3.9), adduser, python3-httptools\n" in debian.control(prepared)
    assert "Requires:       python3-httptools\n" in rpm.spec(prepared)
    reverser = build.Prepared(cli.make_request("deb", dict(params, tapfile=str(TAC))))
    assert reverser.system_packages == [] and "@REQUIRES@" not in rpm.spec(reverser)


def test_names_and_types_are_guessed_from_the_application_file():
    assert model.default_name("reverse_app") == "reverse-app"
    assert model.default_name("Reverser-shutdown") == "reverser-shutdown"
    assert model.default_name("123") is None
    assert application.guess_type("x.tac", None) == "python"
    assert application.guess_type("x.tap", None) == "tap"
    assert application.guess_type("x.tap", "python") == "python"
    assert model.parse_maintainer(" Jane Q. Doe <jane@example.org> ") == ("Jane Q. Doe", "jane@example.org")


def test_the_console_scripts_are_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'tap2deb = "twistdlite.packaging.cli:deb_main"' in text
    assert 'tap2rpm = "twistdlite.packaging.cli:rpm_main"' in text


def test_every_template_ships_in_the_wheel_by_the_package_data_patterns():
    tomllib = pytest.importorskip("tomllib")
    import fnmatch

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["twistdlite.packaging"]
    base = ROOT / "twistdlite" / "packaging"
    templates = [p.relative_to(base).as_posix() for p in (base / "templates").rglob("*") if p.is_file()]
    assert len(templates) >= 6
    unshipped = [t for t in templates if not any(fnmatch.fnmatch(t, pattern) and t.count("/") == pattern.count("/")
                                                 for pattern in patterns)]
    assert not unshipped, f"not in [tool.setuptools.package-data]: {unshipped}"
