"""Tenants, users, passwords, API tokens and roles."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from manara.errors import Conflict, Forbidden, InvalidName, InvalidToken, NotFound, Unauthenticated
from manara.govern import audit, identity
from manara.govern.principal import Principal
from manara.meta.db import session_scope
from manara.meta.models import ApiToken, Role, User
from manara.workspace import Workspace

# --- passwords --------------------------------------------------------------------------------------------


def test_password_is_stored_as_argon2id(ws: Workspace) -> None:
    with session_scope(ws.engine) as s:
        tenant = identity.get_tenant(s, "default")
        identity.create_user(s, tenant, "amina", "correct horse battery", Role.analyst, "test")
    with session_scope(ws.engine) as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "amina"))

    assert stored is not None and stored.startswith("$argon2id$")
    assert "correct horse battery" not in stored
    assert identity.verify_password(stored, "correct horse battery")
    assert not identity.verify_password(stored, "correct horse batterY")
    # salted: the same password hashes differently each time, and each hash verifies
    again = identity.hash_password("correct horse battery")
    assert again != stored and again.startswith("$argon2id$")
    assert identity.verify_password(again, "correct horse battery")


def test_user_without_password_has_no_hash(ws: Workspace) -> None:
    with session_scope(ws.engine) as s:
        user = identity.create_user(s, identity.get_tenant(s, "default"), "robot", None, Role.viewer, "test")
        assert user.password_hash is None


# --- tokens -------------------------------------------------------------------------------------------------


def test_token_is_stored_only_as_a_hash(ws: Workspace, admin_token: str) -> None:
    with session_scope(ws.engine) as s:
        tenant = identity.get_tenant(s, "default")
        issued = identity.create_token(s, tenant, role=Role.analyst, name="reporting", actor="test")
    secret = issued.secret
    assert secret.startswith("mnr_") and len(secret) == 47

    with ws.engine.connect() as c:
        token_rows = [tuple(r) for r in c.execute(text("SELECT * FROM manara_api_tokens"))]
        audit_rows = [tuple(r) for r in c.execute(text("SELECT * FROM manara_audit_events"))]
    for secret_value in (secret, admin_token):
        body = secret_value.removeprefix("mnr_")
        for row in token_rows + audit_rows:
            for cell in row:
                assert body not in str(cell), "a token secret is stored in clear"
    stored = {r[0]: r for r in token_rows}
    with session_scope(ws.engine) as s:
        tok = s.get(ApiToken, issued.token.id)
        assert tok is not None and tok.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert issued.token.id in stored and len(token_rows) == 2  # the first admin token and this one


def test_authenticate_resolves_tenant_role_and_actor(ws: Workspace, admin_token: str) -> None:
    with session_scope(ws.engine) as s:
        admin = identity.authenticate(s, admin_token)
    assert admin.tenant == "default" and admin.role is Role.admin and admin.actor == "user:admin"
    assert admin.token_id is not None and admin.token_id.startswith("tok_")

    with session_scope(ws.engine) as s:
        rival = identity.create_tenant(s, "rival", None, "test")
        user = identity.create_user(s, rival, "rami", None, Role.steward, "test")
        by_user = identity.create_token(s, rival, role=Role.analyst, name="u", actor="test", user=user)
        service = identity.create_token(s, rival, role=Role.viewer, name="svc", actor="test")
    with session_scope(ws.engine) as s:
        p1 = identity.authenticate(s, by_user.secret)
        p2 = identity.authenticate(s, service.secret)
    assert (p1.tenant, p1.role, p1.actor) == ("rival", Role.analyst, "user:rami")
    assert p1.tenant_id == rival.id and p1.user_id == user.id
    assert (p2.tenant, p2.role, p2.actor) == ("rival", Role.viewer, f"token:{service.token.id}")


def test_authenticate_marks_last_use(ws: Workspace, admin_token: str) -> None:
    with session_scope(ws.engine) as s:
        p = identity.authenticate(s, admin_token)
    with session_scope(ws.engine) as s:
        tok = s.get(ApiToken, p.token_id)
        assert tok is not None and tok.last_used_at is not None


def _issue(ws: Workspace, **kw: object) -> identity.IssuedToken:
    with session_scope(ws.engine) as s:
        tenant = identity.get_tenant(s, "default")
        return identity.create_token(s, tenant, role=Role.analyst, name="t", actor="test", **kw)  # type: ignore[arg-type]


def _auth(ws: Workspace, secret: str) -> Principal:
    with session_scope(ws.engine) as s:
        return identity.authenticate(s, secret)


def test_bad_tokens_are_refused_with_distinct_reasons(ws: Workspace) -> None:
    revoked = _issue(ws)
    with session_scope(ws.engine) as s:
        identity.revoke_token(s, identity.get_tenant(s, "default"), revoked.token.id, "test")
    expired = _issue(ws, expires_in=timedelta(seconds=-1))
    unknown = "mnr_" + "A" * 43

    messages = {}
    cases = {
        "malformed": "not-a-token",
        "malformed-short": "mnr_abc",
        "malformed-empty": "",
        "malformed-bad-chars": "mnr_" + "!" * 43,
        "unknown": unknown,
        "revoked": revoked.secret,
        "expired": expired.secret,
    }
    for name, secret in cases.items():
        with pytest.raises(InvalidToken) as info:
            _auth(ws, secret)
        assert isinstance(info.value, Unauthenticated) and info.value.status == 401
        messages[name] = info.value.detail

    assert all("malformed bearer token" in messages[k] for k in cases if k.startswith("malformed"))
    assert messages["unknown"] == "unknown token"
    assert messages["revoked"] == f"token {revoked.token.id} was revoked"
    assert messages["expired"].startswith(f"token {expired.token.id} expired at ")
    assert len({messages["malformed"], messages["unknown"], messages["revoked"], messages["expired"]}) == 4
    # no message repeats the secret it was given
    assert not any(cases[k] and cases[k] in messages[k] for k in cases)


def test_token_expiring_later_still_works(ws: Workspace) -> None:
    issued = _issue(ws, expires_in=timedelta(hours=1))
    assert _auth(ws, issued.secret).role is Role.analyst
    assert issued.token.expires_at is not None and issued.token.expires_at > datetime.now(UTC)


def test_revoke_is_tenant_scoped(ws: Workspace) -> None:
    issued = _issue(ws)
    with session_scope(ws.engine) as s:
        rival = identity.create_tenant(s, "rival", None, "test")
    with (
        pytest.raises(NotFound, match=f"token '{issued.token.id}' does not exist in tenant 'rival'"),
        session_scope(ws.engine) as s,
    ):
        identity.revoke_token(s, identity.get_tenant(s, rival.slug), issued.token.id, "test")
    assert _auth(ws, issued.secret).tenant == "default"  # still valid


def test_revoke_is_audited_and_idempotent(ws: Workspace) -> None:
    issued = _issue(ws)
    for _ in range(2):
        with session_scope(ws.engine) as s:
            tok = identity.revoke_token(s, identity.get_tenant(s, "default"), issued.token.id, "user:admin")
            assert tok.revoked_at is not None
    events = audit.query(ws.engine, action="token.revoke")
    assert [e["target"] for e in events] == [issued.token.id, issued.token.id]
    assert audit.verify(ws.engine).ok


@pytest.mark.parametrize(
    ("user_role", "token_role", "allowed"),
    [
        (Role.viewer, Role.viewer, True),
        (Role.viewer, Role.analyst, False),
        (Role.analyst, Role.steward, False),
        (Role.steward, Role.admin, False),
        (Role.steward, Role.analyst, True),
        (Role.admin, Role.admin, True),
    ],
)
def test_user_cannot_get_a_token_above_their_role(
    ws: Workspace, user_role: Role, token_role: Role, allowed: bool
) -> None:
    with session_scope(ws.engine) as s:
        tenant = identity.get_tenant(s, "default")
        user = identity.create_user(s, tenant, f"u_{user_role.value}", None, user_role, "test")
    with session_scope(ws.engine) as s:
        tenant = identity.get_tenant(s, "default")
        user = identity.get_user(s, tenant, f"u_{user_role.value}")
        if allowed:
            issued = identity.create_token(s, tenant, role=token_role, name="t", actor="test", user=user)
            assert issued.token.role == token_role.value
        else:
            with pytest.raises(InvalidName) as info:
                identity.create_token(s, tenant, role=token_role, name="t", actor="test", user=user)
            msg = info.value.detail
            assert f"'{user_role.value}'" in msg and f"'{token_role.value}'" in msg and "cannot hold" in msg
    with session_scope(ws.engine) as s:
        n = s.scalar(select(ApiToken).where(ApiToken.user_id == user.id).with_only_columns(ApiToken.id))
        assert (n is not None) == allowed  # a refused token is not stored


# --- tenants and users ----------------------------------------------------------------------------------------


INVALID_SLUGS = ["", "a", "A", "Acme", "1acme", "_acme", "ac-me", "ac me", "ac.me", "acme/x", "défaut", "a" * 64,
                 "../etc", " acme", "acme;drop"]  # fmt: skip


@pytest.mark.parametrize("slug", INVALID_SLUGS)
def test_invalid_slugs_are_rejected(slug: str) -> None:
    with pytest.raises(InvalidName) as info:
        identity.check_slug(slug, "tenant")
    assert f"tenant '{slug}' is not valid" in info.value.detail and "lower-case letters" in info.value.detail


def test_invalid_tenant_slugs_are_not_created(ws: Workspace) -> None:
    for slug in INVALID_SLUGS:
        with pytest.raises(InvalidName, match="is not valid"), session_scope(ws.engine) as s:
            identity.create_tenant(s, slug, None, "test")
    with session_scope(ws.engine) as s:
        assert [t.slug for t in identity.list_tenants(s)] == ["default"]


def test_slug_with_trailing_newline_is_rejected(ws: Workspace) -> None:
    with pytest.raises(InvalidName):
        identity.check_slug("acme\n", "tenant")
    with pytest.raises(InvalidName), session_scope(ws.engine) as s:
        identity.create_tenant(s, "acme\n", None, "test")


def test_valid_tenant_slugs(ws: Workspace) -> None:
    for slug in ("ab", "acme", "a1_b2", "x" * 63):
        with session_scope(ws.engine) as s:
            t = identity.create_tenant(s, slug, None, "test")
            assert t.slug == slug and t.name == slug
        assert ws.principal(slug).tenant == slug


def test_duplicate_tenant_is_a_conflict(ws: Workspace) -> None:
    with session_scope(ws.engine) as s:
        identity.create_tenant(s, "acme", "Acme", "test")
    with pytest.raises(Conflict, match="tenant 'acme' already exists"), session_scope(ws.engine) as s:
        identity.create_tenant(s, "acme", "Acme again", "test")
    with pytest.raises(Conflict, match="tenant 'default' already exists"), session_scope(ws.engine) as s:
        identity.create_tenant(s, "default", None, "test")
    assert audit.verify(ws.engine).ok


def test_duplicate_user_is_a_conflict_within_a_tenant_only(ws: Workspace) -> None:
    with session_scope(ws.engine) as s:
        identity.create_user(s, identity.get_tenant(s, "default"), "omar", None, Role.viewer, "test")
        rival = identity.create_tenant(s, "rival", None, "test")
        identity.create_user(s, rival, "omar", None, Role.viewer, "test")  # same name elsewhere: fine
    with (
        pytest.raises(Conflict, match="user 'omar' already exists in tenant 'default'"),
        session_scope(ws.engine) as s,
    ):
        identity.create_user(s, identity.get_tenant(s, "default"), "omar", None, Role.admin, "test")
    with session_scope(ws.engine) as s:
        user = identity.get_user(s, identity.get_tenant(s, "default"), "omar")
        assert user.role == "viewer"


@pytest.mark.parametrize("username", ["", "with space", "tab\tname", "x" * 256])
def test_invalid_user_names(ws: Workspace, username: str) -> None:
    with pytest.raises(InvalidName, match="user name"), session_scope(ws.engine) as s:
        identity.create_user(s, identity.get_tenant(s, "default"), username, None, Role.viewer, "test")


def test_unknown_tenant_user_and_role(ws: Workspace) -> None:
    with session_scope(ws.engine) as s:
        with pytest.raises(NotFound, match="tenant 'nope' does not exist"):
            identity.get_tenant(s, "nope")
        with pytest.raises(NotFound, match="user 'ghost' does not exist in tenant 'default'"):
            identity.get_user(s, identity.get_tenant(s, "default"), "ghost")
    with pytest.raises(InvalidName, match="unknown role 'superuser'"):
        identity.parse_role("superuser")
    assert identity.parse_role("steward") is Role.steward


def test_identity_changes_are_audited(ws: Workspace) -> None:
    with session_scope(ws.engine) as s:
        t = identity.create_tenant(s, "acme", None, "user:root")
        u = identity.create_user(s, t, "nadia", None, Role.steward, "user:root")
        issued = identity.create_token(s, t, role=Role.analyst, name="n", actor="user:root", user=u)
    rows = audit.query(ws.engine, actor="user:root")
    assert [(e["action"], e["target"]) for e in rows] == [
        ("token.create", issued.token.id),
        ("user.create", "nadia"),
        ("tenant.create", "acme"),
    ]
    assert rows[1]["detail"] == {"role": "steward"} and rows[0]["detail"]["role"] == "analyst"


def test_failed_creation_writes_no_audit_event(ws: Workspace) -> None:
    before = audit.verify(ws.engine).checked
    with pytest.raises(InvalidName), session_scope(ws.engine) as s:
        t = identity.get_tenant(s, "default")
        identity.create_user(s, t, "ok_user", None, Role.viewer, "test")
        identity.create_user(s, t, "bad user", None, Role.viewer, "test")  # rolls the unit back
    result = audit.verify(ws.engine)
    assert result.ok and result.checked == before
    with session_scope(ws.engine) as s, pytest.raises(NotFound):
        identity.get_user(s, identity.get_tenant(s, "default"), "ok_user")


# --- roles ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("held", list(Role))
@pytest.mark.parametrize("needed", list(Role))
def test_principal_require(held: Role, needed: Role) -> None:
    p = Principal(tenant="default", tenant_id=1, actor="user:x", role=held)
    if list(Role).index(held) >= list(Role).index(needed):
        p.require(needed, "doing it")
    else:
        with pytest.raises(Forbidden) as info:
            p.require(needed, "doing it")
        assert info.value.status == 403
        assert info.value.detail == (
            f"doing it needs the role '{needed.value}' or higher; this token has '{held.value}'"
        )
        assert info.value.extra == {"required_role": needed.value}


def test_role_order() -> None:
    assert [r.value for r in Role] == ["viewer", "analyst", "steward", "admin"]
    assert Role.admin.at_least(Role.viewer) and not Role.viewer.at_least(Role.analyst)


def test_listing_tokens_and_tenants_is_audited(ws: Workspace) -> None:
    with session_scope(ws.engine) as s:
        tenant = identity.get_tenant(s, "default")
        identity.list_tokens(s, tenant, "user:auditor")
        identity.list_tenants(s, "user:auditor")
    actions = sorted(e["action"] for e in audit.query(ws.engine, actor="user:auditor"))
    assert actions == ["tenant.list", "token.list"]
