"""twistdlite.launch.logsetup: destinations, precedence, --logger, syslog, stdio capture (in-process)."""

from __future__ import annotations

import io
import logging
import os
import re
import socket
import sys
import textwrap
import warnings

import pytest

from twistdlite.launch import logsetup
from twistdlite.launch.errors import LoadError, StartError, UsageError
from twistdlite.launch.options import Options
from twistdlite.logfile import DailyLogFile, LogFile
from twistdlite.logger import ILogObserver, textFileLogObserver
from twistdlite.service import Application

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"


@pytest.fixture(autouse=True)
def clean_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stdout, stderr, showwarning = sys.stdout, sys.stderr, warnings.showwarning
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    sys.stdout, sys.stderr = stdout, stderr
    warnings.showwarning = showwarning
    logging.captureWarnings(False)


@pytest.fixture
def factories(tmp_path, monkeypatch):
    """A module of --logger factories, importable as ``logfactories``."""
    (tmp_path / "logfactories.py").write_text(textwrap.dedent(f"""
        import logging
        EVENTS = []
        not_callable = 42
        def observer():
            return EVENTS.append
        def handler():
            return logging.FileHandler({str(tmp_path / "custom.log")!r})
        def broken():
            raise ValueError("no observer today")
        def wrong():
            return 42
        class Holder:
            @staticmethod
            def make():
                return EVENTS.append
    """))
    (tmp_path / "raising_module.py").write_text("raise RuntimeError('module is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("logfactories", "raising_module"):
        sys.modules.pop(name, None)


def app_with_observer(observer=None) -> Application:
    application = Application("app")
    if observer is not None:
        application.setComponent(ILogObserver, observer)
    return application


@pytest.mark.parametrize("options, with_component, expected", [
    (Options(logger="m.f", syslog=True, logfile="x.log"), True, "logger"),
    (Options(syslog=True, logfile="x.log"), True, "component"),
    (Options(syslog=True, logfile="x.log"), False, "syslog"),
    (Options(logfile="x.log"), False, "file"),
    (Options(logfile="x.log", nodaemon=True), False, "file"),
    (Options(logfile="-"), False, "stdout"),
    (Options(nodaemon=True), False, "stdout"),
    (Options(debug=True), False, "stdout"),
    (Options(), False, "file"),
])
def test_destination_precedence_is_twistds(options, with_component, expected):
    application = app_with_observer((lambda event: None) if with_component else None)
    assert logsetup.destination(options, application) == expected


def test_log_path_for_each_destination(tmp_path):
    assert logsetup.log_path(Options()) == "twistd.log"
    assert logsetup.log_path(Options(logfile="my.log", nodaemon=True)) == "my.log"
    assert logsetup.log_path(Options(nodaemon=True)) is None
    assert logsetup.log_path(Options(syslog=True)) is None
    assert logsetup.log_path(Options(logger="m.f")) is None
    daily = DailyLogFile("d.log", str(tmp_path))
    assert logsetup.log_path(Options(), app_with_observer(textFileLogObserver(daily))) == str(tmp_path / "d.log")
    assert logsetup.log_path(Options(), app_with_observer(print)) is None
    daily.close()


@pytest.mark.parametrize("spec, message", [
    ("nosuchmodule_xyz.factory", "--logger 'nosuchmodule_xyz.factory': no module named 'nosuchmodule_xyz'"),
    ("logfactories.missing", "--logger 'logfactories.missing': logfactories has no attribute 'missing'"),
    ("logfactories.not_callable", "--logger 'logfactories.not_callable': a int is not callable"),
    ("nodots", "expected the dotted name of a callable"),
    ("bad..name", "expected the dotted name of a callable"),
])
def test_resolve_logger_usage_errors(factories, spec, message):
    with pytest.raises(UsageError) as info:
        logsetup.resolve_logger(spec)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_resolve_logger_a_module_that_fails_to_import_is_a_load_error(factories):
    with pytest.raises(LoadError) as info:
        logsetup.resolve_logger("raising_module.factory")
    assert "RuntimeError: module is broken" in str(info.value) and info.value.exit_code == 1
    assert "raising_module.py" in info.value.detail


def test_resolve_logger_finds_nested_attributes(factories):
    assert callable(logsetup.resolve_logger("logfactories.Holder.make"))


def test_check_refuses_a_missing_logger_before_anything_starts(factories):
    with pytest.raises(UsageError):
        logsetup.check(Options(logger="logfactories.nope"), app_with_observer())
    logsetup.check(Options(logger="logfactories.observer"), app_with_observer())
    logsetup.check(Options(), app_with_observer())


def test_file_destination_writes_twistd_lines_and_rotates_on_request(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    logs = logsetup.start_logging(Options(nodaemon=True, logfile="run.log", log_max_rotated=2), app_with_observer())
    try:
        logging.getLogger("svc").info("first")
        logs.rotate()
        logging.getLogger("svc").info("second")
        logs.reopen()
        logging.getLogger("svc").info("third")
    finally:
        logs.close()
    assert re.fullmatch(STAMP + r" \[svc\] first\n", (tmp_path / "run.log.1").read_text())
    assert (tmp_path / "run.log").read_text().count("\n") == 2


def test_file_destination_default_rotation_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    logs = logsetup.start_logging(Options(nodaemon=True, logfile="r.log", log_rotate_length=200,
                                          log_max_rotated=1))
    try:
        for number in range(20):
            logging.getLogger("svc").info("line %d with some padding text", number)
    finally:
        logs.close()
    assert sorted(os.listdir(tmp_path)) == ["r.log", "r.log.1"]
    assert os.path.getsize(tmp_path / "r.log.1") <= 200


def test_an_unopenable_log_file_is_a_clear_start_error(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(StartError) as info:
        logsetup.start_logging(Options(nodaemon=True, logfile=str(tmp_path / "afile" / "x.log")))
    assert str(info.value) == f"cannot open log file {tmp_path}/afile/x.log: Not a directory"
    os.symlink(tmp_path / "afile", tmp_path / "link.log")
    with pytest.raises(StartError, match="it is a symbolic link"):
        logsetup.start_logging(Options(nodaemon=True, logfile=str(tmp_path / "link.log")))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_log_directory_is_a_clear_start_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(StartError, match="cannot open log file .*/locked/x.log: Permission denied"):
        logsetup.start_logging(Options(nodaemon=True, logfile=str(locked / "x.log")))


def test_stdout_destination_survives_undecodable_text():
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    logs = logsetup.start_logging(Options(nodaemon=True), stream=stream)
    try:
        logging.getLogger("svc").info("bad \udcff byte")
    finally:
        logs.close()
    assert raw.getvalue().endswith(b"[svc] bad \\udcff byte\n")


def test_component_observer_is_used_and_rotated(tmp_path):
    log = LogFile("comp.log", str(tmp_path))
    application = app_with_observer(textFileLogObserver(log))
    logs = logsetup.start_logging(Options(logfile=str(tmp_path / "ignored.log"), nodaemon=True), application)
    try:
        logging.getLogger("svc").info("to the component")
        logs.rotate()
        logging.getLogger("svc").info("after rotation")
    finally:
        logs.close()
    assert not (tmp_path / "ignored.log").exists()
    assert (tmp_path / "comp.log.1").read_text().endswith("[svc] to the component\n")
    assert (tmp_path / "comp.log").read_text().endswith("[svc] after rotation\n")


def test_a_component_that_is_no_observer_is_a_start_error():
    with pytest.raises(StartError, match="ILogObserver component: int is not a log observer"):
        logsetup.start_logging(Options(nodaemon=True), app_with_observer(42))


def test_logger_factory_returning_an_observer_or_a_handler(factories, tmp_path):
    import logfactories

    logs = logsetup.start_logging(Options(nodaemon=True, logger="logfactories.observer"), app_with_observer(print))
    try:
        logging.getLogger("svc").info("to the callable")
        logs.rotate()  # nothing to rotate: no error
    finally:
        logs.close()
    assert [event["message"] for event in logfactories.EVENTS] == ["to the callable"]
    logs = logsetup.start_logging(Options(nodaemon=True, logger="logfactories.handler"))
    try:
        logging.getLogger("svc").info("to the handler")
        os.rename(tmp_path / "custom.log", tmp_path / "custom.log.old")
        logs.reopen()  # a plain FileHandler is reopened at its path
        logging.getLogger("svc").info("reopened")
    finally:
        logs.close()
    assert (tmp_path / "custom.log.old").read_text().endswith("[svc] to the handler\n")
    assert (tmp_path / "custom.log").read_text().endswith("[svc] reopened\n")


@pytest.mark.parametrize("spec, message", [
    ("logfactories.broken", "--logger 'logfactories.broken': the factory failed: ValueError: no observer today"),
    ("logfactories.wrong", "--logger 'logfactories.wrong' returned a int: int is not a log observer"),
])
def test_logger_factory_failures_are_start_errors(factories, spec, message):
    with pytest.raises(StartError) as info:
        logsetup.start_logging(Options(nodaemon=True, logger=spec))
    assert str(info.value).startswith(message)


def test_syslog_destination_sends_datagrams_with_prefix_and_pid(tmp_path, monkeypatch):
    address = str(tmp_path / "log.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(address)
    server.settimeout(5)
    monkeypatch.setenv(logsetup.SYSLOG_SOCKET_ENV, address)
    logs = logsetup.start_logging(Options(syslog=True, prefix="myd", logfile="ignored.log", nodaemon=True))
    try:
        logging.getLogger("svc").warning("to syslog \udcff")
        try:
            raise KeyError("k")
        except KeyError:
            logging.getLogger("svc").exception("failed")
        first, second = server.recv(65536), server.recv(65536)
    finally:
        logs.close()
        server.close()
    assert first == f"<12>myd[{os.getpid()}]: [svc] to syslog \\udcff\x00".encode()
    assert second.startswith(f"<11>myd[{os.getpid()}]: [svc] failed\n\tTraceback".encode())
    assert not os.path.exists("ignored.log")


def test_syslog_unreachable_is_a_start_error(tmp_path, monkeypatch):
    monkeypatch.setenv(logsetup.SYSLOG_SOCKET_ENV, str(tmp_path / "nothing.sock"))
    with pytest.raises(StartError, match=r"cannot log to syslog at .*nothing\.sock: No such file or directory"):
        logsetup.start_logging(Options(syslog=True, nodaemon=True))


def test_daemon_stdout_and_stderr_become_log_lines_and_are_given_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before_out, before_err = sys.stdout, sys.stderr
    logs = logsetup.start_logging(Options())  # daemonize: twistd.log, stdio captured
    try:
        print("printed", "words")
        sys.stdout.write("partial ")
        sys.stdout.write("line\nand a tail")
        sys.stderr.write("an error line\n")
        warnings.warn("watch out")
        assert sys.stdout.fileno() == before_out.fileno() and not sys.stdout.isatty()
    finally:
        logs.close()
    assert (sys.stdout, sys.stderr) == (before_out, before_err)
    lines = [line.split(" ", 1)[1] for line in (tmp_path / "twistd.log").read_text().splitlines()
             if not line.startswith("\t")]
    assert lines[:4] == ["[stdout] printed words", "[stdout] partial line", "[stderr] an error line",
                         lines[3]]
    assert lines[3].startswith("[py.warnings] ") and "UserWarning: watch out" in lines[3]
    assert lines[4] == "[stdout] and a tail"  # the partial line is logged at close


def _full_for_poison(write):
    """A stand-in for the handler's ``write`` that fails as a full disk does on lines saying "poison"."""
    def full_for_poison(text):
        if "poison" in text:
            raise OSError(28, "No space left on device")
        write(text)

    return full_for_poison


def test_a_handler_failing_while_stderr_is_captured_reports_once_into_the_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    logs = logsetup.start_logging(Options())  # daemonize: stderr is captured into twistd.log
    full_for_poison = _full_for_poison(logs.handler.write)
    try:
        logs.handler.write = full_for_poison
        for word in ("before", "poison 1", "between", "poison 2", "after"):
            logging.getLogger("svc").info(word)
        print("poison 3")
    finally:
        logs.close()
    lines = [line.split(" ", 1)[1] for line in (tmp_path / "twistd.log").read_text().splitlines()]
    assert lines == ["[svc] before",
                     f"[stderr] twistdlite: logging to {tmp_path}/twistd.log failed: OSError: [Errno 28] "
                     "No space left on device (further failures are not reported)",
                     "[svc] between", "[svc] after"]


def test_log_stream_rejects_bytes_and_logs_each_line():
    stream = logsetup.LogStream("captured", logging.INFO, io.StringIO())
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    stream.logger.addHandler(handler)
    stream.logger.propagate = False
    stream.logger.setLevel(logging.INFO)
    try:
        with pytest.raises(TypeError):
            stream.write(b"bytes")
        assert stream.write("a\nb\nc") == 5
        stream.close()
    finally:
        stream.logger.removeHandler(handler)
        stream.logger.propagate = True
        stream.logger.setLevel(logging.NOTSET)
    assert [record.getMessage() for record in seen] == ["a", "b", "c"]
    assert all(record.name == "captured" for record in seen)


def test_close_never_raises():
    class Bad(logging.Handler):
        def close(self):
            raise OSError("close failed")

    logsetup.LogSetup(Bad()).close()


def test_fds_to_keep_names_the_component_file_and_root_handlers(tmp_path):
    log = LogFile("comp.log", str(tmp_path))
    extra = logging.FileHandler(str(tmp_path / "basic.log"))
    logging.getLogger().addHandler(extra)
    try:
        fds = logsetup.fds_to_keep(app_with_observer(textFileLogObserver(log)))
        assert log.fileno() in fds and extra.stream.fileno() in fds
        assert all(fd > 2 for fd in fds)
    finally:
        logging.getLogger().removeHandler(extra)
        extra.close()
        log.close()


# -- a daemon's sys.stdout/sys.stderr behave like text streams ----------------------------

def daemon_log_lines(path) -> list:
    return [line.split(" ", 1)[1] for line in path.read_text().splitlines() if not line.startswith("\t")]


def test_captured_stdio_has_the_text_stream_attributes_services_use(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before_out = sys.stdout
    logs = logsetup.start_logging(Options())  # daemonize: stdio captured
    try:
        out, err = sys.stdout, sys.stderr
        assert (out.name, err.name, out.mode, out.encoding, out.errors) == (
            "<stdout>", "<stderr>", "w", "utf-8", "backslashreplace")
        assert out.line_buffering is True and out.writable() and not out.isatty() and not out.readable()
        assert out.fileno() == before_out.fileno()  # the replaced stream's descriptor
        out.reconfigure(errors="replace", line_buffering=True)  # accepted, changes nothing
        sys.stderr.reconfigure(encoding="latin-1")
        with pytest.raises(TypeError):
            out.reconfigure(bogus=True)  # the same signature as io.TextIOWrapper's
        buffer = out.buffer
        assert buffer.writable() and not buffer.isatty() and buffer.mode == "wb" and buffer.name == "<stdout>"
        assert buffer.fileno() == before_out.fileno()
        assert buffer.write(b"raw \xff bytes\n") == 12
        buffer.write(b"caf\xc3")  # a character split across writes is kept whole
        buffer.write(bytearray(b"\xa9 au lait\n"))
        buffer.flush()
        with pytest.raises(TypeError):
            buffer.write("text")
        err.buffer.write(b"binary error\n")
        out.writelines(["two ", "lines\n"])
        out.buffer.write(b"tail \xc3")  # a partial line and a partial character, logged at close
    finally:
        logs.close()
    assert daemon_log_lines(tmp_path / "twistd.log") == [
        "[stdout] raw \\udcff bytes", "[stdout] caf\u00e9 au lait", "[stderr] binary error",
        "[stdout] two lines", "[stdout] tail \\udcc3"]


def test_a_log_stream_over_a_stream_without_a_descriptor_raises_as_stringio_does():
    stream = logsetup.LogStream("captured", logging.INFO, io.StringIO())
    with pytest.raises(io.UnsupportedOperation):
        stream.fileno()
    with pytest.raises(io.UnsupportedOperation):
        stream.buffer.fileno()


def test_print_in_a_protocol_callback_stays_stdout_while_log_lines_get_the_connection(tmp_path, monkeypatch):
    from twistdlite.logger import system_context

    monkeypatch.chdir(tmp_path)
    logs = logsetup.start_logging(Options())  # daemonize: stdio captured, the filter installed
    try:
        previous = system_context.enter(system_context.mark_for("Echo,7,127.0.0.1"))
        try:
            print("printed")
            logging.getLogger("svc").info("logged")
        finally:
            system_context.leave(previous)
        logging.getLogger("svc").info("outside")
    finally:
        logs.close()
    assert daemon_log_lines(tmp_path / "twistd.log") == ["[stdout] printed", "[Echo,7,127.0.0.1] logged",
                                                         "[svc] outside"]


# -- a log destination that always fails --------------------------------------------------

def _always_failing(event):
    raise RuntimeError("observer bug")


def test_an_always_failing_observer_in_a_daemon_is_reported_once_to_the_original_stderr(monkeypatch):
    original = io.StringIO()
    monkeypatch.setattr(sys, "stderr", original)  # what the daemon's stderr replaces
    logs = logsetup.start_logging(Options(), app_with_observer(_always_failing))
    try:
        assert isinstance(sys.stderr, logsetup.LogStream)
        for number in range(3):
            logging.getLogger("svc").error("line %d", number)
        print("a print")
        sys.stderr.write("a stderr line\n")
    finally:
        logs.close()
    lines = original.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("twistdlite: logging to the log observer ")
    assert lines[0].endswith("failed: RuntimeError: observer bug (further failures are not reported)")


def test_a_failure_on_a_line_written_to_stderr_is_reported_to_the_original_stderr(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    original = io.StringIO()
    monkeypatch.setattr(sys, "stderr", original)
    logs = logsetup.start_logging(Options())
    full_for_poison = _full_for_poison(logs.handler.write)
    try:
        logs.handler.write = full_for_poison
        sys.stderr.write("poison from stderr\n")  # stderr is busy logging this line when it fails
        logging.getLogger("svc").info("after")
    finally:
        logs.close()
    assert original.getvalue().count("\n") == 1
    assert "logging to" in original.getvalue() and "No space left on device" in original.getvalue()
    assert daemon_log_lines(tmp_path / "twistd.log") == ["[svc] after"]


def test_in_a_daemon_whose_stderr_is_dev_null_the_report_goes_to_syslog_once(tmp_path, monkeypatch):
    address = str(tmp_path / "log.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(address)
    server.settimeout(5)
    monkeypatch.setenv(logsetup.SYSLOG_SOCKET_ENV, address)
    null = open(os.devnull, "w")
    monkeypatch.setattr(sys, "stderr", null)
    logs = logsetup.start_logging(Options(prefix="myd"), app_with_observer(_always_failing))
    try:
        for number in range(3):
            logging.getLogger("svc").error("line %d", number)
        report = server.recv(65536)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.recv(65536)
    finally:
        logs.close()
        server.close()
        null.close()
    assert re.fullmatch(rf"<11>myd\[{os.getpid()}\]: \[twistdlite\] twistdlite: logging to the log observer "
                        r"<function _always_failing at 0x[0-9a-f]+> failed: RuntimeError: observer bug "
                        r"\(further failures are not reported\)\x00", report.decode())


def test_with_neither_stderr_nor_syslog_the_report_is_dropped_without_a_loop(tmp_path, monkeypatch):
    monkeypatch.setenv(logsetup.SYSLOG_SOCKET_ENV, str(tmp_path / "no-syslog.sock"))
    null = open(os.devnull, "w")
    monkeypatch.setattr(sys, "stderr", null)
    calls = []

    def failing(event):
        calls.append(event["message"])
        raise RuntimeError("observer bug")

    logs = logsetup.start_logging(Options(), app_with_observer(failing))
    try:
        logging.getLogger("svc").error("one")
        logging.getLogger("svc").error("two")
    finally:
        logs.close()
        null.close()
    assert calls[0] == "one" and calls[-1] == "two"
    assert len(calls) == 3  # "one", the report (which fails too, and stops there), "two"
