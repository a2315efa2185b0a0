"""The logging benchmark's reference: stdlib ``logging`` to a ``FileHandler`` alone, no framework.

    BENCH_LINES=N BENCH_RESULT=result.json python benchmarks/stdlib_log_loop.py LOGFILE

Logs N lines in a tight loop in the twistd-like format ``<ISO time> [name] message``
and writes ``{"lines": N, "seconds": S}`` to BENCH_RESULT.
"""

import json
import logging
import os
import sys
import time


def main(path):
    """Log the lines to ``path`` and write the timing."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s [%(name)s] %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    lines = int(os.environ.get("BENCH_LINES", "10000"))
    log = logging.getLogger("bench.logloop")
    began = time.perf_counter()
    for number in range(lines):
        log.info("tick %d of the logging benchmark", number)
    seconds = time.perf_counter() - began
    handler.close()
    result = os.environ["BENCH_RESULT"]
    with open(result + ".tmp", "w") as handle:
        json.dump({"lines": lines, "seconds": seconds}, handle)
    os.replace(result + ".tmp", result)


if __name__ == "__main__":
    main(sys.argv[1])
