# A TimerService that logs a heartbeat. Run with: twistdlite -noy examples/timer.tac
# TIMER_STEP sets the interval in seconds (default 1).
import os

from twistdlite import internet, service

import heartbeat

step = float(os.environ.get("TIMER_STEP", "1"))
application = service.Application("timer")
internet.TimerService(step, heartbeat.Heartbeat().beat).setServiceParent(application)
