"""The systemd unit and sysusers.d file of a package."""

from __future__ import annotations

from typing import Optional

from twistdlite.packaging.layout import Layout, exec_start


def unit(layout: Layout, description: str, privileged: bool = False, watchdog: Optional[float] = None,
         keep_state: bool = False) -> str:
    """``NAME.service``: Type=notify, an unprivileged system user, state and runtime directories, hardened.

    ``privileged``: the application listens below port 1024, so the unit grants
    CAP_NET_BIND_SERVICE and nothing else; otherwise no capability at all.
    """
    capabilities = "CAP_NET_BIND_SERVICE" if privileged else ""
    lines = [
        "[Unit]",
        f"Description={description}",
        "Documentation=https://pypi.org/project/twistdlite/",
        "After=network.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"User={layout.name}",
        f"Group={layout.name}",
        f"Environment=PYTHONPATH={layout.pythonpath}",
        "Environment=PYTHONDONTWRITEBYTECODE=1",
        f"WorkingDirectory={layout.appdir}",
        f"StateDirectory={layout.name}",
        "StateDirectoryMode=0750",
        f"RuntimeDirectory={layout.name}",
        f"ExecStart={exec_start(layout, keep_state)}",
        "Restart=on-failure",
        "RestartSec=2",
        "TimeoutStopSec=40",
    ]
    if watchdog is not None:
        lines.append(f"WatchdogSec={watchdog:g}")
    lines += [
        f"CapabilityBoundingSet={capabilities}",
        f"AmbientCapabilities={capabilities}",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "UMask=0027",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def sysusers(layout: Layout, description: str) -> str:
    """The sysusers.d line creating the package's system user and group, home the state directory."""
    gecos = description.replace('"', "'")[:60]
    return (f"# The system user {layout.name} runs as (see {layout.name}.service).\n"
            f'u {layout.name} - "{gecos}" {layout.statedir} /usr/sbin/nologin\n')
