# Run with: twistdlite -noy examples/reverse_app.tac   (then: nc 127.0.0.1 2323)
from twistdlite import service
import reverse
application = service.Application("Reverser")
reverse.ReverserService().setServiceParent(application)
