"""Tenants, users (argon2id passwords) and API tokens (random secrets stored only as SHA-256 hashes)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from manara.errors import Conflict, InvalidName, InvalidToken, NotFound
from manara.govern import audit
from manara.govern.principal import Principal
from manara.meta.models import DEFAULT_CLEARANCE, ApiToken, Classification, Role, Tenant, User

TOKEN_PREFIX = "mnr_"
_TOKEN_RE = re.compile(r"^mnr_[A-Za-z0-9_-]{43}$")
SLUG_RE = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def check_slug(value: str, what: str) -> str:
    if not SLUG_RE.fullmatch(value or ""):
        raise InvalidName(
            f"{what} '{value}' is not valid: use 2-63 characters, lower-case letters, digits and '_', "
            "starting with a letter"
        )
    return value


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except VerificationError:
        return False


def _secret_hash(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidName(
            f"unknown role '{value}': choose one of {', '.join(r.value for r in Role)}"
        ) from None


def create_tenant(session: Session, slug: str, name: str | None, actor: str) -> Tenant:
    check_slug(slug, "tenant")
    if session.scalar(select(Tenant).where(Tenant.slug == slug)):
        raise Conflict(f"tenant '{slug}' already exists")
    tenant = Tenant(slug=slug, name=name or slug)
    session.add(tenant)
    session.flush()
    audit.record(session.connection(), audit.EventFields(actor, "tenant.create", tenant=slug, target=slug))
    return tenant


def get_tenant(session: Session, slug: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise NotFound(f"tenant '{slug}' does not exist (create it with 'manara tenant create {slug}')")
    return tenant


def list_tenants(session: Session, actor: str | None = None) -> list[Tenant]:
    """All tenants; audited when an `actor` asks."""
    if actor:
        audit.record(session.connection(), audit.EventFields(actor, "tenant.list"))
    return list(session.scalars(select(Tenant).order_by(Tenant.slug)))


def create_user(
    session: Session, tenant: Tenant, username: str, password: str | None, role: Role, actor: str
) -> User:
    if not username or len(username) > 255 or any(c.isspace() for c in username):
        raise InvalidName(f"user name '{username}' is not valid: 1-255 characters, no spaces")
    if session.scalar(select(User).where(User.tenant_id == tenant.id, User.username == username)):
        raise Conflict(f"user '{username}' already exists in tenant '{tenant.slug}'")
    user = User(
        tenant_id=tenant.id,
        username=username,
        password_hash=hash_password(password) if password else None,
        role=role.value,
    )
    session.add(user)
    session.flush()
    audit.record(
        session.connection(),
        audit.EventFields(
            actor, "user.create", tenant=tenant.slug, target=username, detail={"role": role.value}
        ),
    )
    return user


def get_user(session: Session, tenant: Tenant, username: str) -> User:
    user = session.scalar(select(User).where(User.tenant_id == tenant.id, User.username == username))
    if user is None:
        raise NotFound(f"user '{username}' does not exist in tenant '{tenant.slug}'")
    return user


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def create_token(
    session: Session,
    tenant: Tenant,
    *,
    role: Role,
    name: str,
    actor: str,
    user: User | None = None,
    expires_in: timedelta | None = None,
    clearance: Classification | None = None,
) -> IssuedToken:
    if user is not None and not Role(user.role).at_least(role):
        raise InvalidName(f"user '{user.username}' is '{user.role}' and cannot hold a '{role.value}' token")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        id="tok_" + secrets.token_hex(6),
        tenant_id=tenant.id,
        user_id=user.id if user else None,
        name=name,
        role=role.value,
        clearance=clearance.value if clearance else None,
        secret_hash=_secret_hash(secret),
        expires_at=datetime.now(UTC) + expires_in if expires_in else None,
    )
    session.add(token)
    session.flush()
    audit.record(
        session.connection(),
        audit.EventFields(
            actor,
            "token.create",
            tenant=tenant.slug,
            target=token.id,
            detail={
                "role": role.value,
                "clearance": token_clearance(token).value,
                "name": name,
                "expires_at": token.expires_at,
            },
        ),
    )
    return IssuedToken(token, secret)


def list_tokens(session: Session, tenant: Tenant, actor: str | None = None) -> list[ApiToken]:
    """A tenant's tokens (never their secrets); audited when an `actor` asks."""
    if actor:
        audit.record(session.connection(), audit.EventFields(actor, "token.list", tenant=tenant.slug))
    return list(
        session.scalars(select(ApiToken).where(ApiToken.tenant_id == tenant.id).order_by(ApiToken.created_at))
    )


def token_clearance(token: ApiToken) -> Classification:
    return Classification(token.clearance) if token.clearance else DEFAULT_CLEARANCE[Role(token.role)]


def parse_classification(value: str) -> Classification:
    try:
        return Classification(value)
    except ValueError:
        allowed = ", ".join(c.value for c in Classification)
        raise InvalidName(f"unknown classification '{value}': use one of {allowed}") from None


def token_info(token: ApiToken) -> dict[str, Any]:
    """What may be shown of a token: never its secret or hash."""
    return {
        "id": token.id,
        "name": token.name,
        "role": token.role,
        "clearance": token_clearance(token).value,
        "user": token.user.username if token.user else None,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "last_used_at": token.last_used_at,
    }


def revoke_token(session: Session, tenant: Tenant, token_id: str, actor: str) -> ApiToken:
    token = session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.tenant_id == tenant.id))
    if token is None:
        raise NotFound(f"token '{token_id}' does not exist in tenant '{tenant.slug}'")
    if token.revoked_at is None:
        token.revoked_at = datetime.now(UTC)
    audit.record(
        session.connection(), audit.EventFields(actor, "token.revoke", tenant=tenant.slug, target=token_id)
    )
    return token


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def authenticate(session: Session, secret: str) -> Principal:
    """Resolve a bearer secret to a principal, or raise `InvalidToken` saying why."""
    if not _TOKEN_RE.match(secret or ""):
        raise InvalidToken("malformed bearer token: expected 'mnr_' followed by 43 URL-safe characters")
    row = session.execute(
        select(ApiToken, Tenant.slug).join(Tenant).where(ApiToken.secret_hash == _secret_hash(secret))
    ).one_or_none()
    if row is None:
        raise InvalidToken("unknown token")
    token, tenant_slug = row
    now = datetime.now(UTC)
    if token.revoked_at is not None:
        raise InvalidToken(f"token {token.id} was revoked")
    if token.expires_at is not None and _aware(token.expires_at) <= now:
        raise InvalidToken(f"token {token.id} expired at {_aware(token.expires_at).isoformat()}")
    if token.last_used_at is None or now - _aware(token.last_used_at) > timedelta(minutes=1):
        token.last_used_at = now
    actor = f"token:{token.id}" if token.user is None else f"user:{token.user.username}"
    return Principal(
        tenant=tenant_slug,
        tenant_id=token.tenant_id,
        actor=actor,
        role=Role(token.role),
        token_id=token.id,
        user_id=token.user_id,
        clearance=Classification(token.clearance) if token.clearance else None,
    )
