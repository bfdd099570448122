"""A demo billing upstream for `skills/issue-credit.yaml`: an MCP server over streamable HTTP.

    python -m examples.demo_billing --port P

Tools: `lookup_customer(email)` (read-only) and `issue_credit(customer_id, amount_cents, reason)`
(destructive: it moves money, so Interlock's policy rules can demand a step-up for it).
`GET /_stats` counts calls, so tests can prove what ran. In memory; no authentication (it
stands for an internal service reached only through the gateway).
"""

from __future__ import annotations

import argparse
import secrets
from collections import Counter

import mcp.types as types
from mcp.server import MCPServer
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

CUSTOMERS = {
    "ada@example.com": {"id": "cus_ada", "status": "active"},
    "bob@example.com": {"id": "cus_bob", "status": "suspended"},
}


class Customer(BaseModel):
    id: str
    email: str
    status: str


class Credit(BaseModel):
    credit_id: str
    customer_id: str
    amount_cents: int
    reason: str


def build() -> MCPServer:
    server = MCPServer("demo-billing")
    calls: Counter[str] = Counter()
    credits: list[Credit] = []

    @server.tool(annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False))
    def lookup_customer(email: str) -> Customer:
        """Find a customer's billing account by email."""
        calls["lookup_customer"] += 1
        found = CUSTOMERS.get(email.lower())
        if found is None:
            raise ValueError(f"no customer with email {email}")
        return Customer(id=found["id"], email=email.lower(), status=found["status"])

    @server.tool(annotations=types.ToolAnnotations(destructive_hint=True, idempotent_hint=False,
                                                   open_world_hint=False))
    def issue_credit(customer_id: str, amount_cents: int, reason: str) -> Credit:
        """Credit a customer's account (moves money)."""
        calls["issue_credit"] += 1
        if amount_cents <= 0:
            raise ValueError("amount_cents must be positive")
        credit = Credit(credit_id=f"cr_{secrets.token_hex(4)}", customer_id=customer_id,
                        amount_cents=amount_cents, reason=reason)
        credits.append(credit)
        return credit

    @server.custom_route("/_stats", methods=["GET"])  # type: ignore[untyped-decorator]
    async def stats(_: Request) -> JSONResponse:
        return JSONResponse({"calls": dict(calls), "credits": [c.model_dump() for c in credits]})

    return server


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = build().streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
