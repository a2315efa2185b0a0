# A counter whose state survives a restart (the service is in examples/counter.py).
#   twistdlite -ny examples/counter.tac      # Ctrl-C: saves Counter-shutdown.tap here
#   twistdlite -nf Counter-shutdown.tap      # the same counts, greeting, port and timer
# COUNTER_PORT (default 8124; 0 picks a free one), COUNTER_INTERFACE (default 127.0.0.1)
# and COUNTER_STEP (seconds between timer ticks, default 1) are read here only: a
# restarted application keeps the values it was saved with.
import os

from twistdlite import service

import counter

application = service.Application("Counter")
counter.makeService(
    port=int(os.environ.get("COUNTER_PORT", "8124")),
    interface=os.environ.get("COUNTER_INTERFACE", "127.0.0.1"),
    step=float(os.environ.get("COUNTER_STEP", "1")),
).setServiceParent(application)
