"""The command line: parsing twistd's options, and every bad input as the user sees it.

In-process tests parse with the click command itself and run ``cli.run_cli``;
end-to-end tests run ``python -m twistdlite`` in a subprocess on 127.0.0.1.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import twistdlite
from support import (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_NET_BIND_SERVICE, EXAMPLES, ROOT, TWISTDLITE,
                     LineReader, drop_capabilities, env, listening_port, run, spawn, stop_process, wait_exit)
from twistdlite.launch import cli
from twistdlite.launch.errors import NotAvailable
from twistdlite.launch.options import Options

SELFSTOP = ROOT / "tests" / "tacs" / "spine_selfstop.tac"
ECHO = EXAMPLES / "echo.tac"


def parse(*args: str) -> Options:
    """The Options the command line ``args`` gives (without running anything)."""
    ctx = cli.cli.make_context("twistdlite", list(args))
    return cli.make_options(ctx.params)


def usage_error(capsys, *args: str) -> str:
    """Run the CLI in-process, expect exit status 2 and one line on stderr; return it."""
    assert cli.run_cli(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("twistdlite: error: "), err
    return err.strip()


# -- parsing --------------------------------------------------------------------------------------------

def test_defaults():
    options = parse()
    assert options.python is None and options.file is None and options.tap_file == "twistd.tap"
    assert options.pidfile == "twistd.pid" and options.rundir == "."
    assert options.reactor == "asyncio" and options.profiler == "cprofile"
    assert options.daemonize and options.effective_umask == 0o077
    assert not (options.nodaemon or options.no_save or options.debug or options.spew or options.savestats)
    assert (options.uid, options.gid, options.umask, options.logfile, options.chroot) == (None,) * 5


def test_every_twistd_option_parses_in_its_long_form(tmp_path):
    options = parse(
        "--nodaemon", "--no_save", "--python", "app.tac", "--logfile", "app.log", "--pidfile", "app.pid",
        "--rundir", str(tmp_path), "--chroot", "/", "--uid", "0", "--gid", "0", "--euid", "--umask", "027",
        "--reactor", "uvloop", "--prefix", "myapp", "--profile", "prof.out", "--profiler", "profile",
        "--savestats", "--debug", "--spew", "--originalname",
    )
    assert options.nodaemon and options.no_save and options.python == "app.tac"
    assert (options.logfile, options.pidfile, options.rundir, options.chroot) == ("app.log", "app.pid", str(tmp_path), "/")
    assert (options.uid, options.gid, options.euid, options.umask) == (0, 0, True, 0o27)
    assert (options.reactor, options.prefix) == ("uvloop", "myapp")
    assert (options.profile, options.profiler, options.savestats) == ("prof.out", "profile", True)
    assert options.debug and options.spew and options.originalname
    assert parse("--file", "app.tap").file == "app.tap"
    assert parse("--no-save").no_save


def test_every_short_option_parses():
    options = parse("-n", "-o", "-y", "a.tac", "-l", "-", "-d", "/", "-u", "0", "-g", "0", "--euid",
                    "-r", "asyncio", "-p", "p.out", "-b")
    assert options.nodaemon and options.no_save and options.python == "a.tac" and options.logfile == "-"
    assert (options.rundir, options.uid, options.gid, options.euid, options.reactor) == ("/", 0, 0, True, "asyncio")
    assert options.profile == "p.out" and options.debug
    assert parse("-f", "a.tap").file == "a.tap"


def test_short_flags_mean_what_they_mean_to_twistd():
    """-e is twistd's --encrypted (refused), not --euid, which has no short form in twistd."""
    short = {opt: param.name for param in cli.cli.params for opt in param.opts if len(opt) == 2}
    assert {key: short[key] for key in "-n -o -y -f -s -l -d -u -g -e -r -p -b".split()} == {
        "-n": "nodaemon", "-o": "no_save", "-y": "python", "-f": "file", "-s": "source", "-l": "logfile",
        "-d": "rundir", "-u": "uid", "-g": "gid", "-e": "encrypted", "-r": "reactor", "-p": "profile",
        "-b": "debug"}


def test_combined_short_flags():
    options = parse("-noy", "app.tac")
    assert options.nodaemon and options.no_save and options.python == "app.tac"
    assert parse("-noyapp.tac").python == "app.tac"
    assert parse("-ny", "app.tac").no_save is False
    options = parse("-bo")
    assert options.debug and options.no_save


@pytest.mark.parametrize("bundled, separate", [
    (["-noy", "app.tac"], ["-n", "-o", "-y", "app.tac"]),
    (["-nol-", "-y", "a.tac"], ["-n", "-o", "-l", "-", "-y", "a.tac"]),
    (["-l", "-noy", "-y", "a.tac"], ["--logfile", "-noy", "--python", "a.tac"]),  # a value stays a value
    (["--pidfile", "-n", "-oy", "a.tac"], ["--pidfile=-n", "-o", "-y", "a.tac"]),
    (["-nr", "uvloop", "-u0", "-g", "0", "-y", "a.tac"], ["-n", "-r", "uvloop", "-u", "0", "-g", "0", "-y", "a.tac"]),
])
def test_short_options_are_read_alike_bundled_or_not(bundled, separate):
    assert vars_of(parse(*bundled)) == vars_of(parse(*separate))


def vars_of(options: Options) -> dict:
    return {name: getattr(options, name) for name in Options.__slots__}


def test_short_options_are_spelled_out_up_to_the_first_argument_not_an_option_of_ours():
    params = cli.cli.get_params(cli.cli.make_context("twistdlite", []))
    spell = lambda *args: cli.spell_out_short_options(params, list(args))  # noqa: E731
    assert spell("-noy", "app.tac") == ["--nodaemon", "--no_save", "--python", "app.tac"]
    assert spell("-n", "web", "-noy") == ["--nodaemon", "web", "-noy"]  # a plugin's arguments are its own
    assert spell("-no", "--", "-y") == ["--nodaemon", "--no_save", "--", "-y"]
    # What click would refuse is passed on as typed, so its message names what the user wrote.
    assert spell("-nZ") == ["-nZ"] and spell("-ny") == ["-ny"] and spell("-y=a.tac") == ["-y=a.tac"]


def test_bundled_short_options_keep_their_errors(capsys):
    assert usage_error(capsys, "-ny") == "twistdlite: error: Option '-y' requires an argument."
    assert usage_error(capsys, "-nZ") == "twistdlite: error: No such option '-Z'."


def test_options_the_later_issues_build_parse_too():
    ctx = cli.cli.make_context("twistdlite", [
        "--syslog", "--logger", "pkg.mod.factory", "--tap-key", "key.bin", "--allow-unsafe-tap",
        "--log-rotate-length", "0", "--log-max-rotated", "3", "--start-timeout", "5", "--shutdown-timeout", "7"])
    params = ctx.params
    assert params["syslog"] and params["logger"] == "pkg.mod.factory"
    assert params["tap_key"] == "key.bin" and params["allow_unsafe_tap"]
    assert (params["log_rotate_length"], params["log_max_rotated"]) == (0, 3)
    assert (params["start_timeout"], params["shutdown_timeout"]) == (5.0, 7.0)


def test_debug_implies_nodaemon():
    options = parse("-b")
    assert options.nodaemon and not options.daemonize and options.effective_umask is None


def test_umask_is_octal_and_applies_with_n_only_when_given():
    assert parse("--umask", "022").effective_umask == 0o22
    assert parse("-n", "--umask", "0").effective_umask == 0
    assert parse("-n").effective_umask is None


def test_an_empty_pidfile_means_none():
    assert parse("--pidfile", "").pidfile == ""


def test_uid_and_gid_take_names_or_numbers():
    import grp
    import pwd

    root_group = grp.getgrgid(0).gr_name
    options = parse("-u", "nobody", "-g", root_group)
    assert (options.uid, options.gid) == (pwd.getpwnam("nobody").pw_uid, 0)
    assert parse("-u", "1234").uid == 1234 and parse("-g", "4321").gid == 4321


# -- information ----------------------------------------------------------------------------------------

def test_version():
    result = CliRunner().invoke(cli.cli, ["--version"])
    assert result.exit_code == 0 and result.output == f"twistdlite {twistdlite.__version__}\n"
    proc = run(["--version"])
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"twistdlite {twistdlite.__version__}\n", "")


def test_help_lists_every_option():
    result = CliRunner().invoke(cli.cli, ["--help"])
    assert result.exit_code == 0
    for param in cli.cli.params:
        for opt in param.opts + param.secondary_opts:
            assert re.search(rf"(^|[\s,/]){re.escape(opt)}([\s,=]|$)", result.output, re.M), opt
    assert CliRunner().invoke(cli.cli, ["-h"]).output == result.output
    assert "stop" in result.output and "status" in result.output


def test_the_console_script_and_python_m_are_the_same_command():
    script = Path(sys.executable).with_name("twistdlite")
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable} (package not installed in this environment)")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout) == (0, f"twistdlite {twistdlite.__version__}\n")
    bad = subprocess.run([str(script), "--bogus"], capture_output=True, text=True, timeout=30)
    assert (bad.returncode, bad.stderr) == (2, "twistdlite: error: No such option '--bogus'.\n")


def test_help_imports_nothing_heavy():
    script = ("import sys\nfrom twistdlite.launch.cli import run_cli\ncode = run_cli(['--help'])\n"
              "heavy = sorted(m for m in ('asyncio', 'daemon', 'lockfile', 'uvloop', 'pdb', 'cProfile')"
              " if m in sys.modules)\nprint(code, heavy)\n")
    result = subprocess.run([sys.executable, "-c", script], env=env(), capture_output=True, text=True, timeout=30)
    assert result.stdout.splitlines()[-1] == "0 []", result.stdout + result.stderr


#: What only plugin discovery imports: the launcher's plugin module, the plugins, importlib.metadata.
PLUGIN_MACHINERY = "('twistdlite.launch.plugins', 'twistdlite.plugins', 'importlib.metadata')"


def test_the_api_and_a_tac_run_never_look_for_plugins(tmp_path):
    script = ("import sys\nimport twistdlite.service, twistdlite.internet, twistdlite.strports, twistdlite.reactor\n"
              f"print(sorted(m for m in sys.modules if m.startswith({PLUGIN_MACHINERY})))\n")
    result = subprocess.run([sys.executable, "-c", script], env=env(), capture_output=True, text=True, timeout=30)
    assert result.stdout == "[]\n", result.stdout + result.stderr
    tac = tmp_path / "lazy.tac"
    tac.write_text("import sys\nfrom twistdlite import reactor, service\n\n"
                   "def check():\n"
                   f"    found = sorted(m for m in sys.modules if m.startswith({PLUGIN_MACHINERY}))\n"
                   "    print('plugin machinery:', found, flush=True)\n"
                   "    reactor.stop()\n\n"
                   "reactor.callWhenRunning(check)\napplication = service.Application('lazy')\n")
    result = run(["-noy", str(tac), "--pidfile", ""], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "plugin machinery: []\n" in result.stdout, result.stdout


def test_a_tac_that_turns_the_collector_off_or_freezes_its_objects_keeps_it_so(tmp_path):
    # The CLI defers collections during start-up; its end must not undo what the .tac asked for (as twistd).
    tac = tmp_path / "gcoff.tac"
    tac.write_text("import gc, os, signal\nfrom twistdlite import service\n"
                   "gc.disable()\nkept = [object() for _ in range(100)]\ngc.freeze()\n"
                   "class Check(service.Service):\n"
                   "    def startService(self):\n"
                   "        print('collector on:', gc.isenabled(), 'frozen:', gc.get_freeze_count() > 0,\n"
                   "              'thresholds:', gc.get_threshold()[0] > 0, flush=True)\n"
                   "        os.kill(os.getpid(), signal.SIGTERM)\n"
                   "application = service.Application('gcoff')\n"
                   "Check().setServiceParent(application)\n")
    result = run(["-noy", str(tac)], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "collector on: False frozen: True thresholds: True\n" in result.stdout


#: What a plain ``-noy`` run of a TCP/UDP .tac does not need, so must not import (each costs start-up time):
#: difflib (click's suggestions for an unknown option), the .tap code (-o), the stack dumper, the user and
#: group databases, ClientService, the daemon code, the registry of what a confined run imports first, and
#: the logging API beyond the launcher's line format (observers, Twisted's Logger: twistdlite._loglines serves).
NOT_FOR_NOY = ("difflib", "twistdlite.launch.persist", "twistdlite.launch.stacks", "pwd", "grp",
               "twistdlite._clientservice", "twistdlite.launch.daemon", "daemon", "lockfile",
               "twistdlite.launch.preload", "twistdlite.logger", "twistdlite._logevents")


def test_a_noy_run_imports_only_what_it_needs_and_serves_with_the_collector_on(tmp_path):
    # (The CLI defers cyclic garbage collection during start-up; the services must start with it back on.)
    # Stopping ports under a MultiService needs no Deferred either, nor (no trigger added) the system events:
    # the stop imports neither module (0.8 ms for the first).
    tac = tmp_path / "lean.tac"
    tac.write_text("import atexit, gc, sys\nfrom twistdlite import internet, service\n"
                   "from twistdlite.protocol import DatagramProtocol, Factory, Protocol\n\n"
                   "class Check(service.Service):\n"
                   "    def startService(self):\n"
                   "        print('collector on:', gc.isenabled())\n"
                   "        print('frozen for good:', gc.get_freeze_count(), 'largest young scan:', max(scans or [0]) < 5000)\n"
                   f"        print('needless:', sorted(m for m in {NOT_FOR_NOY!r} if m in sys.modules), flush=True)\n\n"
                   "scans = []  # the size of each collection's generations 0 and 1 once the collector is back on\n"
                   "gc.callbacks.append(lambda phase, info: phase == 'start' and gc.isenabled() and scans.append("
                   "sum(len(gc.get_objects(generation)) for generation in range(info['generation'] + 1))))\n"
                   "atexit.register(lambda: print('stopped with:', [m for m in ('twistdlite.defer', 'twistdlite._events')"
                   " if m in sys.modules]))\n"
                   "application = service.Application('lean')\n"
                   "ports = service.MultiService()\n"
                   "ports.setServiceParent(application)\n"
                   "internet.TCPServer(0, Factory.forProtocol(Protocol), interface='127.0.0.1')"
                   ".setServiceParent(ports)\n"
                   "internet.UDPServer(0, DatagramProtocol(), interface='127.0.0.1').setServiceParent(ports)\n"
                   "Check().setServiceParent(application)\n")
    proc = spawn(["-noy", str(tac)], cwd=tmp_path)
    try:
        out = LineReader(proc)
        found = out.wait_for(r"needless: (.*)\n")
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0, out.rest()
        rest = out.rest()
    finally:
        stop_process(proc)
        proc.stdout.close()
    assert found.group(1) == "[]"
    assert "collector on: True\n" in rest
    # start-up's objects went to the oldest generation (no young collection scans them all: ~20,000 objects),
    # and none stays frozen (the start-up's garbage is freed by the next full collection)
    assert "frozen for good: 0 largest young scan: True\n" in rest
    assert "(TCP Port" in rest and "(UDP Port" in rest and "stopped with: []\n" in rest


# -- usage errors: exit status 2, one line ----------------------------------------------------------------

def test_unknown_option(capsys):
    assert usage_error(capsys, "--bogus") == "twistdlite: error: No such option '--bogus'."
    assert "No such option" in usage_error(capsys, "-Z")


def test_y_and_f_together(capsys):
    assert usage_error(capsys, "-y", "a.tac", "-f", "a.tap") == \
        "twistdlite: error: -y/--python and -f/--file cannot be used together"
    assert "cannot be used together" in usage_error(capsys, "-noy", "a.tac", "--file=b.tap")


@pytest.mark.parametrize("args, flag", [(["-noy", ""], "-y/--python"), (["-n", "-f", ""], "-f/--file"),
                                        (["--python="], "-y/--python")])
def test_an_empty_file_name_is_a_usage_error(capsys, args, flag):
    assert usage_error(capsys, *args) == f"twistdlite: error: {flag} needs a file name, not an empty string"


@pytest.mark.parametrize("args, fragment", [
    (["--umask", "abc"], "invalid value for '--umask': invalid umask 'abc'"),
    (["--umask", "999"], "invalid value for '--umask': invalid umask '999'"),
    (["--umask", "1777"], "invalid value for '--umask'"),
    (["--profiler", "yappi"], "invalid value for '--profiler'"),
    (["--start-timeout", "0"], "invalid value for '--start-timeout': must be greater than 0"),
    (["--shutdown-timeout", "soon"], "invalid value for '--shutdown-timeout'"),
    (["--log-rotate-length", "-1"], "invalid value for '--log-rotate-length'"),
    (["-u", "99999999999999999999", "-noy", "a.tac"], "-u/--uid 99999999999999999999: user and group ids go up to"),
    (["-g", "4294967295", "-noy", "a.tac"], "-g/--gid 4294967295: user and group ids go up to 4294967294"),
    (["-y"], "Option '-y' requires an argument."),
    (["--nodaemon=yes"], "Option '--nodaemon' does not take a value."),
    (["-s", "app.tas"], "-s/--source: Twisted's AOT (.tas) files are not supported"),
    (["-e", "-f", "app.tap"], "-e/--encrypted: Twisted's encrypted .tap files are not supported"),
    (["--encrypted"], "-e/--encrypted: Twisted's encrypted .tap files are not supported"),
    (["app.tac"], "No such command 'app.tac'; to run an application file, use -y app.tac"),
    (["-n", "saved.tap"], "No such command 'saved.tap'; to run an application file, use -f saved.tap"),
    (["frobnicate"], "No such command 'frobnicate'."),
])
def test_malformed_values_are_usage_errors(capsys, args, fragment):
    assert fragment in usage_error(capsys, *args)


@pytest.mark.parametrize("option", ["--start-timeout", "--shutdown-timeout"])
@pytest.mark.parametrize("value, why", [
    ("inf", "must be a finite number of seconds, not inf"), ("nan", "must be a finite number of seconds, not nan"),
    ("-inf", "must be a finite number of seconds"), ("1e400", "must be a finite number of seconds"),
    ("1e12", "must be at most 86400 seconds (one day), not 1e+12"), ("86400.5", "must be at most 86400"),
    ("-2", "must be greater than 0, not -2"), ("0", "must be greater than 0")])
def test_durations_must_be_finite_positive_and_at_most_a_day(capsys, option, value, why):
    """Infinite, NaN, negative and absurd durations are usage errors naming the option, before anything runs."""
    assert usage_error(capsys, option, value, "-noy", "app.tac").startswith(
        f"twistdlite: error: invalid value for '{option}': {why}")


def test_the_longest_duration_is_accepted():
    options = parse("--start-timeout", "86400", "--shutdown-timeout", "0.001", "-noy", "a.tac")
    assert (options.start_timeout, options.shutdown_timeout) == (86400.0, 0.001)


def test_usage_errors_end_to_end(tmp_path):
    for args, message in [
        (["--bogus", "-ny", "x.tac"], "twistdlite: error: No such option '--bogus'.\n"),
        (["-y", "x.tac", "-f", "x.tap"], "twistdlite: error: -y/--python and -f/--file cannot be used together\n"),
        (["-n", "--umask", "abc"], "twistdlite: error: invalid value for '--umask': invalid umask 'abc': "
                                   "expected an octal number such as 022\n"),
    ]:
        result = run(args, cwd=tmp_path)
        assert (result.returncode, result.stderr, result.stdout) == (2, message, ""), args
    assert list(tmp_path.iterdir()) == []


# -- well-formed failures: exit status 1, one line --------------------------------------------------------

def test_unknown_user_and_group(capsys):
    assert cli.run_cli(["-u", "no-such-user-here", "-ny", "x.tac"]) == 1
    assert capsys.readouterr().err == "twistdlite: error: unknown user: no-such-user-here\n"
    assert cli.run_cli(["-g", "no-such-group-here", "-ny", "x.tac"]) == 1
    assert capsys.readouterr().err == "twistdlite: error: unknown group: no-such-group-here\n"


def test_not_available_options_say_so(capsys, monkeypatch):
    """The mechanism: an option that parses but is not built yet is refused, never ignored.

    The options once refused this way are all built now: each reaches the Options it sets.
    """
    base = cli.cli.make_context("twistdlite", []).params
    for flag, name, value in [("--syslog", "syslog", True), ("--logger", "logger", "a.b"),
                              ("--tap-key", "tap_key", "k"), ("--allow-unsafe-tap", "allow_unsafe_tap", True)]:
        options = cli.make_options({**base, name: value})  # NotAvailable here fails the test
        assert getattr(options, name) == value, flag

    def not_built(params, source=None, **keywords):
        raise NotAvailable("--frobnicate is not available yet in twistdlite 0.1.0")

    monkeypatch.setattr(cli, "make_options", not_built)
    assert cli.run_cli(["-ny", "x.tac"]) == 1
    assert capsys.readouterr().err == "twistdlite: error: --frobnicate is not available yet in twistdlite 0.1.0\n"


def assert_failed(result, pattern: str, cwd: Path) -> None:
    """Exit status 1, exactly one stderr line matching ``pattern``, no traceback, no pidfile."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert re.fullmatch("twistdlite: error: " + pattern + "\n", result.stderr), result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert not (cwd / "twistd.pid").exists()


def test_unknown_reactor(tmp_path):
    result = run(["-r", "tornado", "-noy", str(SELFSTOP)], cwd=tmp_path)
    assert_failed(result, r"unknown reactor 'tornado'; available: asyncio, uvloop \(see --help-reactors\)", tmp_path)
    assert "loaded" not in result.stdout


def test_a_port_already_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run(["-noy", str(ECHO)], cwd=tmp_path, ECHO_PORT=str(port))
    assert_failed(result, rf"(.*: )?Couldn't listen on 127\.0\.0\.1:{port}: Address already in use\b.*", tmp_path)
    assert not list(tmp_path.glob("*.tap"))


def run_without(caps: tuple, args: list, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    """Run twistdlite as this user, without the given capabilities (a no-op when not root)."""
    preexec = drop_capabilities(*caps) if os.geteuid() == 0 else None
    try:
        return subprocess.run([*TWISTDLITE, *args], cwd=cwd, env=env(**extra), capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL, preexec_fn=preexec)
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot drop capabilities here: {exc}")


def _privileged_port_needs_privileges() -> bool:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as handle:
            return int(handle.read()) > 80
    except (OSError, ValueError):
        return True


@pytest.mark.skipif(not _privileged_port_needs_privileges(), reason="this kernel lets anyone bind port 80")
def test_a_port_that_needs_privileges(tmp_path):
    # Port 80 without CAP_NET_BIND_SERVICE: as root, the child loses the capability; otherwise we never had it.
    result = run_without((CAP_NET_BIND_SERVICE,), ["-noy", str(ECHO)], tmp_path, ECHO_PORT="80")
    assert_failed(result, r"(.*: )?Couldn't listen on 127\.0\.0\.1:80: Permission denied\b.*", tmp_path)


def test_an_unwritable_pidfile_location(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = run_without((CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH),
                             ["-noy", str(SELFSTOP), "--pidfile", "locked/twistd.pid"], tmp_path)
    finally:
        locked.chmod(0o700)
    assert_failed(result, rf"cannot open pidfile {re.escape(str(tmp_path))}/locked/twistd\.pid: Permission denied",
                  tmp_path)
    assert list(locked.iterdir()) == []
    assert "loaded" in result.stdout  # the .tac was loaded first (nothing written before that)


@pytest.mark.parametrize("pidfile, message", [
    ("missing-dir/twistd.pid", r"cannot create pidfile {tmp}/missing-dir/twistd\.pid: directory does not exist"),
    ("adir", r"cannot open pidfile {tmp}/adir: Is a directory"),
])
def test_other_impossible_pidfiles(tmp_path, pidfile, message):
    (tmp_path / "adir").mkdir()
    result = run(["-noy", str(SELFSTOP), "--pidfile", pidfile], cwd=tmp_path)
    assert_failed(result, message.format(tmp=re.escape(str(tmp_path))), tmp_path)


def test_a_pidfile_held_by_a_live_twistdlite(tmp_path):
    first = spawn(["-noy", str(ECHO)], cwd=tmp_path, ECHO_PORT="0")
    try:
        out = LineReader(first)
        listening_port(out.wait_for(r"starting on \d+").group(0))
        pidfile = tmp_path / "twistd.pid"
        assert pidfile.read_text().strip() == str(first.pid)
        second = run(["-noy", str(ECHO)], cwd=tmp_path, ECHO_PORT="0")
        assert second.returncode == 1
        assert second.stderr == f"twistdlite: error: already running, PID {first.pid} (pidfile {pidfile})\n"
        assert "starting on" not in second.stdout
        assert pidfile.read_text().strip() == str(first.pid)  # untouched
        assert first.poll() is None
        first.send_signal(signal.SIGTERM)
        assert wait_exit(first) == 0
        assert not pidfile.exists()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)


@pytest.mark.parametrize("content, named", [("garbage\n", "garbage"), ("", None), ("999999999\n", "999999999")])
def test_a_stale_or_garbage_pidfile_is_replaced_and_logged(tmp_path, content, named):
    pidfile = tmp_path / "twistd.pid"
    pidfile.write_text(content)
    proc = spawn(["-noy", str(ECHO)], cwd=tmp_path, ECHO_PORT="0")
    try:
        out = LineReader(proc)
        out.wait_for(r"starting on \d+")
        assert pidfile.read_text() == f"{proc.pid}\n"
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0
        text = out.rest()
        if named is None:
            assert "stale" not in text.lower()  # an empty file is not worth a word
        else:
            assert re.search(rf"Removing stale pidfile {re.escape(str(pidfile))} \(it named PID {named}\)", text), text
        assert not pidfile.exists()
    finally:
        stop_process(proc)
