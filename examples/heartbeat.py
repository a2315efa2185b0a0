"""A heartbeat for examples/timer.tac: logs a numbered line each time it is called."""

import logging

log = logging.getLogger("heartbeat")


class Heartbeat:
    """Counts its beats (the count is saved with the application in a .tap)."""

    def __init__(self):
        self.beats = 0

    def beat(self):
        self.beats += 1
        log.info("heartbeat %d", self.beats)
