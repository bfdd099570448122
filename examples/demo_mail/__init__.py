"""A demo mail provider: a stand-in for Gmail that speaks OAuth 2.1 and MCP over HTTP.

One process, one port ``P`` on 127.0.0.1 (``python -m examples.demo_mail --port P``):

- an OAuth 2.1 authorization server, issuer ``http://127.0.0.1:P`` (authorization code +
  PKCE with HTML login and consent forms, refresh-token rotation, RFC 7009 revocation);
- an MCP server at ``/mcp`` (tools ``list_messages``, ``read_message``, ``send_reply``) that
  accepts only this server's access tokens, for the token's own user's mailbox;
- test/admin control endpoints (``/_stats``, ``/_revoke_all``, ``/_expire_all``, ``/_mailbox``).

Modules, in the order a request meets them:

``settings``            the configuration (client, redirect URIs, token lifetimes) and fixed demo users
``mailbox``             the mail store: seeded messages per user, list/read/reply
``state``               everything the process remembers, and the optional state file
``tokens``              the grant and token lifecycle: codes, access tokens (JWT), refresh rotation,
                        revocation, verification
``pages``               the HTML of the login, consent and error pages
``login_and_consent``   ``/authorize``: validate the request, log the user in, ask for consent
``token_endpoint``      ``/token`` and ``/revoke``, with client authentication
``metadata``            RFC 8414 and RFC 9728 documents, the JWKS
``mail_tools``          the MCP server and its bearer-token verifier
``control``             ``/_stats`` and the endpoints that simulate provider-side events
``app``                 the ASGI app that puts them on one port
``run``                 start the provider as a subprocess (``start(...)``) for tests and ``interlock demo``
``browser``             play the user's browser through the login and consent forms
``oauth_client``        a minimal OAuth client (PKCE, code exchange, refresh) for tests

Importing this package (or any module in it) has no side effects.
"""

from examples.demo_mail.settings import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    SCOPES,
    USERS,
    ProviderSettings,
)

__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "SCOPES", "USERS", "ProviderSettings"]
