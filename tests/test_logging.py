"""twistdlite.logger: the line format, observers and their shapes, the ILogObserver component (in-process)."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import re
import sys

import pytest

from twistdlite.logfile import LogFile
from twistdlite.logger import (
    FileLogObserver,
    ILogObserver,
    JSONFormatter,
    ObserverHandler,
    TwistdFormatter,
    event_from_record,
    handler_for,
    jsonFileLogObserver,
    textFileLogObserver,
)
from twistdlite.service import Application

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"


def make_record(message="hello %s", args=("world",), name="app.module", level=logging.INFO,
                exc_info=None, **extra) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, message, args, exc_info)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def failing_record() -> logging.LogRecord:
    try:
        raise ValueError("bad value")
    except ValueError:
        return make_record("it failed", (), exc_info=sys.exc_info())


def test_line_format_is_twistds_with_the_logger_name_as_system():
    line = TwistdFormatter().format(make_record())
    assert re.fullmatch(STAMP + r" \[app\.module\] hello world", line), line


def test_the_record_system_attribute_wins_over_the_logger_name():
    line = TwistdFormatter().format(make_record(system="ReverserProtocol,3,127.0.0.1"))
    assert line.endswith(" [ReverserProtocol,3,127.0.0.1] hello world")


def test_tracebacks_and_further_message_lines_are_indented_by_a_tab():
    lines = TwistdFormatter().format(failing_record()).split("\n")
    assert re.fullmatch(STAMP + r" \[app\.module\] it failed", lines[0])
    assert lines[1] == "\tTraceback (most recent call last):"
    assert lines[-1] == "\tValueError: bad value"
    assert all(line.startswith("\t") for line in lines[1:])
    multi = TwistdFormatter().format(make_record("first\nsecond\n", ()))
    assert multi.split("\n")[1:] == ["\tsecond"]


def test_stack_info_is_indented_too():
    record = make_record("where", (), stack_info="Stack (most recent call last):\n  File x")
    assert TwistdFormatter().format(record).split("\n")[1:] == ["\tStack (most recent call last):", "\t  File x"]


def test_time_is_local_with_offset_and_follows_the_clock():
    import time

    formatter = TwistdFormatter()
    first, second = make_record(), make_record()
    first.created, second.created = 1_000_000_000.5, 1_000_000_001.2
    assert formatter.formatTime(first) == time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(1_000_000_000))
    assert formatter.formatTime(second) == time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(1_000_000_001))
    assert TwistdFormatter("%H:%M").formatTime(first) == time.strftime("%H:%M", time.localtime(1_000_000_000))


def test_text_file_observer_writes_lines_through_its_handler():
    out = io.StringIO()
    observer = textFileLogObserver(out)
    assert isinstance(observer, FileLogObserver) and handler_for(observer) is observer.handler
    observer.handler.handle(make_record())
    observer({"log_namespace": "ns", "log_system": "sys", "log_level": "warn", "message": "via an event",
              "log_time": 0.0})
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("[app.module] hello world")
    assert lines[1].endswith("[sys] via an event")


def test_json_observer_writes_one_object_per_line_with_exception_only_when_there_is_one():
    out = io.StringIO()
    observer = jsonFileLogObserver(out)
    observer.handler.handle(make_record(system="Conn,1,127.0.0.1"))
    observer.handler.handle(failing_record())
    observer.handler.handle(make_record("caf\udcc3 {braces}", ()))
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert set(first) == {"time", "level", "logger", "system", "message"}
    assert (first["level"], first["logger"], first["system"], first["message"]) == (
        "info", "app.module", "Conn,1,127.0.0.1", "hello world")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d{4}", first["time"])
    assert second["exception"].startswith("Traceback") and second["exception"].endswith("ValueError: bad value")
    assert third["message"] == "caf\udcc3 {braces}"


def test_json_lines_to_a_logfile_stay_valid_utf8_json(tmp_path):
    log = LogFile("app.json", str(tmp_path))
    observer = jsonFileLogObserver(log)
    observer.handler.handle(make_record("bad \udcff byte", ()))
    log.close()
    data = (tmp_path / "app.json").read_bytes()
    assert json.loads(data.decode("utf-8"))["message"] == "bad \udcff byte"


def test_observer_on_a_logfile_uses_the_logfiles_handler_and_rotates_it(tmp_path):
    log = LogFile("app.log", str(tmp_path))
    observer = textFileLogObserver(log)
    assert observer.handler is log.handler
    observer.handler.handle(make_record("one", ()))
    observer.rotate()
    observer.handler.handle(make_record("two", ()))
    log.close()
    assert (tmp_path / "app.log.1").read_text().endswith("one\n")
    assert (tmp_path / "app.log").read_text().endswith("two\n")


def test_file_observer_pickles_with_its_logfile(tmp_path):
    log = LogFile("app.log", str(tmp_path))
    observer = textFileLogObserver(log, timeFormat="%Y")
    copy = pickle.loads(pickle.dumps(observer))
    log.close()
    copy.handler.handle(make_record("after a .tap round trip", ()))
    copy.outFile.close()
    assert re.fullmatch(r"\d{4} \[app\.module\] after a \.tap round trip\n", (tmp_path / "app.log").read_text())


def test_an_observer_on_standard_output_pickles_by_name():
    copy = pickle.loads(pickle.dumps(textFileLogObserver(sys.__stdout__)))
    assert copy.outFile is sys.__stdout__ and isinstance(copy.formatter, TwistdFormatter)
    assert pickle.loads(pickle.dumps(jsonFileLogObserver(sys.__stderr__))).outFile is sys.__stderr__


def test_ilogobserver_is_a_component_key_and_adapts():
    application = Application("myapp")
    seen = []
    observer = seen.append
    assert ILogObserver(application, None) is None
    application.setComponent(ILogObserver, observer)
    assert application.getComponent(ILogObserver) is observer
    assert ILogObserver(application) is observer
    assert isinstance(observer, ILogObserver)  # any one-argument callable is an observer
    with pytest.raises(TypeError):
        ILogObserver()
    restored = pickle.loads(pickle.dumps(ILogObserver))
    assert restored is ILogObserver


def test_handler_for_each_shape():
    plain = logging.StreamHandler(io.StringIO())
    assert handler_for(plain) is plain and isinstance(plain.formatter, TwistdFormatter)
    own = logging.Formatter("%(message)s")
    custom = logging.StreamHandler(io.StringIO())
    custom.setFormatter(own)
    assert handler_for(custom).formatter is own
    wrapped = handler_for(lambda event: None)
    assert isinstance(wrapped, ObserverHandler)
    with pytest.raises(TypeError, match="is not a log observer"):
        handler_for(42)


def test_a_callable_observer_gets_twisted_style_events():
    events = []
    handler = handler_for(events.append)
    handler.handle(make_record("curly {x} %s", ("arg",), system="Proto,0,127.0.0.1"))
    handler.handle(failing_record())
    event, failure = events
    assert event["message"] == "curly {x} arg"
    assert event["log_format"].format(**event) == "curly {x} arg"
    assert (event["log_level"], event["log_namespace"], event["log_system"]) == (
        "info", "app.module", "Proto,0,127.0.0.1")
    assert isinstance(event["log_time"], float) and event["log_traceback"] is None
    assert isinstance(event["log_record"], logging.LogRecord)
    assert failure["log_traceback"].endswith("ValueError: bad value")


def test_event_levels():
    names = [event_from_record(make_record(level=level))["log_level"]
             for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL, 25)]
    assert names == ["debug", "info", "warn", "error", "critical", "level 25"]


def test_an_observer_that_raises_is_reported_once_and_others_still_log(capsys):
    calls = []

    def broken(event):
        calls.append(event)
        raise RuntimeError("observer bug")

    logger = logging.Logger("test.broken")
    good = io.StringIO()
    logger.addHandler(handler_for(broken))
    logger.addHandler(handler_for(logging.StreamHandler(good)))
    for number in range(3):
        logger.error("line %d", number)
    err = capsys.readouterr().err
    assert len(calls) == 3
    assert err.count("\n") == 1 and "RuntimeError: observer bug" in err and "not reported" in err
    assert good.getvalue().count("\n") == 3


def test_json_formatter_handles_unserialisable_args():
    line = JSONFormatter().format(make_record("%s", (object(),)))
    assert json.loads(line)["message"].startswith("<object object")


# -- a connection's own lines carry its system ------------------------------------------

class _FakeTransport:
    """Just enough of an asyncio transport for StreamAdapter/DatagramAdapter, no loop needed."""

    def __init__(self, peer=("127.0.0.1", 40000)):
        self.peer = peer
        self.written = []
        self.aborted = False

    def get_extra_info(self, name, default=None):
        return {"peername": self.peer, "sockname": ("127.0.0.1", 2323)}.get(name, default)

    def write(self, data):
        self.written.append(data)

    def writelines(self, seq):
        self.written.extend(seq)

    def sendto(self, data, addr=None):
        self.written.append((data, addr))

    def close(self):
        pass

    def abort(self):
        self.aborted = True


def capturing_logger(name="test.system"):
    """A logger whose lines go, in twistd's format, through the filter the launcher installs."""
    from twistdlite.launch.logsetup import SYSTEM_FILTER

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TwistdFormatter())
    handler.addFilter(SYSTEM_FILTER)
    logger = logging.Logger(name)
    logger.addHandler(handler)
    return logger, out


def bodies(out) -> list:
    return [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]


def test_every_line_a_protocol_logs_in_its_callbacks_carries_the_connection_system():
    import threading

    from twistdlite import protocol
    from twistdlite._transport import protocol_factory_for

    log, out = capturing_logger()

    class Reverser(protocol.Protocol):
        def connectionMade(self):
            log.info("made")

        def dataReceived(self, data):
            log.info("got %s", data.decode())
            log.info("explicit", extra={"system": "mine"})  # an explicit system wins
            worker = threading.Thread(target=log.info, args=("from another thread",))
            worker.start()
            worker.join()

        def connectionLost(self, reason):
            log.info("lost: %s", reason.type.__name__)

    factory = protocol.ServerFactory.forProtocol(Reverser)
    adapter = protocol_factory_for(factory, "TCP")()
    log.info("before")
    adapter.connection_made(_FakeTransport())
    adapter.data_received(b"hello")
    log.info("between callbacks")
    adapter.connection_lost(None)
    log.info("after")
    assert bodies(out) == [
        "[test.system] before",
        "[Reverser,0,127.0.0.1] made",
        "[Reverser,0,127.0.0.1] got hello",
        "[mine] explicit",
        "[test.system] from another thread",  # another thread's line is not the connection's
        "[test.system] between callbacks",
        "[Reverser,0,127.0.0.1] lost: ConnectionDone",
        "[test.system] after",
    ]


def test_a_line_receivers_lines_and_its_errors_carry_the_system(caplog):
    from twistdlite import basic, protocol
    from twistdlite._transport import protocol_factory_for

    log, out = capturing_logger()

    class Cmd(basic.LineReceiver):
        def lineReceived(self, line):
            log.info("line %s", line.decode())
            if line == b"boom":
                raise ValueError("kaboom")

    adapter = protocol_factory_for(protocol.ServerFactory.forProtocol(Cmd), "TCP")()
    transport = _FakeTransport(("10.1.2.3", 5555))
    adapter.connection_made(transport)
    adapter.data_received(b"one\r\ntwo\r\nboom\r\n")
    assert bodies(out) == ["[Cmd,0,10.1.2.3] line one", "[Cmd,0,10.1.2.3] line two",
                           "[Cmd,0,10.1.2.3] line boom"]
    failure = next(r for r in caplog.records if "Unhandled error in Cmd.dataReceived" in r.getMessage())
    assert failure.system == "Cmd,0,10.1.2.3" and transport.aborted


def test_the_system_is_recorded_when_the_line_is_logged_not_when_it_is_written():
    from twistdlite.launch.logsetup import SYSTEM_FILTER
    from twistdlite.logger import current_system, system_context

    kept = []
    handler = logging.Handler()
    handler.emit = kept.append  # written later, like a queue or memory handler
    handler.addFilter(SYSTEM_FILTER)
    logger = logging.Logger("test.later")
    logger.addHandler(handler)
    assert current_system() is None
    previous = system_context.enter(system_context.mark_for("P,4,::1"))
    try:
        assert current_system() == "P,4,::1"
        logger.info("inside")
    finally:
        system_context.leave(previous)
    assert current_system() is None
    logger.info("outside")
    formatter = TwistdFormatter()
    assert [formatter.format(record).split(" ", 1)[1] for record in kept] == ["[P,4,::1] inside",
                                                                             "[test.later] outside"]


def test_a_datagram_protocols_lines_carry_the_ports_system_as_twisteds():
    from twistdlite import protocol
    from twistdlite._datagram import DatagramAdapter, UDPPort, UNIXDatagramPort

    log, out = capturing_logger()

    class EchoUDP(protocol.DatagramProtocol):
        def startProtocol(self):
            log.info("started")

        def datagramReceived(self, data, addr):
            log.info("datagram %r from %s", data, addr[0])
            self.transport.write(data, addr)

        def stopProtocol(self):
            log.info("stopped")

    port = UDPPort(0, EchoUDP(), "127.0.0.1")
    adapter = DatagramAdapter(port)
    port._transport_lost = lambda: None  # no loop here
    adapter.connection_made(_FakeTransport())
    assert port.protocol.transport.logPrefix() == "EchoUDP (UDP)"
    adapter.datagram_received(b"ping", ("127.0.0.1", 9999))
    adapter.connection_lost(None)
    log.info("after")
    assert bodies(out) == ["[EchoUDP (UDP)] started", "[EchoUDP (UDP)] datagram b'ping' from 127.0.0.1",
                           "[EchoUDP (UDP)] stopped", "[test.system] after"]
    assert DatagramAdapter(UNIXDatagramPort("/nonexistent/x.sock", EchoUDP())).mark.system == "EchoUDP (UNIX)"


# -- a user's strict-mode file never loses a line -----------------------------------------

@pytest.mark.parametrize("make", [textFileLogObserver, jsonFileLogObserver])
def test_undecodable_text_to_a_file_opened_in_strict_mode_is_written_escaped(tmp_path, capsys, make):
    path = tmp_path / "user.log"
    out = open(path, "a", encoding="utf-8")  # errors="strict", as the user opened it
    observer = make(out)
    observer.handler.handle(make_record("bad \udcff byte", ()))
    observer.handler.handle(make_record("next line", ()))
    out.close()
    data = path.read_bytes()
    assert b"bad \\udcff byte" in data and b"next line" in data
    data.decode("utf-8")
    assert capsys.readouterr().err == ""  # nothing failed
    if make is jsonFileLogObserver:  # the escape is JSON's own: the text comes back unchanged
        assert json.loads(data.splitlines()[0])["message"] == "bad \udcff byte"


def test_text_the_files_encoding_cannot_hold_is_escaped_too(tmp_path):
    path = tmp_path / "ascii.log"
    with open(path, "a", encoding="ascii") as out:
        textFileLogObserver(out).handler.handle(make_record("caf\u00e9", ()))
    assert path.read_text(encoding="ascii").endswith("] caf\\xe9\n")


# -- an observer on a plain open file pickles (the shutdown .tap) -------------------------

def test_an_observer_on_a_plain_open_file_pickles_by_path_and_reopens_for_appending(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = open("j.log", "w", encoding="latin-1")  # relative, and "w": reopened for appending
    observer = jsonFileLogObserver(out)
    observer.handler.handle(make_record("before", ()))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the run moved (--rundir) before the .tap is saved
    data = pickle.dumps(observer)
    out.close()
    copy = pickle.loads(data)
    try:
        assert isinstance(copy.formatter, JSONFormatter) and copy.outFile.encoding == "latin-1"
        copy.handler.handle(make_record("after caf\u00e9", ()))
        again = pickle.loads(pickle.dumps(copy))  # a restored observer saves again
    finally:
        copy.outFile.close()
    again.outFile.close()
    lines = (tmp_path / "j.log").read_text("latin-1").splitlines()
    messages = [json.loads(line)["message"] for line in lines]
    assert messages == ["before", "after caf\u00e9"]
    assert not (tmp_path / "elsewhere" / "j.log").exists()


def test_a_saved_observer_file_is_never_reopened_through_a_symlink(tmp_path):
    from twistdlite.logger import LogObserverError

    path = tmp_path / "t.log"
    with open(path, "a") as out:
        data = pickle.dumps(textFileLogObserver(out))
    path.unlink()
    (tmp_path / "target").write_text("")
    os.symlink(tmp_path / "target", path)
    with pytest.raises(LogObserverError, match=rf"cannot reopen the log observer's file {path}: "
                                               "it is a symbolic link"):
        pickle.loads(data)
    assert (tmp_path / "target").read_text() == ""


class _PausableTransport(_FakeTransport):
    """A fake transport that also takes pause_reading/resume_reading."""

    reading = True

    def pause_reading(self):
        self.reading = False

    def resume_reading(self):
        self.reading = True


@pytest.mark.parametrize("session", [0, 1, 255, 256, 257, 511, 512, 70000, 2**40 + 3])
def test_a_connections_session_number_is_kept_whatever_its_size_and_state(session):
    """The log prefix carries the accept-order number however it is stored, through pause, producers and close."""
    import asyncio

    from twistdlite import protocol
    from twistdlite._transport import protocol_factory_for

    log, out = capturing_logger()

    class Owner:
        def __init__(self, first):
            self.next = first
            self.connections = []

        def next_session(self):
            number, self.next = self.next, self.next + 1
            return number

        def connection_started(self, adapter):
            self.connections.append(adapter)

        def connection_ended(self, adapter, reason=None):
            self.connections.remove(adapter)

    class P(protocol.Protocol):
        def dataReceived(self, data):
            log.info("got %s", data.decode())

        def connectionLost(self, reason):
            log.info("lost")

    class Producer:
        def pauseProducing(self):
            pass

        def resumeProducing(self):
            pass

        def stopProducing(self):
            log.info("stop producing")

    owner = Owner(session)
    build = protocol_factory_for(protocol.ServerFactory.forProtocol(P), "TCP", owner)
    first, second = build(), build()
    first.connection_made(_PausableTransport())
    second.connection_made(_PausableTransport(("10.0.0.9", 1)))
    assert (first.session, second.session) == (session, session + 1)
    assert first.proto.transport.logPrefix() == f"P,{session},127.0.0.1"
    first.pauseProducing()  # what arrives now is held: the state the session shares room with
    first.data_received(b"held")
    assert first.session == session and not first.transport.reading and first.held == b"held"
    first.registerProducer(Producer(), True)
    assert first.session == session and second.session == session + 1
    assert second.producer is None and second.held is None  # nothing shared leaks to a neighbour

    async def resume():
        first.resumeProducing()  # the held data is delivered on the loop's next turn
        await asyncio.sleep(0)

    asyncio.run(resume())
    assert first.held is None and first.transport.reading
    second.data_received(b"other")
    first.loseConnection()
    assert first.disconnecting and not second.disconnecting and first.connected
    first.connection_lost(None)
    second.connection_lost(None)
    assert not first.connected and first.session == session and second.session == session + 1
    assert owner.connections == []
    assert bodies(out) == [
        f"[P,{session},127.0.0.1] got held",
        f"[P,{session + 1},10.0.0.9] got other",
        f"[P,{session},127.0.0.1] stop producing",
        f"[P,{session},127.0.0.1] lost",
        f"[P,{session + 1},10.0.0.9] lost",
    ]
