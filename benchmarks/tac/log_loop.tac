# The logging benchmark's service on twistdlite: once running, log BENCH_LINES lines in a tight loop
# through stdlib logging, then write {"lines": N, "seconds": S} to BENCH_RESULT.
# Run with: twistdlite -noy benchmarks/tac/log_loop.tac -l bench.log
import json
import logging
import os
import time

from twistdlite import reactor, service


class LogLoop(service.Service):
    """Logs a burst of lines once the loop runs and records how long it took."""

    def startService(self):
        service.Service.startService(self)
        reactor.callLater(0, self.burst)

    def burst(self):
        lines = int(os.environ.get("BENCH_LINES", "10000"))
        log = logging.getLogger("bench.logloop")
        began = time.perf_counter()
        for number in range(lines):
            log.info("tick %d of the logging benchmark", number)
        seconds = time.perf_counter() - began
        result = os.environ["BENCH_RESULT"]
        with open(result + ".tmp", "w") as handle:
            json.dump({"lines": lines, "seconds": seconds}, handle)
        os.replace(result + ".tmp", result)


application = service.Application("log-loop")
LogLoop().setServiceParent(application)
