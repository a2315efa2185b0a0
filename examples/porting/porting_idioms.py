"""The Twisted idioms a service is written in, ported by changing the twisted.* imports only.

A LoopingCall started with ``.start(interval).addErrback(...)``, work sent to a
thread with ``threads.deferToThread`` and ``reactor.callInThread`` (and back with
``blockingCallFromThread``), ``task.deferLater``, a child process with
``reactor.spawnProcess``, a 'before shutdown' system event trigger returning a
Deferred, ``Logger`` and the older ``log.msg``; ``stopService`` returns a Deferred.
The heartbeat count is kept in the shutdown .tap and goes on after a restart.
"""

import hashlib
import os
import sys

from twistdlite import log, protocol, reactor, service, task, threads
from twistdlite.logger import Logger


class UDPEcho(protocol.DatagramProtocol):
    """Sends each datagram back to where it came from."""

    def datagramReceived(self, data, addr):
        self.transport.write(data, addr)


class Ticker:
    """Counts the calls of a TimerService; logs the first and every 20th."""

    log = Logger()

    def __init__(self):
        self.ticks = 0

    def tick(self):
        self.ticks += 1
        if self.ticks % 20 == 1:
            self.log.info("tick {ticks}", ticks=self.ticks)


class Child(protocol.ProcessProtocol):
    """Collects what a child process prints and logs how it ended."""

    log = Logger()

    def __init__(self, name):
        self.name = name
        self.out = b""

    def connectionMade(self):
        self.transport.closeStdin()

    def outReceived(self, data):
        self.out += data

    def processEnded(self, reason):
        self.log.info("child {name} said {out!r} and ended: {why}", name=self.name,
                      out=self.out.strip().decode(), why=reason.getErrorMessage())


class Heartbeat(service.Service):
    """Beats every ``interval`` seconds; each beat hashes its number in a thread."""

    log = Logger()

    def __init__(self, interval=0.1):
        self.interval = interval
        self.beats = 0
        self.loop = task.LoopingCall(self.beat)

    def startService(self):
        service.Service.startService(self)
        self.log.info("starting at beat {beats}", beats=self.beats)
        self.loop.start(self.interval).addErrback(self.failed)
        reactor.addSystemEventTrigger("before", "shutdown", self.flush)
        reactor.callInThread(self.fromThread)
        reactor.spawnProcess(Child("python"), sys.executable,
                             [sys.executable, "-c", "print('hello from the child')"], env=dict(os.environ))
        # A program that is not there: the error reaches processEnded, the service goes on.
        reactor.spawnProcess(Child("missing"), "/nonexistent/program", ["program"])

    def beat(self):
        self.beats += 1
        number = self.beats
        if number % 10 == 0:
            log.msg("heartbeat", number)
        d = threads.deferToThread(hashlib.sha256, b"beat %d" % number)
        d.addCallback(lambda digest: self.log.info("beat {number} digest {digest}", number=number,
                                                    digest=digest.hexdigest()[:8]))
        return d

    def failed(self, failure):
        self.log.failure("the heartbeat failed", failure)

    def fromThread(self):
        said = threads.blockingCallFromThread(reactor, task.deferLater, reactor, 0.01, lambda: "waited")
        reactor.callFromThread(self.log.info, "a pool thread {said} for the loop", said=said)

    def flush(self):
        self.log.info("flushing before shutdown")
        return task.deferLater(reactor, 0.05, self.log.info, "flushed")

    def stopService(self):
        service.Service.stopService(self)
        if self.loop.running:
            self.loop.stop()
        return task.deferLater(reactor, 0.01, self.log.info, "stopped at beat {beats}", beats=self.beats)
