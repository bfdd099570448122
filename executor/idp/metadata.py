"""RFC 8414 Authorization Server Metadata of the embedded issuer.

The issuer identifier is ``{public_url}/idp``. RFC 8414 §3.1 puts the document at
``/.well-known/oauth-authorization-server/idp`` (the well-known segment inserted before the
issuer's path); OpenID-style clients look at ``/idp/.well-known/openid-configuration``. Both
serve this document (no ID tokens are issued: it is not an OpenID provider).
"""

from __future__ import annotations

from typing import Any

from executor.idp.grants import ANY_AUTH, SECRET_AUTH
from executor.idp.keys import SIGNING_ALG
from executor.idp.pkce import METHOD


def issuer_metadata(issuer: str, scopes: list[str], *, client_metadata_documents: bool) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ANY_AUTH,
        "revocation_endpoint_auth_methods_supported": ANY_AUTH,
        "introspection_endpoint_auth_methods_supported": SECRET_AUTH,
        "code_challenge_methods_supported": [METHOD],
        # RFC 9068 §2.1 tokens, signed with:
        "access_token_signing_alg_values_supported": [SIGNING_ALG],
        # RFC 9207 §3: the authorization response carries `iss`.
        "authorization_response_iss_parameter_supported": True,
        # draft-ietf-oauth-client-id-metadata-document §5: an https URL may be the client_id.
        "client_id_metadata_document_supported": client_metadata_documents,
    }
