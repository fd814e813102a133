"""Access control on every store: passwords, lockout, sessions, API keys, grants, scopes,
identity-provider groups, and the audit log that records each of them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.helpers import event, lines
from tests.web.conftest import FAST_HASHER, PASSWORD, Web, web_config
from tidings.access.control import AccessControl
from tidings.access.roles import Permission, Scope
from tidings.errors import AccessError, ConfigError


def _placements(web: Web) -> None:
    """T1 on the North programme, T2 on the South one."""
    at = "2025-08-06T10:00:00+01:00"
    web.tidings.ingest_lines(
        lines(
            event("n1", "P1", "upsert", 1, at, {"traineeId": "T1", "programme": "North"}),
            event("s1", "P2", "upsert", 1, at, {"traineeId": "T2", "programme": "South"}),
        )
    )


def _actions(web: Web) -> list[tuple[str, str, str]]:
    return [(a.actor, a.action, a.target) for a in reversed(web.access.audit_log(1000))]


def test_a_password_signs_in_and_its_session_lasts_until_it_expires(web: Web) -> None:
    web.user("ann", "support")
    session = web.access.sign_in("ann", PASSWORD)
    assert session.cookie not in repr(session)
    found = web.access.session_principal(session.cookie)
    assert found is not None
    assert found.name == "ann"
    assert found.roles == ("support",)
    assert found.can(Permission.ATTENTION_ACT)
    assert not found.can(Permission.ACCESS_MANAGE)
    web.clock.now += timedelta(hours=web.tidings.config.serve.session_hours, seconds=1)
    assert web.access.session_principal(session.cookie) is None
    assert ("user:ann", "signin", "user:ann") in _actions(web)


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(web: Web) -> None:
    web.user("ann", "support")
    with pytest.raises(AccessError) as wrong:
        web.access.sign_in("ann", "not the password at all")
    with pytest.raises(AccessError) as unknown:
        web.access.sign_in("nobody", "not the password at all")
    assert str(wrong.value) == str(unknown.value)
    assert ("user:ann", "signin.failed", "user:ann") in _actions(web)


def test_repeated_failures_lock_the_account_for_a_while(web: Web) -> None:
    web.user("ann", "support")
    limit = web.tidings.config.serve.lockout_after
    for _ in range(limit):
        with pytest.raises(AccessError):
            web.access.sign_in("ann", "guessing wrong again")
    with pytest.raises(AccessError, match="locked"):
        web.access.sign_in("ann", PASSWORD)
    assert ("user:ann", "signin.lockout", "user:ann") in _actions(web)
    web.clock.now += timedelta(minutes=web.tidings.config.serve.lockout_minutes, seconds=1)
    assert web.access.sign_in("ann", PASSWORD).principal.name == "ann"


def test_signing_out_and_disabling_end_sessions(web: Web) -> None:
    web.user("ann", "admin")
    first = web.access.sign_in("ann", PASSWORD)
    second = web.access.sign_in("ann", PASSWORD)
    web.access.sign_out(first.principal)
    assert web.access.session_principal(first.cookie) is None
    assert web.access.session_principal(second.cookie) is not None
    web.access.set_active("ann", False, by="test")
    assert web.access.session_principal(second.cookie) is None
    with pytest.raises(AccessError):
        web.access.sign_in("ann", PASSWORD)


def test_short_passwords_and_taken_usernames_are_refused(web: Web) -> None:
    with pytest.raises(AccessError, match="12 characters"):
        web.access.add_user("ann", "short", by="test")
    web.user("ann", "admin")
    with pytest.raises(AccessError, match="exists already"):
        web.access.add_user("ann", PASSWORD, by="test")


def test_an_api_key_works_until_revoked_and_only_its_hash_is_kept(web: Web) -> None:
    made = web.access.create_key("feed", ["ingest"], by="test")
    assert made.token not in repr(made)
    principal = web.access.key_principal(made.token)
    assert principal is not None
    assert principal.can(Permission.EVENTS_PUSH)
    assert not principal.can(Permission.PEOPLE_READ)
    assert web.access.key_principal(made.token[:-2] + "xx") is None
    assert web.access.key_principal("tdk_nothing_here") is None
    secret = made.token.rsplit("_", 1)[1]
    stored = web.access.keys()
    assert all(secret not in (k.secret_hash + k.prefix) for k in stored)
    web.access.revoke_key(made.id, by="test")
    assert web.access.key_principal(made.token) is None
    actions = {a for _, a, _ in _actions(web)}
    assert {"key.create", "key.revoke"} <= actions


def test_grants_and_revocations_are_audited_and_revoked_grants_give_nothing(web: Web) -> None:
    web.user("ann")
    grant_id = web.access.grant(role="auditor", username="ann", by="admin:root")
    session = web.access.sign_in("ann", PASSWORD)
    principal = web.access.session_principal(session.cookie)
    assert principal is not None
    assert principal.can(Permission.AUDIT_READ)
    web.access.revoke(grant_id, by="admin:root")
    principal = web.access.session_principal(session.cookie)
    assert principal is not None
    assert not principal.can(Permission.AUDIT_READ)
    assert ("admin:root", "grant", "user:ann") in _actions(web)
    assert ("admin:root", "revoke", "user:ann") in _actions(web)
    with pytest.raises(AccessError):
        web.access.revoke(grant_id, by="admin:root")  # already revoked


def test_roles_and_scopes_are_checked_when_granted(web: Web) -> None:
    web.user("ann")
    with pytest.raises(AccessError, match="not a role"):
        web.access.grant(role="superuser", username="ann", by="test")
    with pytest.raises(AccessError, match="needs a scope"):
        web.access.grant(role="manager", username="ann", by="test")
    with pytest.raises(AccessError, match="not a scope"):
        web.access.grant(role="manager", username="ann", by="test", scope=Scope("region", "North"))
    with pytest.raises(AccessError, match="only managers"):
        web.access.grant(
            role="support", username="ann", by="test", scope=Scope("programme", "North")
        )


def test_a_manager_sees_the_people_in_their_scope_and_the_access_page_says_why(
    web: Web,
) -> None:
    _placements(web)
    web.user("root", "admin")
    web.user("north", "manager", scope="programme=North")
    session = web.access.sign_in("north", PASSWORD)
    north = web.access.session_principal(session.cookie)
    assert north is not None
    assert north.scopes_for(Permission.PEOPLE_READ) == {Scope("programme", "North")}
    assert web.access.may_see_person(north, "T1")
    assert not web.access.may_see_person(north, "T2")
    assert web.access.people_in([Scope("programme", "North")]) == {"T1"}

    seen_t1 = {(s.kind, s.name): [g.why() for g in s.grants] for s in web.access.who_can_see("T1")}
    assert seen_t1 == {
        ("user", "north"): ["manager in programme=North granted by test"],
        ("user", "root"): ["admin granted by test"],
    }
    assert {s.name for s in web.access.who_can_see("T2")} == {"root"}


def test_a_placement_moving_programme_moves_the_person_out_of_scope(web: Web) -> None:
    _placements(web)
    web.tidings.ingest_lines(
        lines(
            event(
                "n2",
                "P1",
                "patch",
                2,
                "2025-08-06T11:00:00+01:00",
                {"programme": "South"},
            )
        )
    )
    assert web.access.people_in([Scope("programme", "North")]) == set()
    assert web.access.people_in([Scope("programme", "South")]) == {"T1", "T2"}


def test_identity_provider_groups_become_grants_and_leaving_a_group_revokes(
    store_url: str, web: Web
) -> None:
    config = web_config(
        store_url,
        25,
        access={
            "scopes": {"programme": {"entity": "Placement", "field": "programme"}},
            "oidc": {
                "issuer": "https://login.example.org",
                "client_id": "tidings",
                "groups": {
                    "tidings-support": {"role": "support"},
                    "tpd-north": {"role": "manager", "scope": "programme=North"},
                },
            },
        },
    )
    access = AccessControl(config, web.tidings.store, web.clock, hasher=FAST_HASHER)
    user = access.oidc_user("kim", "Kim", ["tidings-support", "tpd-north", "staff"])
    grants = {(g.role, g.scope_value, g.source) for g in access.grants_of_user(user.id)}
    assert grants == {
        ("support", None, "oidc:tidings-support"),
        ("manager", "North", "oidc:tpd-north"),
    }
    access.oidc_user("kim", "Kim", ["tpd-north"])
    grants = {(g.role, g.source) for g in access.grants_of_user(user.id)}
    assert grants == {("manager", "oidc:tpd-north")}
    revoked = [g for g in access.grants_of_user(user.id, include_revoked=True) if g.revoked_us]
    assert [(g.role, g.revoked_by) for g in revoked] == [("support", "oidc")]
    with pytest.raises(AccessError, match="none of the groups"):
        access.oidc_user("lee", "Lee", ["staff"])


def test_a_scope_must_name_a_declared_field(store_url: str) -> None:
    with pytest.raises(ConfigError, match=r"access\.scopes\.programme\.field"):
        web_config(
            store_url,
            25,
            access={"scopes": {"programme": {"entity": "Placement", "field": "nope"}}},
        )
