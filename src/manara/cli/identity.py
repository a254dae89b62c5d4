"""`manara tenant|user|token …`: organisations, people and API tokens."""

from __future__ import annotations

import getpass
import os
from datetime import timedelta

import typer

from manara.cli.common import JsonOption, TenantOption, console, print_json, print_rows, run, workspace
from manara.govern import identity
from manara.govern.principal import local_operator_name
from manara.meta.db import session_scope

tenant_app = typer.Typer(help="Tenants (organisations): each has its own datasets, users and tokens.")
user_app = typer.Typer(help="Users of a tenant.")
token_app = typer.Typer(help="API tokens: bearer secrets bound to a tenant and a role.")


@tenant_app.command("create")
def tenant_create(
    slug: str = typer.Argument(..., help="short id: lower-case letters, digits, _"),
    name: str | None = typer.Option(None, "--name", help="display name"),
) -> None:
    """Create a tenant."""

    def go() -> None:
        ws = workspace()
        with session_scope(ws.engine) as s:
            t = identity.create_tenant(s, slug, name, local_operator_name())
        from manara.lake.catalog import ensure_namespace

        ensure_namespace(ws.catalog, t.slug)
        console.print(f"tenant [bold]{t.slug}[/] created")

    run(go)


@tenant_app.command("list")
def tenant_list(as_json: bool = JsonOption) -> None:
    """List tenants."""

    def go() -> None:
        with session_scope(workspace().engine) as s:
            rows = [
                {"slug": t.slug, "name": t.name, "created_at": t.created_at}
                for t in identity.list_tenants(s, local_operator_name())
            ]
        print_json(rows) if as_json else print_rows(rows)

    run(go)


@user_app.command("create")
def user_create(
    username: str,
    role: str = typer.Option("analyst", "--role", help="viewer | analyst | steward | admin"),
    tenant: str | None = TenantOption,
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="read the password from standard input"
    ),
    no_password: bool = typer.Option(False, "--no-password", help="token-only user"),
) -> None:
    """Create a user (asks for a password unless --no-password or --password-stdin)."""

    def go() -> None:
        password: str | None = None
        if password_stdin:
            password = typer.get_text_stream("stdin").readline().rstrip("\n")
        elif not no_password:
            password = os.environ.get("MANARA_NEW_USER_PASSWORD") or getpass.getpass(
                f"password for {username}: "
            )
        ws = workspace()
        with session_scope(ws.engine) as s:
            t = identity.get_tenant(s, tenant or ws.settings.default_tenant)
            identity.create_user(s, t, username, password, identity.parse_role(role), local_operator_name())
        console.print(
            f"user [bold]{username}[/] ({role}) created in tenant {tenant or ws.settings.default_tenant}"
        )

    run(go)


@token_app.command("create")
def token_create(
    name: str = typer.Option("cli token", "--name", help="what the token is for"),
    role: str = typer.Option("analyst", "--role", help="viewer | analyst | steward | admin"),
    user: str | None = typer.Option(None, "--user", help="bind the token to this user"),
    clearance: str | None = typer.Option(
        None,
        "--clearance",
        help="highest classification it may read: public | internal | confidential | secret "
        "(default: internal for viewer/analyst, confidential for steward, secret for admin)",
    ),
    expires_days: float | None = typer.Option(
        90, "--expires-days", help="lifetime in days (0: never expires)"
    ),
    tenant: str | None = TenantOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a token; its secret is printed once and never stored."""

    def go() -> None:
        ws = workspace()
        with session_scope(ws.engine) as s:
            t = identity.get_tenant(s, tenant or ws.settings.default_tenant)
            u = identity.get_user(s, t, user) if user else None
            issued = identity.create_token(
                s,
                t,
                role=identity.parse_role(role),
                name=name,
                actor=local_operator_name(),
                user=u,
                expires_in=timedelta(days=expires_days) if expires_days else None,
                clearance=identity.parse_classification(clearance) if clearance else None,
            )
            info = {
                "id": issued.token.id,
                "tenant": t.slug,
                "role": issued.token.role,
                "clearance": identity.token_clearance(issued.token).value,
                "expires_at": issued.token.expires_at,
                "secret": issued.secret,
            }
        if as_json:
            print_json(info)
        else:
            console.print(
                f"token [bold]{info['id']}[/] ({role}, clearance {info['clearance']}, tenant {info['tenant']}, expires {info['expires_at']})"
            )
            console.print("secret (shown once, store it now):")
            console.print(issued.secret, highlight=False, soft_wrap=True)

    run(go)


@token_app.command("list")
def token_list(tenant: str | None = TenantOption, as_json: bool = JsonOption) -> None:
    """List a tenant's tokens (never their secrets)."""

    def go() -> None:
        ws = workspace()
        with session_scope(ws.engine) as s:
            t = identity.get_tenant(s, tenant or ws.settings.default_tenant)
            rows = [identity.token_info(tok) for tok in identity.list_tokens(s, t, local_operator_name())]
        print_json(rows) if as_json else print_rows(rows)

    run(go)


@token_app.command("revoke")
def token_revoke(token_id: str, tenant: str | None = TenantOption) -> None:
    """Revoke a token at once."""

    def go() -> None:
        ws = workspace()
        with session_scope(ws.engine) as s:
            t = identity.get_tenant(s, tenant or ws.settings.default_tenant)
            identity.revoke_token(s, t, token_id, local_operator_name())
        console.print(f"token [bold]{token_id}[/] revoked")

    run(go)
