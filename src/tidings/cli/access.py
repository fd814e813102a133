"""``tidings users``, ``tidings keys`` and ``tidings access``: staff accounts, API keys, their
grants, and who can see what. Every change is audited with the acting account
(``cli:<operating-system user>``)."""

from __future__ import annotations

import getpass
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from tidings.access.control import AccessControl
from tidings.access.roles import ROLE_SUMMARY, Grant, Scope
from tidings.cli.common import ConfigOption, json_option, open_app, print_json
from tidings.store.records import GrantRecord
from tidings.terminal import literal, out

RoleOption = Annotated[
    list[str],
    typer.Option("--role", "-r", help=f"A role (repeatable): {', '.join(ROLE_SUMMARY)}."),
]
ScopeOption = Annotated[
    str | None,
    typer.Option(help="A manager's scope, NAME=VALUE of an [access.scopes] entry."),
]


def register(app: typer.Typer) -> None:
    users = typer.Typer(help="Staff accounts for the console, and their roles.")
    users.command("add")(users_add)
    users.command("list")(users_list)
    users.command("grant")(users_grant)
    users.command("revoke")(users_revoke)
    users.command("password")(users_password)
    users.command("disable")(users_disable)
    users.command("enable")(users_enable)
    app.add_typer(users, name="users")
    keys = typer.Typer(help="API keys for other systems (shown once, stored hashed).")
    keys.command("create")(keys_create)
    keys.command("list")(keys_list)
    keys.command("revoke")(keys_revoke)
    app.add_typer(keys, name="keys")
    access = typer.Typer(help="Who can see what, and why; the audit log.")
    access.command("roles")(access_roles)
    access.command("who-can-see")(access_who_can_see)
    access.command("log")(access_log)
    app.add_typer(access, name="access")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _scope(text: str | None) -> Scope | None:
    if text is None:
        return None
    try:
        return Scope.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scope") from None


def _when(us: int | None) -> str | None:
    return None if us is None else datetime.fromtimestamp(us / 1e6, UTC).isoformat()


def _grant_json(g: GrantRecord) -> dict[str, object]:
    return {
        "id": g.id,
        "role": g.role,
        "scope": f"{g.scope_name}={g.scope_value}" if g.scope_name else None,
        "source": g.source,
        "granted_by": g.granted_by,
        "granted": _when(g.granted_us),
        "revoked": _when(g.revoked_us),
        "revoked_by": g.revoked_by,
    }


@contextmanager
def _access(config: ConfigOption) -> Iterator[AccessControl]:
    with open_app(config) as tidings:
        yield AccessControl(tidings.config, tidings.store, tidings.clock)


def _new_password(generate: bool) -> str:
    """A password from standard input when it is not a terminal, a prompt otherwise, or a
    random one (printed once) with ``--generate``."""
    if generate:
        return secrets.token_urlsafe(18)
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def users_add(
    username: str,
    role: RoleOption,
    scope: ScopeOption = None,
    name: Annotated[str | None, typer.Option(help="How the console names them.")] = None,
    generate: Annotated[
        bool, typer.Option("--generate", help="Make a random password and print it once.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Add a staff user with a local password (read from standard input, or asked for) and
    one or more roles. A manager needs --scope."""
    password = _new_password(generate)
    with _access(config) as control:
        by = _actor()
        for r in role:
            control.check_grant(r, _scope(scope) if r == "manager" else None)
        control.add_user(username, password, by=by, display_name=name)
        for r in role:
            control.grant(
                role=r, username=username, by=by, scope=_scope(scope) if r == "manager" else None
            )
    out.print(literal(f"Added {username} ({', '.join(role)})."))
    if generate:
        out.print(literal(f"Password (shown once): {password}"))


def users_list(
    as_json: Annotated[
        bool,
        json_option(
            '[{"username", "name", "source", "active", "locked_until", "last_active", '
            '"grants": [{"id", "role", "scope", "source", "granted_by", "granted", "revoked", '
            '"revoked_by"}]}]'
        ),
    ] = False,
    revoked: Annotated[bool, typer.Option("--revoked", help="Show revoked grants too.")] = False,
    config: ConfigOption = None,
) -> None:
    """Every staff user, their roles and scopes, and where each grant came from."""
    with _access(config) as control:
        users = control.users()
        grants = {u.id: control.grants_of_user(u.id, include_revoked=revoked) for u in users}
    if as_json:
        print_json(
            [
                {
                    "username": u.username,
                    "name": u.display_name,
                    "source": u.source,
                    "active": u.active,
                    "locked_until": _when(u.locked_until_us),
                    "last_active": _when(u.last_active_us),
                    "grants": [_grant_json(g) for g in grants[u.id]],
                }
                for u in users
            ]
        )
        return
    table = Table(title="Staff users")
    for column in ("user", "source", "grants (id: role, why)", "last active"):
        table.add_column(column)
    for u in users:
        lines = [
            f"{g.id}: {_why(g)}" + (" (revoked)" if g.revoked_us is not None else "")
            for g in grants[u.id]
        ]
        state = "" if u.active else " (disabled)"
        table.add_row(
            literal(u.username + state),
            u.source,
            literal("\n".join(lines) or "no roles"),
            (_when(u.last_active_us) or "never")[:16],
        )
    out.print(table)


def _why(g: GrantRecord) -> str:
    scope = Scope(g.scope_name, g.scope_value) if g.scope_name and g.scope_value else None
    when = (_when(g.granted_us) or "")[:10]
    return f"{Grant(g.id, g.role, scope, g.source, g.granted_by, g.granted_us).why()} on {when}"


def users_grant(
    username: str,
    role: Annotated[str, typer.Argument(help=f"One of: {', '.join(ROLE_SUMMARY)}.")],
    scope: ScopeOption = None,
    config: ConfigOption = None,
) -> None:
    """Give a user a role (a manager's within --scope)."""
    with _access(config) as control:
        grant_id = control.grant(role=role, username=username, by=_actor(), scope=_scope(scope))
    out.print(literal(f"Granted {role} to {username} (grant {grant_id})."))


def users_revoke(
    grant_id: Annotated[int, typer.Argument(min=1, help="The grant's id (tidings users list).")],
    config: ConfigOption = None,
) -> None:
    """Revoke a grant (it stays listed, struck out, with who revoked it)."""
    with _access(config) as control:
        control.revoke(grant_id, by=_actor())
    out.print(f"Revoked grant {grant_id}.")


def users_password(
    username: str,
    generate: Annotated[
        bool, typer.Option("--generate", help="Make a random password and print it once.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Set a user's password (and unlock them); their sessions end."""
    password = _new_password(generate)
    with _access(config) as control:
        control.set_password(username, password, by=_actor())
    out.print(literal(f"Password of {username} changed."))
    if generate:
        out.print(literal(f"Password (shown once): {password}"))


def users_disable(username: str, config: ConfigOption = None) -> None:
    """Stop a user signing in; their sessions end."""
    with _access(config) as control:
        control.set_active(username, False, by=_actor())
    out.print(literal(f"Disabled {username}."))


def users_enable(username: str, config: ConfigOption = None) -> None:
    """Let a disabled user sign in again."""
    with _access(config) as control:
        control.set_active(username, True, by=_actor())
    out.print(literal(f"Enabled {username}."))


def keys_create(
    name: str,
    role: RoleOption,
    scope: ScopeOption = None,
    as_json: Annotated[bool, json_option('{"id", "name", "roles", "token"}')] = False,
    config: ConfigOption = None,
) -> None:
    """Make an API key with one or more roles. Its token is printed this once; only a hash
    is kept. Send it as 'Authorization: Bearer <token>'."""
    with _access(config) as control:
        made = control.create_key(name, role, by=_actor(), scope=_scope(scope))
    if as_json:
        print_json({"id": made.id, "name": made.name, "roles": sorted(role), "token": made.token})
        return
    out.print(literal(f"API key {made.id} ({name}): {', '.join(sorted(role))}"))
    out.print(literal(made.token))
    out.print("Keep it now: it is not shown again.")


def keys_list(
    as_json: Annotated[
        bool,
        json_option(
            '[{"id", "name", "created_by", "created", "last_used", "revoked", "grants": [<grant>]}]'
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Every API key (never its secret), its roles and when it was last used."""
    with _access(config) as control:
        keys = control.keys()
        by_key: dict[int, list[GrantRecord]] = {}
        for g in control.all_grants(include_revoked=False):
            if g.key_id is not None:
                by_key.setdefault(g.key_id, []).append(g)
    if as_json:
        print_json(
            [
                {
                    "id": k.id,
                    "name": k.name,
                    "created_by": k.created_by,
                    "created": _when(k.created_us),
                    "last_used": _when(k.last_used_us),
                    "revoked": _when(k.revoked_us),
                    "grants": [_grant_json(g) for g in by_key.get(k.id, [])],
                }
                for k in keys
            ]
        )
        return
    table = Table(title="API keys")
    for column in ("id", "name", "roles", "created by", "last used", "revoked"):
        table.add_column(column)
    for k in keys:
        table.add_row(
            str(k.id),
            literal(k.name),
            literal(", ".join(_why(g) for g in by_key.get(k.id, []))),
            literal(k.created_by),
            (_when(k.last_used_us) or "never")[:16],
            (_when(k.revoked_us) or "")[:16],
        )
    out.print(table)


def keys_revoke(
    key_id: Annotated[int, typer.Argument(min=1, help="The key's id (tidings keys list).")],
    config: ConfigOption = None,
) -> None:
    """Revoke an API key: it stops working at once."""
    with _access(config) as control:
        control.revoke_key(key_id, by=_actor())
    out.print(f"Revoked API key {key_id}.")


def access_roles(
    as_json: Annotated[bool, json_option('[{"role", "summary", "permissions"}]')] = False,
) -> None:
    """The roles and the permissions each carries."""
    from tidings.access.roles import ROLE_PERMISSIONS

    rows = [
        {"role": r, "summary": ROLE_SUMMARY[r], "permissions": sorted(p.value for p in perms)}
        for r, perms in ROLE_PERMISSIONS.items()
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title="Roles")
    for column in ("role", "what it may do", "permissions"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row["role"]), str(row["summary"]), "\n".join(row["permissions"]))
    out.print(table)


def access_who_can_see(
    recipient: str,
    as_json: Annotated[
        bool, json_option('[{"kind", "name", "last_active", "grants": [{"role", "scope", "why"}]}]')
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Which staff users and API keys can see a person's data, and through which grant.
    The question is audited."""
    with _access(config) as control:
        seers = control.who_can_see(recipient)
        control.audit_as(_actor(), "access.who-can-see", f"person:{recipient}")
    if as_json:
        print_json(
            [
                {
                    "kind": s.kind,
                    "name": s.name,
                    "last_active": _when(s.last_active_us),
                    "grants": [
                        {"role": g.role, "scope": str(g.scope) if g.scope else None, "why": g.why()}
                        for g in s.grants
                    ],
                }
                for s in seers
            ]
        )
        return
    table = Table(title=literal(f"Who can see {recipient}"))
    for column in ("who", "through", "last active"):
        table.add_column(column)
    for s in seers:
        table.add_row(
            literal(f"{s.kind} {s.name}"),
            literal("\n".join(g.why() for g in s.grants)),
            (_when(s.last_active_us) or "never")[:16],
        )
    out.print(table)
    if not seers:
        out.print("No staff user or key can see this person.")


def access_log(
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 50,
    as_json: Annotated[
        bool, json_option('[{"id", "at", "actor", "action", "target", "detail"}]')
    ] = False,
    config: ConfigOption = None,
) -> None:
    """The audit log, newest first: admin actions, grants and revocations, sign-ins, and
    every view of a person's data by staff."""
    with _access(config) as control:
        entries = control.audit_log(limit)
    if as_json:
        print_json(
            [
                {
                    "id": a.id,
                    "at": _when(a.at_us),
                    "actor": a.actor,
                    "action": a.action,
                    "target": a.target,
                    "detail": a.detail,
                }
                for a in entries
            ]
        )
        return
    table = Table(title="Audit log")
    for column in ("at", "actor", "action", "target"):
        table.add_column(column)
    for a in entries:
        table.add_row((_when(a.at_us) or "")[:19], literal(a.actor), a.action, literal(a.target))
    out.print(table)
