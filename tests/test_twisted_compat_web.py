"""Twisted's own tests of twisted.python.urlpath and of twisted.web.server's sessions, run against twistdlite.

Read at run time from the installed Twisted by ``twisted_compat`` (never copied here), with
``twisted.python.urlpath`` pointed at ``twistdlite.urlpath`` and ``twisted.web.server`` at
``twistdlite.web.server`` (the rest of that test module's imports stay Twisted's: only its
``SessionTests`` run, on twistdlite's Site, Session and task.Clock). None is left out.
"""

from __future__ import annotations

import pytest

from twisted_compat import DEFAULT_MODULE_MAP, compat_classes, load_twisted_module, twisted_missing

pytestmark = pytest.mark.skipif(twisted_missing(), reason="Twisted is not installed (pip install -e '.[test]')")

if not twisted_missing():
    _urlpath = load_twisted_module("twisted.python.test.test_urlpath",
                                   {**DEFAULT_MODULE_MAP, "twisted.python.urlpath": "twistdlite.urlpath"})
    globals().update(compat_classes(_urlpath, ["BytesURLPathTests", "StringURLPathTests", "UnicodeURLPathTests"],
                                    {}))
    _web = load_twisted_module("twisted.web.test.test_web",
                               {**DEFAULT_MODULE_MAP, "twisted.web.server": "twistdlite.web.server"})
    globals().update(compat_classes(_web, ["SessionTests"], {}))
