"""RFC 7009 Token Revocation at ``/idp/revoke``.

- Any client may revoke its own tokens; public clients identify themselves by ``client_id``
  (§2.1: the server "verifies whether the token was issued to the client making the
  revocation request").
- Revoking a refresh token revokes its whole family, the access tokens issued from the same
  authorization included (§2.1: the server "SHOULD also invalidate all access tokens based on
  the same authorization grant").
- Revoking an access token adds its ``jti`` to the revoked set the gateway reads on every
  call, so the very next call with it is refused.
- §2.2: an unknown or already invalid token is not an error: the answer is 200 either way.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint

from executor.idp.grants import ANY_AUTH
from executor.idp.introspection import FoundToken, find_token


class TokenRevocation(RevocationEndpoint):  # type: ignore[misc]  # authlib is untyped
    CLIENT_AUTH_METHODS = ANY_AUTH

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return find_token(self.server, token_string)

    def revoke_token(self, token: FoundToken, request: Any) -> None:
        store, now = self.server.store, self.server.now()
        if token.family is not None and token.kind == "refresh_token":
            store.revoke_family(token.family, now)
        elif token.jti is not None:
            store.revoke_access_token(token.jti, token.expires_at)
