# Twisted's service idioms, ported by changing the twisted.* imports only
# (see porting_idioms.py): twistdlite -noy idioms.tac
from twistdlite import service
from porting_idioms import Heartbeat

application = service.Application("idioms")
Heartbeat().setServiceParent(application)
