"""Identity-provider presets: how each issuer's claim shapes map to (agent, user, permissions).

Interlock does not invent a policy silo: the user side of the decision reads the
permissions the organisation already assigns in its identity provider. Each preset
normalises them to strings the config's `user_grants` name:

    role:<name>          an app role / realm role (Keycloak client roles: role:<client>/<name>)
    group:<name>         a group membership
    permission:<name>    a Salesforce custom permission or permission set

| preset     | user           | agent           | permissions                                   | scopes |
|------------|----------------|-----------------|-----------------------------------------------|--------|
| generic    | sub            | client_id, azp  | roles, groups, permissions                    | scope  |
| entra      | oid (else sub) | azp, appid      | roles, groups                                 | scp    |
| okta       | uid (else sub) | cid, client_id  | groups                                        | scp    |
| keycloak   | sub            | azp, client_id  | realm_access.roles, resource_access.<c>.roles | scope  |
| salesforce | sub            | client_id, azp  | custom_permissions, permission_sets           | scope  |

RFC 8693 delegation, for every preset: when the token carries `act`, the agent is the
*outermost* actor's `sub` (§4.1: only the top-level `act` says who is acting now; nested
`act` values record earlier actors and are informational), and the user is `sub`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from executor.errors import AuthenticationError
from executor.principal import Principal, User


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _first_string(claims: dict[str, Any], names: Iterable[str]) -> str | None:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def scopes(claims: dict[str, Any]) -> frozenset[str]:
    # RFC 9068 §2.2.3: `scope` is a space-separated string; Entra and Okta use `scp`, a string or a list.
    value = claims["scope"] if "scope" in claims else claims.get("scp", "")
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise AuthenticationError("token has an invalid `scope` claim")


def _generic(claims: dict[str, Any]) -> set[str]:
    return ({f"role:{r}" for r in _strings(claims.get("roles"))}
            | {f"group:{g}" for g in _strings(claims.get("groups"))}
            | {f"permission:{p}" for p in _strings(claims.get("permissions"))})


def _entra(claims: dict[str, Any]) -> set[str]:
    return {f"role:{r}" for r in _strings(claims.get("roles"))} | {f"group:{g}" for g in _strings(claims.get("groups"))}


def _okta(claims: dict[str, Any]) -> set[str]:
    return {f"group:{g}" for g in _strings(claims.get("groups"))}


def _keycloak(claims: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    realm = claims.get("realm_access")
    if isinstance(realm, dict):
        out |= {f"role:{r}" for r in _strings(realm.get("roles"))}
    resources = claims.get("resource_access")
    if isinstance(resources, dict):
        for client, access in resources.items():
            if isinstance(access, dict):
                out |= {f"role:{client}/{r}" for r in _strings(access.get("roles"))}
    return out | {f"group:{g.lstrip('/')}" for g in _strings(claims.get("groups"))}


def _salesforce(claims: dict[str, Any]) -> set[str]:
    custom = claims.get("custom_permissions")
    # Salesforce delivers custom permissions as {name: true|false}; some setups send a list.
    names = [k for k, v in custom.items() if v is True] if isinstance(custom, dict) else _strings(custom)
    return {f"permission:{n}" for n in [*names, *_strings(claims.get("permission_sets"))]}


_PRESETS = {
    "generic": (("sub",), ("client_id", "azp"), _generic),
    "entra": (("oid", "sub"), ("azp", "appid"), _entra),
    "okta": (("uid", "sub"), ("cid", "client_id"), _okta),
    "keycloak": (("sub",), ("azp", "client_id"), _keycloak),
    "salesforce": (("sub",), ("client_id", "azp"), _salesforce),
}

PRESETS = frozenset(_PRESETS)


def principal_from_claims(preset: str, issuer: str, claims: dict[str, Any]) -> Principal:
    """Map verified claims to a principal. Raises AuthenticationError when a required part is missing."""
    user_claims, agent_claims, permissions = _PRESETS[preset]
    subject = _first_string(claims, user_claims)
    if subject is None:
        raise AuthenticationError("token is missing the `sub` claim")
    act = claims.get("act")
    if act is not None:
        actor = act.get("sub") if isinstance(act, dict) else None
        if not isinstance(actor, str) or not actor:
            raise AuthenticationError("token has an invalid `act` claim")
        agent: str | None = actor
    else:
        agent = _first_string(claims, agent_claims)
    if agent is None:
        names = " or ".join(f"`{n}`" for n in agent_claims)
        raise AuthenticationError(f"token does not name the client ({names})")
    token_id = claims.get("jti")
    return Principal(
        agent=agent,
        user=User(issuer, subject),
        scopes=scopes(claims),
        permissions=frozenset(permissions(claims)),
        claims=claims,
        token_id=token_id if isinstance(token_id, str) else None,
    )
