"""``interlock token --user U --agent A``: an access token minted without a browser, for development.

Refused unless ``server.dev_mode`` is on and the embedded issuer is enabled. The token is a
normal embedded-issuer token (same key, same checks at the gateway, revocable and
introspectable), for an existing user, on behalf of agent ``A`` (any client id), for one gateway.
"""

from __future__ import annotations

import time

from executor.idp.errors import IssuerError
from executor.idp.issuer import issuer_url
from executor.idp.keys import KeyRing
from executor.idp.tokens import Grant, TokenMinter
from executor.idp.users import Users
from executor.resource_metadata import resource_uri
from registry.config import Config
from registry.store import Store


def mint_dev_token(store: Store, config: Config, *, user: str, agent: str, scopes: list[str], gateway: str) -> str:
    """An access token for ``user`` acting through ``agent`` on ``gateway``; raises ``IssuerError``."""
    embedded = config.identity.embedded
    if not config.server.dev_mode:
        raise IssuerError("dev tokens are only minted with `server.dev_mode: true`; "
                          "outside dev mode, sign in through the client's authorization flow")
    if not embedded.enabled:
        raise IssuerError("the embedded issuer is not enabled; set `identity.embedded.enabled: true`")
    account = Users(embedded.users).get(user)
    if account is None:
        raise IssuerError(f"no user `{user}` in `identity.embedded.users`")
    if not agent:
        raise IssuerError("give the agent (the client id the token is for)")
    gateways = sorted(g.name for g in store.list_gateways())
    if gateway not in gateways:
        known = ", ".join(f"`{g}`" for g in gateways) or "none"
        raise IssuerError(f"no gateway `{gateway}`; gateways: {known}")
    unknown = sorted(set(scopes) - set(embedded.scopes))
    if unknown:
        raise IssuerError(f"unknown scope `{unknown[0]}`; `identity.embedded.scopes` lists the known ones")
    minter = TokenMinter(issuer_url(config), KeyRing(store), access_ttl=embedded.access_token_ttl_seconds,
                         refresh_ttl=embedded.refresh_token_ttl_seconds)
    issued = minter.mint(Grant(client_id=agent, subject=account.username, scope=" ".join(dict.fromkeys(scopes)),
                               resource=resource_uri(config.server.base_url(), gateway), family=None,
                               username=account.username, claims=account.claims), refresh=False)
    store.record_tokens(issued.access, None, int(time.time()))
    token: str = issued.response["access_token"]
    return token
