"""The howto's --logger factory: twistdlite --logger mylogger.logger ... logs to $MY_LOG (/tmp/my.log)."""

import os

from twistdlite.log import FileLogObserver


def logger():
    return FileLogObserver(open(os.environ.get("MY_LOG", "/tmp/my.log"), "w")).emit
