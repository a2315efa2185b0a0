"""The launcher's start and stop orders as twistd's, end to end: system event triggers around the
services' start (checked against twistd 26.10: privilegedStartService and startService run before
the reactor runs, then 'before startup' (awaited), 'during startup', 'after startup'), and a
collection whose child fails to stop (Twisted's MultiService returns a Deferred; the run exits 1
with the error logged once, with its traceback).
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

from daemon_helpers import daemons  # noqa: F401 - the fixture
from support import LineReader, run, spawn, wait_exit, wait_for_file_text

ORDER_TAC = '''
import os
from twistdlite import defer, reactor, service, task

def say(what):
    # One write(2) per line: both workers print to the same pipe, and print() writes its
    # pieces (words, separators, the newline) one by one when output is unbuffered.
    os.write(1, ("ORDER %d %s\\n" % (os.getpid(), what)).encode())

class Recorded(service.Service):
    def privilegedStartService(self):
        say("privilegedStartService")
        service.Service.privilegedStartService(self)

    def startService(self):
        say("startService")
        service.Service.startService(self)

def before():
    say("before startup")
    return task.deferLater(reactor, 0.05, say, "before startup's Deferred fired")

reactor.addSystemEventTrigger("before", "startup", before)
reactor.addSystemEventTrigger("during", "startup", say, "during startup")
reactor.addSystemEventTrigger("after", "startup", say, "after startup")
application = service.Application("order")
Recorded().setServiceParent(application)
'''
STOP = 'reactor.addSystemEventTrigger("after", "startup", reactor.stop)\n'
LISTEN = ('from twistdlite import internet, protocol\n'
          'internet.TCPServer(0, protocol.Factory.forProtocol(protocol.Protocol), interface="127.0.0.1")'
          '.setServiceParent(application)\n')
TWISTD_ORDER = ["startService", "before startup", "before startup's Deferred fired", "during startup", "after startup"]


def orders(output: str) -> dict:
    """PID -> the ORDER lines that process printed, in order."""
    found: dict = {}
    for line in output.splitlines():
        if line.startswith("ORDER "):
            _, pid, what = line.split(" ", 2)
            found.setdefault(int(pid), []).append(what)
    return found


def test_startup_triggers_run_after_the_services_start_and_before_waits_for_its_deferred(tmp_path: Path):
    (tmp_path / "order.tac").write_text(ORDER_TAC + STOP)
    done = run(["-noy", "order.tac"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(orders(done.stdout).values()) == [["privilegedStartService", *TWISTD_ORDER]]


def test_each_worker_runs_the_startup_triggers_after_its_start_and_before_it_is_ready(tmp_path: Path):
    """--workers: privilegedStartService once in the supervisor; each worker starts, then fires startup."""
    (tmp_path / "order.tac").write_text(ORDER_TAC + LISTEN)
    proc = spawn(["-no", "--workers", "2", "-y", "order.tac"], cwd=tmp_path)
    reader = LineReader(proc)
    try:
        reader.wait_for("All 2 workers are ready")
        found = orders(reader.text)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0, reader.text
    assert found.pop(proc.pid) == ["privilegedStartService"], reader.text
    assert list(found.values()) == [TWISTD_ORDER, TWISTD_ORDER], reader.text


FAILING_STOP_TAC = '''
from twistdlite import reactor, service

class Breaks(service.Service):
    def stopService(self):
        service.Service.stopService(self)
        raise RuntimeError("the flush failed")

class Noted(service.Service):
    def stopService(self):
        print("NOTED stopped", flush=True)
        return service.Service.stopService(self)

application = service.Application("failing")
collection = service.MultiService()
collection.setServiceParent(application)
Noted().setServiceParent(collection)
Breaks().setServiceParent(collection)
reactor.callWhenRunning(reactor.stop)
'''


def test_a_child_whose_stop_raises_exits_1_with_the_error_logged_once_and_its_siblings_stopped(tmp_path: Path):
    (tmp_path / "failing.tac").write_text(FAILING_STOP_TAC)
    done = run(["-noy", "failing.tac"], cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "NOTED stopped" in output
    assert output.count("RuntimeError: the flush failed") == 1, output
    assert output.count("Traceback (most recent call last)") == 1, output
    assert 'raise RuntimeError("the flush failed")' in output
    assert "Unhandled error in Deferred" not in output


DROPPED_TAC = '''
import gc
from twistdlite import defer, log, reactor, service

def parse_config():
    raise ValueError("no such setting: colour")

def drop_a_failed_deferred():
    d = defer.maybeDeferred(parse_config)  # failed, and nobody adds an errback
    del d
    gc.collect()
    log.msg("dropped the Deferred")

application = service.Application("dropped")
reactor.addSystemEventTrigger("after", "startup", drop_a_failed_deferred)
'''


def test_a_daemon_logs_a_dropped_failed_deferred_once_with_its_traceback_in_twistd_log(tmp_path: Path, daemons):
    (tmp_path / "dropped.tac").write_text(DROPPED_TAC)
    started = run(["-y", "dropped.tac"], cwd=tmp_path)
    assert started.returncode == 0, started.stdout + started.stderr
    pid = daemons.from_pidfile(tmp_path / "twistd.pid")
    wait_for_file_text(tmp_path / "twistd.log", "dropped the Deferred")
    daemons.stop(pid)
    text = (tmp_path / "twistd.log").read_text()
    assert text.count("Unhandled error in Deferred") == 1, text
    assert re.search(r"\[-\] Unhandled error in Deferred:\n.*\[-\] Unhandled Error\n"
                     r"\tTraceback \(most recent call last\):\n(\t .*\n)*?\t  File .*, in parse_config\n"
                     r"(\t .*\n)*\tValueError: no such setting: colour\n", text), text
    assert text.index("Unhandled error in Deferred") < text.index("dropped the Deferred")
    assert text.count("ValueError: no such setting: colour") == 1, text


DEFERRED_SERVICE_TAC = '''
import os
from twistdlite import reactor, service, task

def say(what):
    print("SAID", what, flush=True)

class Slow(service.Service):
    def startService(self):
        service.Service.startService(self)
        if os.environ.get("START_FAILS"):
            return task.deferLater(reactor, 0.05, self.refuse)
        return task.deferLater(reactor, 0.05, say, "start fired")

    def refuse(self):
        raise OSError("the database is not there")

    def stopService(self):
        service.Service.stopService(self)
        return task.deferLater(reactor, 0.05, say, "stop fired")

application = service.Application("slow")
Slow().setServiceParent(application)
reactor.addSystemEventTrigger("after", "startup", say, "after startup")
reactor.addSystemEventTrigger("after", "startup", reactor.stop)
'''


def test_deferreds_returned_by_start_and_stop_service_are_waited_for_and_a_failed_start_is_one_line(tmp_path: Path):
    (tmp_path / "slow.tac").write_text(DEFERRED_SERVICE_TAC)
    done = run(["-noy", "slow.tac"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    said = [line.split("SAID ", 1)[1] for line in done.stdout.splitlines() if line.startswith("SAID ")]
    assert said == ["start fired", "after startup", "stop fired"]
    assert done.stdout.index("SAID stop fired") < done.stdout.index("Server Shut Down.")
    failed = run(["-noy", "slow.tac"], cwd=tmp_path, START_FAILS="1")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert failed.stderr.strip().splitlines()[-1] == "twistdlite: error: start failed: OSError: the database is not there"
    assert "after startup" not in failed.stdout
