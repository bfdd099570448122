"""RFC 8707 Resource Indicators: the ``resource`` parameter names the gateway a token is for.

The embedded issuer's resources are the gateways' resource URIs, ``{public_url}/mcp/{gateway}``
(the audience the gateway checks). A token is for exactly one of them: its ``aud``.

- RFC 8707 §2: "the authorization server ... SHOULD audience-restrict issued access tokens to
  the resource(s) indicated"; an unknown, missing or malformed resource is ``invalid_target``.
- §2.2: at the token endpoint a client may repeat the resource it was authorized for; it cannot
  ask for another (the code's or refresh token's resource binds it).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from executor.idp.errors import InvalidTargetError, printable


def requested_resource(
    datalist: Mapping[str, Sequence[str]], known: Collection[str], *, bound: str | None = None,
    example: str | None = None,
) -> str:
    """The one resource of this request. ``bound``: the resource the grant was made for (then
    ``resource`` may be omitted, or must repeat it). Raises ``InvalidTargetError``."""
    values = list(datalist.get("resource", []))
    if len(values) > 1:
        raise InvalidTargetError("ask for one `resource` (one gateway) per token")
    if not values:
        if bound is not None:
            return _known(bound, known, example)
        hint = f", e.g. `{example}`" if example else ""
        raise InvalidTargetError(f"`resource` is required: the URL of the gateway the token is for{hint}")
    if bound is not None and values[0] != bound:
        raise InvalidTargetError("`resource` must be the one this authorization was granted for")
    return _known(values[0], known, example)


def _known(resource: str, known: Collection[str], example: str | None) -> str:
    if resource in known:
        return resource
    hint = f"; gateways are at `{example.rsplit('/', 1)[0]}/<gateway>`" if example else ""
    raise InvalidTargetError(f"`{printable(resource)}` is not a gateway of this server{hint}")

