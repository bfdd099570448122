"""The errors Interlock raises, in one small hierarchy.

    InterlockError                     code             what it means
    ├── ConfigError                    config_invalid   a config file did not validate (lists every problem)
    ├── StoreError                     store_error      the store refused a read or write
    │   └── SchemaTooNewError          schema_too_new   the database was written by a newer Interlock
    ├── AuthenticationError            invalid_token    the bearer token is missing or did not verify (401)
    ├── ToolUnavailableError           tool_unavailable the tool does not exist or is not allowed here
    ├── AccessDeniedError              access_denied    the agent may use the tool, but this call is not allowed:
    │                                                   the user lacks it, a rule denies it, or a scope is missing
    ├── UpstreamError                  upstream_error   an upstream hung, crashed or answered garbage
    │   ├── UpstreamTimeoutError       upstream_timeout the upstream did not answer within its timeout
    │   └── UpstreamUnauthorizedError  upstream_unauthorized  the upstream rejected our credential (401)
    └── CatalogError                   catalog_error    a bless/sync/tools operation was refused

Each has a stable ``code``; messages are lowercase, say what was wrong and,
where known, what to do next. Foreign exceptions are translated at the edge
with ``raise ... from exc`` so callers only ever see these.
"""

from __future__ import annotations


class InterlockError(Exception):
    code = "interlock_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(InterlockError):
    code = "config_invalid"

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source} is invalid ({len(problems)} problem(s)); nothing was written:\n{lines}")


class StoreError(InterlockError):
    code = "store_error"


class SchemaTooNewError(StoreError):
    code = "schema_too_new"


class AuthenticationError(InterlockError):
    """The bearer token is missing or invalid. ``description`` goes into WWW-Authenticate."""

    code = "invalid_token"

    def __init__(self, description: str, *, missing: bool = False) -> None:
        super().__init__(description)
        self.description = description
        self.missing = missing


class ToolUnavailableError(InterlockError):
    code = "tool_unavailable"


class AccessDeniedError(InterlockError):
    """Carries the decision's machine-readable ``reason`` and ``side`` (never another tool's name)."""

    code = "access_denied"

    def __init__(self, message: str, *, reason: str, side: str | None, missing_scopes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.side = side
        self.missing_scopes = missing_scopes


class UpstreamError(InterlockError):
    code = "upstream_error"


class UpstreamTimeoutError(UpstreamError):
    code = "upstream_timeout"


class UpstreamUnauthorizedError(UpstreamError):
    """The upstream answered 401: the credential we sent is no longer accepted."""

    code = "upstream_unauthorized"


class CatalogError(InterlockError):
    code = "catalog_error"
