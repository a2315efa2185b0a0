# Spine tests (tests/test_debug.py): a service whose start fails, with a local to inspect in pdb.
from twistdlite import service


class Fragile(service.Service):
    def startService(self):
        service.Service.startService(self)
        secret = "the-secret-" + "value"
        raise RuntimeError("fragile cannot start")


application = service.Application("failstart")
Fragile().setServiceParent(application)
