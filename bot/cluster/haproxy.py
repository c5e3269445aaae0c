"""The HAProxy configuration for Telegram -> HAProxy -> N webhook replicas:
`python -m bot.cluster.haproxy HOST:PORT... [--certificate PEM] > haproxy.cfg`.

HAProxy (Debian's `haproxy` package) is the load balancer: it ends TLS (Telegram posts only to
https://), passes the request unchanged to a live replica (the `X-Telegram-Bot-Api-Secret-Token`
header included: each replica checks it), and asks every replica's `GET /healthz` each second,
so a dead one stops getting updates within about two seconds. A POST that fails on one replica
(refused, reset, no answer) is sent again to another: safe, because the update ledger handles
an update once whichever replica gets it (bot/cluster/ledger.py). `http-buffer-request` keeps
the body so it can be sent again.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.transport.webhook import HEALTH_PATH  # each replica's webhook server answers it


def parse_backend(text: str) -> tuple[str, int]:
    """'host:port' -> (host, port); ValueError with the expected form otherwise."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"a replica is host:port (e.g. 10.0.0.5:8443), got {text!r}")
    return host.strip("[]"), int(port)


def haproxy_config(
    replicas: Sequence[str],
    bind: str = "*:443",
    certificate: Path | None = None,
    *,
    resolver: str | None = None,
    check_interval_ms: int = 1000,
    timeout_seconds: int = 30,
) -> str:
    """The whole haproxy.cfg: one frontend on `bind` (TLS with `certificate`, a PEM of the
    certificate and its key; plain HTTP without), one backend with a server per replica
    ("host:port"), each
    checked with GET HEALTH_PATH. `resolver`
    (e.g. Docker's 127.0.0.11:53) looks the replicas' names up again while running."""
    if not replicas:
        raise ValueError("HAProxy needs at least one replica (host:port)")
    backends = [parse_backend(replica) for replica in replicas]
    if check_interval_ms < 100 or timeout_seconds < 1:
        raise ValueError("check_interval_ms must be at least 100 and timeout_seconds at least 1")
    tls = f" ssl crt {certificate}" if certificate is not None else ""
    resolvers = f"\nresolvers dns\n    nameserver dns {resolver}\n" if resolver else ""
    lookup = " resolvers dns" if resolver else ""
    servers = "\n".join(
        f"    server replica{index} {_address(host)}:{port} check"
        for index, (host, port) in enumerate(backends, start=1)
    )
    return f"""\
# Made by bot/cluster/haproxy.py: Telegram -> HAProxy -> the webhook replicas.
global
    log stdout format raw local0 warning
    maxconn 4096
{resolvers}
defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client {timeout_seconds}s
    timeout server {timeout_seconds}s
    timeout http-request 10s
    # A POST that a replica refused, reset or left unanswered goes to another replica: the
    # update ledger makes that safe. The body is buffered so that it can be sent again.
    option http-buffer-request
    retries 3
    retry-on conn-failure empty-response response-timeout
    option redispatch 1

frontend telegram
    bind {bind}{tls}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET {HEALTH_PATH}
    http-check expect status 200
    # A replica whose name does not resolve yet (a container still starting) is down, not fatal.
    default-server inter {check_interval_ms} fall 2 rise 2 init-addr last,libc,none{lookup}
{servers}
"""


def _address(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def main(argv: Sequence[str] | None = None) -> int:
    """Print the configuration for the replicas named on the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bot.cluster.haproxy", description="an haproxy.cfg for webhook replicas"
    )
    parser.add_argument("replicas", nargs="+", metavar="HOST:PORT", help="each replica's")
    parser.add_argument("--bind", default="*:443", help="where HAProxy listens (*:443)")
    parser.add_argument("--certificate", type=Path, help="one PEM: TLS certificate and key")
    arguments = parser.parse_args(argv)
    try:
        config = haproxy_config(arguments.replicas, arguments.bind, arguments.certificate)
    except ValueError as error:
        print(f"python -m bot.cluster.haproxy: {error}", file=sys.stderr)
        return 2
    print(config, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
