# The logging benchmark's service on Twisted: once running, log BENCH_LINES lines in a tight loop
# through twisted.logger, then write {"lines": N, "seconds": S} to BENCH_RESULT.
# Run with: twistd -noy benchmarks/tac/twisted_log_loop.tac -l bench.log
import json
import os
import time

from twisted.application import service
from twisted.internet import reactor
from twisted.logger import Logger


class LogLoop(service.Service):
    """Logs a burst of lines once the reactor runs and records how long it took."""

    def startService(self):
        service.Service.startService(self)
        reactor.callLater(0, self.burst)

    def burst(self):
        lines = int(os.environ.get("BENCH_LINES", "10000"))
        log = Logger(namespace="bench.logloop")
        began = time.perf_counter()
        for number in range(lines):
            log.info("tick {number} of the logging benchmark", number=number)
        seconds = time.perf_counter() - began
        result = os.environ["BENCH_RESULT"]
        with open(result + ".tmp", "w") as handle:
            json.dump({"lines": lines, "seconds": seconds}, handle)
        os.replace(result + ".tmp", result)


application = service.Application("log-loop")
LogLoop().setServiceParent(application)
