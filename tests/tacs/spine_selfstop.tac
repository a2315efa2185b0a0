# Spine tests (tests/test_reactor.py): uses the reactor API from a .tac, then stops itself.
# Logs the event loop's class once running, fires a callLater, and calls reactor.stop().
import asyncio
import logging

from twistdlite import reactor, service

log = logging.getLogger("selfstop")


def running(greeting, punctuation="!"):
    loop = asyncio.get_running_loop()
    log.info("%s%s loop=%s.%s running=%s", greeting, punctuation, type(loop).__module__,
             type(loop).__name__, reactor.running)
    reactor.callLater(0.01, later, reactor.seconds())


def later(when):
    log.info("later after %.3f s", reactor.seconds() - when)
    reactor.stop()


print("loaded, running=%s" % reactor.running, flush=True)
reactor.callWhenRunning(running, "hello", punctuation="?")
application = service.Application("selfstop")
