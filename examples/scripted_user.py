"""A scripted person with a browser: follows redirects, signs in where asked, clicks Allow.

Used by `interlock demo` and the tests to play the user of the live revocation scenario over
plain HTTP, exactly as a browser would (cookies kept, forms read from the HTML, no JavaScript).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx2

from examples.demo_mail.browser import BrowserError, Form, fill, parse_forms


@dataclass(frozen=True)
class Visit:
    """Where the browser stopped: the final page (``status``, ``text``) or a redirect it was told
    not to follow (``url``)."""

    url: str
    status: int
    text: str


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _has_password(form: Form) -> bool:
    return any(kind == "password" for kind, *_ in form.inputs)


async def browse(http: httpx2.AsyncClient, url: str, logins: dict[str, tuple[str, str]], *,
                 stop_at: Callable[[str], bool] = lambda _url: False, allow: bool = True,
                 max_steps: int = 25) -> Visit:
    """Open ``url`` and act like its user until a page with no form (or a redirect ``stop_at`` accepts).

    ``logins`` maps an origin (`http://127.0.0.1:8080`) to the (username, password) to type there.
    """
    response = await http.get(url, follow_redirects=False)
    for _ in range(max_steps):
        here = str(response.url)
        if response.is_redirect:
            target = urljoin(here, response.headers["location"])
            if stop_at(target):
                return Visit(target, response.status_code, "")
            response = await http.get(target, follow_redirects=False)
            continue
        forms, _errors = parse_forms(response.text)
        posting = [f for f in forms if f.method == "post"]
        if not posting:
            return Visit(here, response.status_code, response.text)
        form = posting[0]
        if _has_password(form):
            login = logins.get(_origin(here))
            if login is None:
                raise BrowserError(f"asked to sign in at {_origin(here)}, with no login for it")
            data = fill(form, {"username": login[0], "password": login[1]})
        else:
            decision = "allow" if allow else "deny"
            button = next((b for b in form.buttons if b[1] == decision), form.buttons[0] if form.buttons else None)
            data = fill(form, {}, button=button)
        response = await http.post(urljoin(here, form.action), data=data, follow_redirects=False)
    raise BrowserError(f"still browsing after {max_steps} steps")
