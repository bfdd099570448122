"""``interlock demo``: the live revocation scenario, end to end, on this machine.

Starts the gateway (with the embedded issuer) and the demo mail provider on free loopback
ports with a temporary store, then plays it with a scripted agent (the `mcp` SDK client) and
a scripted user (a browser over plain HTTP):

    1 connect        the agent signs in its user and lists the gateway's tools
    2 authorize      its first mail call gets an authorization request; the user connects the mailbox
    3 read           the agent reads Nate's email
    4 revoke         the admin revokes that agent's connection for that user and provider
    5 blocked        the agent's next try does not reach the mailbox: a new authorization request
    6 re-authorize   the user connects again
    7 read again     and only now does the call go through

Exit status 0 only if every step behaved as it should.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx2
import mcp.types as types
import yaml
from mcp import Client, MCPError, UrlElicitationRequiredError
from mcp.client.streamable_http import streamable_http_client

from examples.demo_mail import run as demo_mail
from examples.processes import stop
from examples.scripted_user import browse
from executor.idp.passwords import hash_password
from executor.sealing import new_key_line

AGENT = "demo-agent"
USER, USER_PASSWORD = "alice", "alice-demo-password"
GATEWAY_USERS = {USER: USER_PASSWORD, "bob": "bob-demo-password"}
"""Users of the gateway's embedded issuer (their mailboxes at the provider have their own passwords)."""
MAIL_PASSWORD = "alice-password"  # alice's password at the demo mail provider (examples/demo_mail)
PROVIDER = "demo-mail"


class DemoFailed(Exception):
    """A step did not behave as it should."""


@dataclass
class Stage:
    workdir: Path
    gateway: str
    mail: demo_mail.DemoMail
    env: dict[str, str]

    @property
    def mcp_url(self) -> str:
        return f"{self.gateway}/mcp/default"


def _free_port() -> int:
    return demo_mail.free_port()


def _config(workdir: Path, gw_port: int, mail: demo_mail.DemoMail, agents: tuple[str, ...]) -> dict[str, Any]:
    gateway = f"http://127.0.0.1:{gw_port}"
    return {
        "server": {"host": "127.0.0.1", "port": gw_port, "database": str(workdir / "interlock.db"),
                   "dev_mode": True, "sync_interval_seconds": 0},
        "identity": {
            "embedded": {"enabled": True,
                         "users": [{"username": u, "password_hash": hash_password(p),
                                    "claims": {"roles": ["mail-user"]}} for u, p in GATEWAY_USERS.items()],
                         "clients": [{"client_id": a, "name": a, "redirect_uris": [f"{gateway}/{a}/callback"]}
                                     for a in agents]},
            "user_grants": [{"role": "mail-user", "tools": ["mail.*"]}],
        },
        "providers": [{"name": PROVIDER, "issuer": mail.issuer, "client_id": mail.client_id,
                       "client_secret_env": "DEMO_MAIL_CLIENT_SECRET", "scopes": ["mail.read", "mail.send"],
                       "resource": mail.mcp_url}],
        "upstreams": [{"name": "mail", "url": mail.mcp_url, "provider": PROVIDER, "timeout_seconds": 15}],
        "gateways": [{"name": "default", "agents": {a: ["mail.*"] for a in agents}}],
        "audit": {"database": str(workdir / "audit.db")},
    }


@contextlib.contextmanager
def stage(workdir: Path, *, agents: tuple[str, ...] = (AGENT,), access_token_ttl: int = 300,
          tweak: Callable[[dict[str, Any]], dict[str, Any]] = lambda config: config) -> Iterator[Stage]:
    """Everything running on loopback until the block ends; processes are stopped however it ends.
    ``tweak`` may change the gateway's config (tests add upstreams, skills, rules)."""
    gw_port = _free_port()
    gateway = f"http://127.0.0.1:{gw_port}"
    secret = secrets.token_urlsafe(24)
    env = {**demo_mail.child_env(), "DEMO_MAIL_CLIENT_SECRET": secret,
           "INTERLOCK_VAULT_KEYS": new_key_line("demo")}
    with demo_mail.start(client_id="interlock", client_secret=secret, redirect_uris=[f"{gateway}/connect/callback"],
                         access_token_ttl=access_token_ttl) as mail:
        config_path = workdir / "interlock.yaml"
        config = tweak(_config(workdir, gw_port, mail, agents))
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        log = (workdir / "gateway.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "registry.cli", "serve", "-c", str(config_path)],
                                cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(gateway, proc, workdir / "gateway.log")
            yield Stage(workdir, gateway, mail, env)
        finally:
            stop(proc)
            log.close()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoFailed(f"the gateway exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(httpx2.HTTPError):
            if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise DemoFailed(f"the gateway did not answer within {timeout:.0f}s")


class Narrator:
    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out

    def step(self, n: int, title: str) -> None:
        self.out(f"\n[{n}/7] {title}")

    def say(self, text: str) -> None:
        self.out(f"      {text}")


async def agent_token(stage: Stage, http: httpx2.AsyncClient, agent: str = AGENT, user: str = USER) -> str:
    """The agent signs its user in at the gateway's issuer: authorization code + PKCE."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    redirect = f"{stage.gateway}/{agent}/callback"
    state = secrets.token_urlsafe(16)
    query = urlencode({"response_type": "code", "client_id": agent, "redirect_uri": redirect, "state": state,
                       "code_challenge": challenge, "code_challenge_method": "S256", "scope": "openid",
                       "resource": stage.mcp_url})
    visit = await browse(http, f"{stage.gateway}/idp/authorize?{query}", {stage.gateway: (user, GATEWAY_USERS[user])},
                         stop_at=lambda url: url.startswith(redirect))
    answer = parse_qs(urlsplit(visit.url).query)
    if answer.get("state") != [state] or "code" not in answer:
        raise DemoFailed(f"sign-in at the gateway's issuer did not return a code: {visit.url[:200]}")
    r = await http.post(f"{stage.gateway}/idp/token", data={
        "grant_type": "authorization_code", "code": answer["code"][0], "code_verifier": verifier,
        "redirect_uri": redirect, "client_id": agent, "resource": stage.mcp_url})
    if r.status_code != 200:
        raise DemoFailed(f"the token request failed: {r.text[:200]}")
    return str(r.json()["access_token"])


async def user_connects(stage: Stage, url: str, user: str = USER) -> str:
    """The user opens the link: signs in at the gateway, then at the mail provider, and allows."""
    async with httpx2.AsyncClient(timeout=20) as browser:
        visit = await browse(browser, url, {stage.gateway: (user, GATEWAY_USERS[user]),
                                            stage.mail.issuer: (user, f"{user}-password")})
    if visit.status != 200 or "is connected" not in visit.text:
        raise DemoFailed(f"connecting did not finish (HTTP {visit.status})")
    return "connected"


def mail_reads(stage: Stage) -> int:
    calls = stage.mail.stats().get("mcp_calls", {})
    return int(calls.get("read_message", 0)) if isinstance(calls, dict) else 0


async def play(stage: Stage, mode: str, out: Callable[[str], None] = print) -> None:
    n = Narrator(out)
    pending: list[str] = []

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult | types.ErrorData:
        # 2026-07-28: the authorization request arrives as an InputRequiredResult; the SDK asks us.
        url = getattr(params, "url", None)
        if not isinstance(url, str):
            return types.ElicitResult(action="decline")
        pending.append(url)
        n.say(f"authorization request (URL elicitation): {url}")
        n.say(f"the user opens it ... {await user_connects(stage, url)}")
        return types.ElicitResult(action="accept")

    async def call(client: Client, tool: str, args: dict[str, Any]) -> types.CallToolResult:
        try:
            result = await client.call_tool(tool, args)
        except MCPError as err:
            if err.error.code != -32042:
                raise
            url = UrlElicitationRequiredError.from_error(err.error).elicitations[0].url
            pending.append(url)
            n.say(f"authorization request (-32042 URL elicitation): {url}")
            n.say(f"the user opens it ... {await user_connects(stage, url)}")
            n.say("the agent retries")
            result = await client.call_tool(tool, args)
        if result.is_error:
            raise DemoFailed(f"{tool} failed: {result.content[0].text if result.content else ''}")  # type: ignore[union-attr]
        return result

    async with httpx2.AsyncClient(timeout=20) as http:
        n.step(1, f"connect: the agent `{AGENT}` signs in `{USER}` and connects to {stage.mcp_url} ({mode})")
        token = await agent_token(stage, http)
        n.say("the agent holds a token for the gateway (never for the mailbox)")
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as agent_http, Client(
                streamable_http_client(stage.mcp_url, http_client=agent_http), mode=mode,
                elicitation_callback=on_elicit) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            n.say(f"tools: {', '.join(tools)}")
            if "mail.read_message" not in tools:
                raise DemoFailed("the gateway does not list mail.read_message")

            n.step(2, "authorize: the first mail call needs the user's permission")
            listing = await call(client, "mail.list_messages", {})
            if not pending:
                raise DemoFailed("the first call went through without an authorization request")
            messages = (listing.structured_content or {}).get("messages", [])
            nate = next((m for m in messages if "Nate" in str(m.get("from", ""))), None)
            if nate is None:
                raise DemoFailed("no message from Nate in the mailbox")

            n.step(3, "read: the agent reads Nate's email")
            read = await call(client, "mail.read_message", {"id": nate["id"]})
            email = read.structured_content or {}
            n.say(f"from {email.get('from')}: \"{email.get('subject')}\"")
            reads_before = mail_reads(stage)

            n.step(4, f"revoke: the admin revokes `{AGENT}`'s connection to `{PROVIDER}` for `{USER}`")
            with anyio.fail_after(60):
                revoked = await anyio.run_process(
                    [sys.executable, "-m", "registry.cli", "--db", str(stage.workdir / "interlock.db"),
                     "--audit-db", str(stage.workdir / "audit.db"), "connections", "revoke", "--agent", AGENT,
                     "--user", USER, "--provider", PROVIDER],
                    cwd=stage.workdir, env=stage.env, check=False)
            said = revoked.stdout.decode().strip()
            if revoked.returncode != 0 or not said.startswith("revoked"):
                raise DemoFailed(f"revoke failed: {revoked.stderr.decode() or said}")
            n.say(f"$ interlock connections revoke --agent {AGENT} --user {USER} --provider {PROVIDER}")
            n.say(said)

            n.step(5, "blocked: the agent tries again; its context still holds the email, the action layer says no")
            before = len(pending)
            if mode == "legacy":
                try:
                    await client.call_tool("mail.read_message", {"id": nate["id"]})
                    raise DemoFailed("the call went through after the revoke")
                except MCPError as err:
                    if err.error.code != -32042:
                        raise
                    url = UrlElicitationRequiredError.from_error(err.error).elicitations[0].url
                    pending.append(url)
                    n.say(f"blocked with a new authorization request: {url}")
            else:
                blocked = await client.session.call_tool("mail.read_message", {"id": nate["id"]},
                                                         allow_input_required=True)
                if not isinstance(blocked, types.InputRequiredResult):
                    raise DemoFailed("the call went through after the revoke")
                url = next(iter(blocked.input_requests.values())).params.url  # type: ignore[union-attr]
                pending.append(url)
                n.say(f"blocked with a new authorization request (InputRequiredResult): {url}")
            if len(pending) != before + 1 or pending[-1] == pending[0]:
                raise DemoFailed("no fresh authorization request after the revoke")
            if mail_reads(stage) != reads_before:
                raise DemoFailed("the mailbox was reached after the revoke")
            n.say("the mailbox was not reached")

            n.step(6, "re-authorize: the user connects again")
            n.say(await user_connects(stage, pending[-1]))

            n.step(7, "read again: only now does the call go through")
            again = await call(client, "mail.read_message", {"id": nate["id"]})
            n.say(f"from {(again.structured_content or {}).get('from')}: "
                  f"\"{(again.structured_content or {}).get('subject')}\"")
            if mail_reads(stage) != reads_before + 1:
                raise DemoFailed("the second read did not reach the mailbox exactly once")


def run(*, keep: bool, mode: str, out: Callable[[str], None] = print) -> int:
    """The whole demo; returns the exit status. Processes are stopped on any exit, Ctrl-C included."""
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        with tempfile.TemporaryDirectory(prefix="interlock-demo-") as tmp, stage(Path(tmp)) as s:
            out(f"gateway   {s.gateway}  (MCP: {s.mcp_url})")
            out(f"mail      {s.mail.issuer}  (a stand-in for Gmail: OAuth 2.1 + MCP)")
            try:
                anyio.run(play, s, mode, out)
            except DemoFailed as exc:
                out(f"\nFAILED: {exc}")
                return 1
            out("\nevery step behaved as it should")
            if keep:
                out(f"\nstill running (Ctrl-C to stop):\n  MCP endpoint   {s.mcp_url}\n"
                    f"  issuer         {s.gateway}/idp   (user {USER} / {USER_PASSWORD}, client {AGENT})\n"
                    f"  mail provider  {s.mail.issuer}   (user {USER} / {MAIL_PASSWORD})\n"
                    f"  store          {s.workdir / 'interlock.db'}")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
            return 0
    except KeyboardInterrupt:
        out("\ninterrupted; everything was stopped")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)

