"""Play the user's browser through the provider's login and consent forms, over plain HTTP.

``interlock demo`` and the tests use :func:`complete_login_and_consent` to script "the user"::

    final = await complete_login_and_consent(http, authorize_url, "alice", "alice-password")
    # final == "<redirect_uri>?code=…&state=…&iss=…"   (not fetched: that is the client's job)

It does what a browser does: GET the authorization URL, read the form, POST it with its hidden
fields, follow the provider's redirects, keep its cookie. It follows redirects only within
the provider's ``/authorize`` pages and returns the first redirect that leaves them, unfetched.
It works with any ``httpx2.AsyncClient`` that keeps cookies (the default).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx2


class BrowserError(Exception):
    """The provider did not behave like the login-and-consent flow expects."""


class AuthorizationPageError(BrowserError):
    """The provider showed an error page instead of redirecting (e.g. an unregistered redirect_uri)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status
        self.text = text


class LoginFailed(BrowserError):
    """The provider refused the username or password."""


@dataclass
class Form:
    id: str
    action: str
    method: str
    inputs: list[tuple[str, str, str, bool]] = field(default_factory=list)
    """(type, name, value, checked) of every ``<input>``."""
    buttons: list[tuple[str, str]] = field(default_factory=list)
    """(name, value) of every submit ``<button>``."""


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.errors: list[str] = []
        self._form: Form | None = None
        self._in_error = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = Form(id=a.get("id", ""), action=a.get("action", ""), method=a.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and a.get("name"):
            self._form.inputs.append((a.get("type", "text").lower(), a["name"], a.get("value", ""), "checked" in a))
        elif tag == "button" and self._form is not None and a.get("type", "submit").lower() == "submit":
            self._form.buttons.append((a.get("name", ""), a.get("value", "")))
        elif "error" in a.get("class", "").split():
            self._in_error = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._in_error and data.strip():
            self.errors.append(data.strip())


def parse_forms(html: str) -> tuple[list[Form], list[str]]:
    """The forms of a page and the texts of its ``class="error"`` elements."""
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms, parser.errors


def fill(
    form: Form, values: dict[str, str], *, ticked: dict[str, Collection[str]] | None = None,
    button: tuple[str, str] | None = None,
) -> dict[str, str | list[str]]:
    """The fields a browser would submit: inputs with their values (``values`` overriding by
    name), checkboxes that are checked (or, for a name in ``ticked``, those whose value is in
    it), and the clicked ``button``."""
    data: dict[str, str | list[str]] = {}
    for kind, name, value, checked in form.inputs:
        if kind == "checkbox":
            on = value in ticked[name] if ticked is not None and name in ticked else checked
            if on:
                prior = data.get(name, [])
                data[name] = [*(prior if isinstance(prior, list) else [prior]), value]
        elif kind not in ("submit", "button", "image", "reset", "file"):
            data[name] = values.get(name, value)
    for name, value in values.items():
        data.setdefault(name, value)
    if button is not None and button[0]:
        data[button[0]] = button[1]
    return data


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


async def complete_login_and_consent(
    http: httpx2.AsyncClient,
    authorize_url: str,
    username: str,
    password: str,
    *,
    allow: bool = True,
    scopes: Collection[str] | None = None,
    max_steps: int = 10,
) -> str:
    """Log in as ``username`` and answer the consent page; return the redirect back to the client.

    ``allow=False`` clicks Deny. ``scopes`` ticks only those of the requested scopes on the
    consent page (default: leave every requested scope ticked). The returned URL carries
    ``code``, ``state`` and ``iss`` (or ``error=access_denied``, or any ``error`` the provider
    redirected with before showing a form). It is never fetched.

    Raises :class:`LoginFailed` on a refused password and :class:`AuthorizationPageError` when
    the provider answers with an error page (unknown client, unregistered redirect_uri, …).
    """
    provider = _origin(authorize_url)
    logged_in = False
    response = await http.get(authorize_url, follow_redirects=False)
    for _ in range(max_steps):
        here = str(response.url)
        if response.is_redirect:
            target = urljoin(here, response.headers["location"])
            if _origin(target) != provider or not urlsplit(target).path.startswith("/authorize"):
                return target
            response = await http.get(target, follow_redirects=False)
            continue
        forms, errors = parse_forms(response.text)
        by_id = {f.id: f for f in forms}
        if response.status_code == 401 and "login" in by_id:
            raise LoginFailed(f"login as {username!r} refused: {' '.join(errors) or response.text[:200]}")
        if response.status_code != 200 or not by_id.keys() & {"login", "consent"}:
            text = " ".join(errors) or response.text[:500]
            raise AuthorizationPageError(response.status_code, text)
        if "login" in by_id:
            if logged_in:
                raise LoginFailed(f"login as {username!r} did not stick: {' '.join(errors)}")
            form = by_id["login"]
            data = fill(form, {"username": username, "password": password})
            logged_in = True
        else:
            form = by_id["consent"]
            decision = "allow" if allow else "deny"
            button = next((b for b in form.buttons if b[1] == decision), None)
            if button is None:
                raise BrowserError(f"the consent page has no {decision} button")
            data = fill(form, {}, ticked=None if scopes is None else {"scope": scopes}, button=button)
        if form.method != "post":
            raise BrowserError(f"form {form.id!r} uses method {form.method!r}; expected post")
        response = await http.post(urljoin(here, form.action), data=data, follow_redirects=False)
    raise BrowserError(f"no redirect back to the client after {max_steps} steps")
