"""Twisted's own tests of services and of the basic protocols, run against twistdlite.

Read at run time from the installed Twisted (the ``bench`` extra) by ``twisted_compat``
(never copied here), with their imports pointed at twistdlite. Each test left out is
listed with why: they test Twisted's private names or machinery twistdlite has no
counterpart for.
"""

from __future__ import annotations

import pytest

from twisted_compat import compat_classes, load_twisted_module, twisted_missing

pytestmark = pytest.mark.skipif(twisted_missing(), reason="Twisted is not installed (pip install -e '.[bench]')")

#: twisted/test/test_application.py: the service tree, the Application and the back-off policy.
SERVICE_CLASSES = ["ServiceTests", "ApplicationTests", "BackoffPolicyTests"]
SERVICE_EXCLUDED = {
    "ApplicationTests.testPersistableComponent":
        "adapts the Application to twisted.persisted.sob.IPersistable, Twisted's persistence layer; "
        "twistdlite saves the .tap itself (twistdlite.launch.persist)",
}
#: twisted/protocols/test/test_basic.py: every test class.
BASIC_EXCLUDED = {
    **{f"NetstringReceiverTests.{name}": "calls the private NetstringReceiver._consumeLength"
       for name in ("test_consumeLength", "test_consumeLengthBorderCase1", "test_consumeLengthBorderCase2",
                    "test_consumeLengthBorderCase3")},
    **{f"NetstringReceiverTests.{name}": "replaces the private NetstringReceiver._payloadComplete"
       for name in ("test_receiveNetstringPortions_1", "test_receiveTwoNetstrings")},
    "FileSenderTests.test_interface":
        "zope.interface's verifyObject needs a declared implementer; twistdlite declares no zope interfaces",
}

if not twisted_missing():
    _service = load_twisted_module("twisted.test.test_application")
    globals().update(compat_classes(_service, SERVICE_CLASSES, SERVICE_EXCLUDED))
    _basic = load_twisted_module("twisted.protocols.test.test_basic")
    _basic_classes = [name for name, value in vars(_basic).items()
                      if isinstance(value, type) and name.endswith("Tests") and hasattr(value, "setUp")]
    globals().update(compat_classes(_basic, _basic_classes, BASIC_EXCLUDED))
