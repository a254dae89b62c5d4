"""Who is acting: resolved from a token (API) or from the local operator (CLI)."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from manara.errors import Forbidden
from manara.meta.models import Role


@dataclass(frozen=True)
class Principal:
    tenant: str
    tenant_id: int
    actor: str
    role: Role
    token_id: str | None = None
    user_id: int | None = None

    def require(self, role: Role, action: str) -> None:
        """Refuse `action` unless this principal holds at least `role`."""
        if not self.role.at_least(role):
            raise Forbidden(
                f"{action} needs the role '{role.value}' or higher; this token has '{self.role.value}'",
                required_role=role.value,
            )


def local_operator_name() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no passwd entry (containers): still name the channel
        return "cli:unknown"
