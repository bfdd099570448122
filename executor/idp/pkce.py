"""RFC 7636 Proof Key for Code Exchange, S256 only, required for every client (OAuth 2.1 §4.1.1).

- The authorization request "MUST" carry ``code_challenge`` (OAuth 2.1 §4.1.1), and the method
  must be ``S256``: ``plain`` is refused (RFC 9700 §2.1.1: "PKCE challenge method plain
  ... SHOULD NOT be used"; an absent method means ``plain`` per RFC 7636 §4.3, so it is refused too).
- The token request "MUST" carry ``code_verifier``; ``BASE64URL(SHA256(verifier))`` must equal
  the stored challenge (RFC 7636 §4.6), compared in constant time. A mismatch is ``invalid_grant``.
"""

from __future__ import annotations

import hmac
from typing import Any

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge, create_s256_code_challenge
from authlib.oauth2.rfc7636.challenge import CODE_CHALLENGE_PATTERN, CODE_VERIFIER_PATTERN

METHOD = "S256"


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]  # authlib is untyped
    """authlib's ``CodeChallenge`` grant extension, narrowed to required S256."""

    DEFAULT_CODE_CHALLENGE_METHOD = METHOD
    SUPPORTED_CODE_CHALLENGE_METHOD = [METHOD]
    CODE_CHALLENGE_METHODS = {METHOD: lambda verifier, challenge: hmac.compare_digest(
        create_s256_code_challenge(verifier), challenge)}

    def __init__(self) -> None:
        super().__init__(required=True)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        datalist = grant.request.payload.datalist
        challenges, methods = datalist.get("code_challenge", []), datalist.get("code_challenge_method", [])
        if len(challenges) > 1 or len(methods) > 1:
            raise InvalidRequestError("send `code_challenge` and `code_challenge_method` once each")
        if not challenges:
            raise InvalidRequestError("`code_challenge` is required: this server requires PKCE with S256")
        if methods != [METHOD]:
            raise InvalidRequestError("`code_challenge_method` must be `S256`; `plain` is not accepted")
        if not CODE_CHALLENGE_PATTERN.match(challenges[0]):
            raise InvalidRequestError("`code_challenge` must be 43 to 128 characters of [A-Za-z0-9-._~]")

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        verifier = grant.request.form.get("code_verifier")
        if not verifier:
            raise InvalidRequestError("`code_verifier` is required (PKCE)")
        if not CODE_VERIFIER_PATTERN.match(verifier):
            raise InvalidRequestError("`code_verifier` must be 43 to 128 characters of [A-Za-z0-9-._~]")
        code = grant.request.authorization_code
        if not self.CODE_CHALLENGE_METHODS[METHOD](verifier, code.code_challenge):
            raise InvalidGrantError("`code_verifier` does not match the `code_challenge` of the authorization")
