"""An OPC UA server simulating a small plant controller, for the opcua source's tests (asyncua).

    .venv/bin/python scripts/opcua_test_server.py --port 48400 --pidfile /tmp/opcua.pid

Endpoint opc.tcp://127.0.0.1:PORT/manara/ (loopback only, no message security), namespace
`urn:manara:test-plant` (index 2), one object `Line1` whose variables have stable string node ids:

    ns=2;s=Line1.Temperature  Double   °C, a sine of period 5 s, changes every 100 ms
    ns=2;s=Line1.Pressure     Double   bar, a cosine of period 8 s, changes every 100 ms
    ns=2;s=Line1.Counter      Int64    +1 every 100 ms
    ns=2;s=Line1.Running      Boolean  True for 3 s, False for 3 s, …
    ns=2;s=Line1.Status       String   "تشغيل / en marche" or "توقف / à l'arrêt", follows Running
    ns=2;s=Line1.Setpoint     Double   writable by clients (tests write it to make a known change)
    ns=2;s=Line1.Limits       Range    a structure (ExtensionObject), which the source quarantines

Sessions are anonymous, or user `operator` with password `manara` (any other credentials are
refused). The values are deterministic: tick n (every 100 ms since the start) gives the same values
on every run. The server runs until SIGTERM or SIGINT, then exits cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

NAMESPACE = "urn:manara:test-plant"
TICK_S = 0.1
USERS = {"operator": "manara"}


class Users(UserManager):
    """Anonymous sessions, or the test user; anything else is refused (BadUserAccessDenied)."""

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:  # fmt: skip
        if username is None:  # anonymous (identity tokens are anonymous or user name only)
            return User(role=UserRole.User)
        if username is not None and USERS.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


def values(tick: int) -> dict[str, Any]:
    running = (tick // 30) % 2 == 0
    return {
        "Temperature": round(60.0 + 15.0 * math.sin(2 * math.pi * tick / 50), 3),
        "Pressure": round(2.5 + 0.2 * math.cos(2 * math.pi * tick / 80), 4),
        "Counter": tick,
        "Running": running,
        "Status": "تشغيل / en marche" if running else "توقف / à l'arrêt",
    }


TYPES = {
    "Temperature": ua.VariantType.Double,
    "Pressure": ua.VariantType.Double,
    "Counter": ua.VariantType.Int64,
    "Running": ua.VariantType.Boolean,
    "Status": ua.VariantType.String,
}


async def serve(port: int, stop: asyncio.Event) -> None:
    server = Server(user_manager=Users())
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/manara/")
    server.set_server_name("Manara test plant controller")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken])
    ns = await server.register_namespace(NAMESPACE)
    line = await server.nodes.objects.add_object(
        ua.NodeId.from_string(f"ns={ns};s=Line1"), ua.QualifiedName("Line1", ns)
    )
    nodes = {}
    for name, value in values(0).items():
        nodes[name] = await line.add_variable(
            ua.NodeId.from_string(f"ns={ns};s=Line1.{name}"),
            ua.QualifiedName(name, ns),
            value,
            varianttype=TYPES[name],
        )
    setpoint = await line.add_variable(
        ua.NodeId.from_string(f"ns={ns};s=Line1.Setpoint"),
        ua.QualifiedName("Setpoint", ns),
        65.0,
        varianttype=ua.VariantType.Double,
    )
    await setpoint.set_writable()
    await line.add_variable(
        ua.NodeId.from_string(f"ns={ns};s=Line1.Limits"), ua.QualifiedName("Limits", ns), ua.Range(Low=0.0, High=120.0),
        varianttype=ua.VariantType.ExtensionObject,
    )  # fmt: skip
    async with server:
        loop = asyncio.get_running_loop()
        start, tick = loop.time(), 0
        while not stop.is_set():
            tick += 1
            previous = values(tick - 1)
            for name, value in values(tick).items():
                if value != previous[name]:
                    await nodes[name].write_value(ua.Variant(value, TYPES[name]))
            with contextlib.suppress(TimeoutError):  # the next tick on the clock: ticks do not drift
                await asyncio.wait_for(stop.wait(), max(0.0, start + (tick + 1) * TICK_S - loop.time()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=48400)
    parser.add_argument("--pidfile", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.pidfile:
        args.pidfile.write_text(f"{os.getpid()}\n", encoding="ascii")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(args.port, stop)

    try:
        asyncio.run(run())
    finally:
        if args.pidfile:
            args.pidfile.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
