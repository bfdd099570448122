"""Test/admin-only endpoints: counters, and provider-side events a test can trigger.

``GET  /_stats``                      counters (see :func:`stats`)
``POST /_revoke_all?user=alice``      the user withdraws every client's access at the provider:
                                      all their grants, refresh and access tokens are revoked
``POST /_expire_all[?user=alice]``    every current access token (of that user) is expired now
``GET  /_mailbox?user=alice``         the user's whole mailbox, oldest first (to check effects)

They are unauthenticated: the provider listens on 127.0.0.1 only and is a demo.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from examples.demo_mail.state import ProviderState
from examples.demo_mail.tokens import Tokens


def stats(state: ProviderState) -> dict[str, Any]:
    """Counters since the process started, plus what is live right now."""
    now = time.time()
    live_grants = [g for g in state.grants.values() if not g.revoked]
    live_access = [
        r for r in state.access_tokens.values()
        if not r.revoked and r.expires_at > now and r.grant_id in {g.id for g in live_grants}
    ]
    counters = {
        name: state.stats[name] for name in (
            "authorization_requests", "authorization_errors", "logins", "logins_failed", "consents_allowed",
            "consents_denied", "codes_issued", "code_exchanges", "code_reuse_detected", "pkce_failures",
            "access_tokens_issued", "refreshes", "refresh_reuse_detected", "token_errors", "client_auth_failures",
            "revocation_requests", "revocations", "user_revocations", "forced_expiries", "token_rejections",
            "mcp_unauthorized", "mcp_scope_denials", "sends",
        )
    }
    return {
        **counters,
        "mcp_calls": {name: state.mcp_calls[name] for name in ("list_messages", "read_message", "send_reply")},
        "live_grants": len(live_grants),
        "live_access_tokens": len(live_access),
    }


def control_routes(state: ProviderState, tokens: Tokens) -> list[Route]:
    def user_param(request: Request, *, required: bool) -> str | Response | None:
        user = request.query_params.get("user")
        if user is None:
            return JSONResponse({"error": "user is required"}, status_code=400) if required else None
        if user not in state.mailboxes:
            return JSONResponse({"error": f"no such user: {user}"}, status_code=404)
        return user

    async def get_stats(request: Request) -> Response:
        return JSONResponse(stats(state))

    async def revoke_all(request: Request) -> Response:
        user = user_param(request, required=True)
        if not isinstance(user, str):
            return user or JSONResponse({"error": "user is required"}, status_code=400)
        return JSONResponse({"user": user, "revoked_grants": tokens.revoke_user(user)})

    async def expire_all(request: Request) -> Response:
        user = user_param(request, required=False)
        if isinstance(user, Response):
            return user
        return JSONResponse({"user": user, "expired_access_tokens": tokens.expire_all(user)})

    async def mailbox(request: Request) -> Response:
        user = user_param(request, required=True)
        if not isinstance(user, str):
            return user or JSONResponse({"error": "user is required"}, status_code=400)
        box = state.mailbox(user)
        return JSONResponse({
            "user": user, "address": box.address,
            "messages": [{**m.full(), "to": m.to} for m in box.messages],
        })

    return [
        Route("/_stats", get_stats, methods=["GET"]),
        Route("/_revoke_all", revoke_all, methods=["POST"]),
        Route("/_expire_all", expire_all, methods=["POST"]),
        Route("/_mailbox", mailbox, methods=["GET"]),
    ]
