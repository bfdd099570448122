"""The HTML pages a user sees: login, consent, and errors. No JavaScript, stable field names.

These forms are scripted by :mod:`examples.demo_mail.browser` and documented in
``docs/demo-provider.md``; change the names of forms, fields and buttons only together
with both.

Login form ``<form id="login" method="post" action="/authorize/login">``:
hidden ``request_id``, ``csrf_token``; ``username`` (text), ``password`` (password);
one submit button.

Consent form ``<form id="consent" method="post" action="/authorize/consent">``:
hidden ``request_id``, ``csrf_token``; one checkbox ``scope`` per requested scope (checked,
value = the scope name); submit buttons ``decision=allow`` and ``decision=deny``.
"""

from __future__ import annotations

from jinja2 import DictLoader, Environment, select_autoescape

_BASE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{% block title %}{% endblock %} · Demo Mail</title></head>
<body>
<h1>Demo Mail</h1>
{% block content %}{% endblock %}
</body>
</html>
"""

_LOGIN = """{% extends "base.html" %}
{% block title %}Sign in{% endblock %}
{% block content %}
<h2>Sign in</h2>
<p><strong>{{ client_id }}</strong> wants to access your Demo Mail account.</p>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form id="login" method="post" action="/authorize/login">
<input type="hidden" name="request_id" value="{{ request_id }}">
<input type="hidden" name="csrf_token" value="{{ csrf_token }}">
<p><label>Username <input type="text" name="username" value="{{ username }}" autocomplete="username"></label></p>
<p><label>Password <input type="password" name="password" autocomplete="current-password"></label></p>
<p><button type="submit">Sign in</button></p>
</form>
{% endblock %}
"""

_CONSENT = """{% extends "base.html" %}
{% block title %}Allow access?{% endblock %}
{% block content %}
<h2>Allow access?</h2>
<p>Signed in as <strong id="user">{{ user }}</strong>.</p>
<p><strong id="client">{{ client_id }}</strong> asks for:</p>
<form id="consent" method="post" action="/authorize/consent">
<input type="hidden" name="request_id" value="{{ request_id }}">
<input type="hidden" name="csrf_token" value="{{ csrf_token }}">
<ul>
{% for scope, text in scopes %}<li><label><input type="checkbox" name="scope" value="{{ scope }}" checked>
{{ text }} (<code>{{ scope }}</code>)</label></li>
{% endfor %}</ul>
<p><button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
</form>
{% endblock %}
"""

_ERROR = """{% extends "base.html" %}
{% block title %}Error{% endblock %}
{% block content %}
<h2>Something went wrong</h2>
<p class="error" id="error" data-error="{{ error }}">{{ error }}: {{ description }}</p>
{% endblock %}
"""

_env = Environment(
    loader=DictLoader({"base.html": _BASE, "login.html": _LOGIN, "consent.html": _CONSENT, "error.html": _ERROR}),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def login_page(*, client_id: str, request_id: str, csrf_token: str, username: str = "", error: str = "") -> str:
    return _env.get_template("login.html").render(
        client_id=client_id, request_id=request_id, csrf_token=csrf_token, username=username, error=error,
    )


def consent_page(
    *, client_id: str, user: str, request_id: str, csrf_token: str, scopes: list[tuple[str, str]],
) -> str:
    return _env.get_template("consent.html").render(
        client_id=client_id, user=user, request_id=request_id, csrf_token=csrf_token, scopes=scopes,
    )


def error_page(error: str, description: str) -> str:
    return _env.get_template("error.html").render(error=error, description=description)
