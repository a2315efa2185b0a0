# The line echo of benchmarks/tac/line_echo.tac, blocking its event loop ECHO_BUSY_MS milliseconds per line
# (a busy worker, whose listening queue fills): the reload benchmark of bench_workers.py.
import os
import time

from twistdlite import basic, internet, protocol, service

BUSY = float(os.environ.get("ECHO_BUSY_MS", "1")) / 1000


class BusyLineEcho(basic.LineReceiver):
    """Work a while, then send the line back."""

    def lineReceived(self, line):
        time.sleep(BUSY)
        self.sendLine(line)


class BusyLineEchoFactory(protocol.ServerFactory):
    protocol = BusyLineEcho


application = service.Application("busy-line-echo")
internet.TCPServer(int(os.environ.get("ECHO_PORT", "8007")), BusyLineEchoFactory(),
                   interface="127.0.0.1").setServiceParent(application)
