"""Who is acting: resolved from a token (API) or from the local operator (CLI)."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from manara.errors import Forbidden
from manara.meta.models import DEFAULT_CLEARANCE, Classification, Role


@dataclass(frozen=True)
class Principal:
    tenant: str
    tenant_id: int
    actor: str
    role: Role
    token_id: str | None = None
    user_id: int | None = None
    clearance: Classification | None = None  # None: the default of the role

    @property
    def effective_clearance(self) -> Classification:
        """The highest classification this principal may read."""
        return self.clearance or DEFAULT_CLEARANCE[self.role]

    def may_read(self, classification: Classification) -> bool:
        return classification.rank <= self.effective_clearance.rank

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
