"""``tap2deb`` and ``tap2rpm``: make an installable .deb or .rpm (and its source package) from an application.

The package carries the application, twistdlite and its pure-Python
dependencies, a hardened systemd unit, a sysusers.d file for its system user
and maintainer scripts; it installs offline on a host with only ``python3``.
Applications are read through the launcher's loader; nothing imports this
package but its console scripts.
"""
