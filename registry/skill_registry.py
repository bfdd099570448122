"""The skill registry: publish, list, show, versions and yank, over the store.

A published version is immutable: its digest (``executor.skill_format.digest``, over the
canonical JSON of the parsed YAML) is stored with it. Publishing the identical document again
is a no-op; publishing a changed document under a published version is refused. A yanked
version is no longer served (nor counted as latest) but stays in the store for audit.

"Latest" is the highest SemVer version that is not yanked, preferring releases: a prerelease
(`1.1.0-rc.1`) is latest only when no release is left.

Every write goes through the store, which bumps its generation, so serving workers see a
publish or a yank on their next request. The functions raise ``SkillError`` (invalid file),
``SkillNotFoundError`` and ``SkillConflictError``: ``InterlockError``s, exit status 1 in the CLI.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from executor.errors import StoreError
from executor.skill_format import (
    Problem,
    Skill,
    SkillConflictError,
    SkillError,
    SkillNotFoundError,
    is_prerelease,
    semver_key,
)
from registry.skill_validate import KnownTools, load_skill
from registry.store import SkillVersionRecord, Store


class SkillVersion(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str
    digest: str
    skill: Skill
    document: dict[str, Any]
    """The parsed YAML as published (key order as written, no defaults filled in); the digest is
    over its canonical form."""
    source: str
    """The YAML text as published."""
    published_at: str
    yanked_at: str | None = None
    created: bool = False
    """True only on what ``publish`` returns when that call stored the version."""

    @property
    def yanked(self) -> bool:
        return self.yanked_at is not None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def from_record(cls, record: SkillVersionRecord, *, created: bool = False) -> SkillVersion:
        try:
            document = msgspec.json.decode(record.document)
            skill = Skill.from_data(document)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise StoreError(f"the store holds skill `{record.name}@{record.version}` in a form this interlock "
                             f"cannot read ({exc}); upgrade interlock") from exc
        return cls(name=record.name, version=record.version, digest=record.digest, skill=skill, document=document,
                   source=record.source, published_at=record.published_at, yanked_at=record.yanked_at,
                   created=created)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- tools


def known_tools_from_store(store: Store) -> KnownTools:
    """``known_tools`` for validation from the store's pinned tools: None for a servable tool,
    else why it is not (unknown, not blessed, quarantined, removed upstream)."""
    tools = {t.exposed_name: t.status for t in store.list_tools()}
    servers = {s.name for s in store.list_servers()}

    def known(name: str) -> str | None:
        status = tools.get(name)
        if status == "pinned":
            return None
        if status == "quarantined":
            return f"quarantined (its definition changed upstream); re-bless it: `interlock tools bless {name}`"
        if status == "pending":
            return f"not blessed yet; bless it: `interlock tools bless {name}`"
        if status == "removed":
            return "removed upstream"
        server = name.partition(".")[0]
        if server not in servers:
            return f"unknown: no blessed server `{server}`"
        return f"unknown: server `{server}` has no such tool"

    return known


# --------------------------------------------------------------------------- publish


def _read(path_or_text: str | Path) -> tuple[str, str]:
    """(text, file name for messages). A ``Path``, or a one-line string, names a file."""
    if isinstance(path_or_text, str) and "\n" in path_or_text:
        return path_or_text, "<skill>"
    file = str(path_or_text)
    try:
        return Path(path_or_text).read_text(encoding="utf-8"), file
    except FileNotFoundError:
        raise SkillError([Problem(file, 0, 0, "file does not exist")]) from None
    except UnicodeDecodeError as exc:
        raise SkillError([Problem(file, 0, 0, f"file is not UTF-8 text ({exc.reason})")]) from exc
    except OSError as exc:
        raise SkillError([Problem(file, 0, 0, f"cannot read the file: {exc.strerror or exc}")]) from exc


def _next_patch(version: str) -> str:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if match is None:  # pragma: no cover - versions are validated
        return "a higher version"
    major, minor, patch = match.groups()
    if is_prerelease(version):
        return f"`{major}.{minor}.{patch}`"
    return f"`{major}.{minor}.{int(patch) + 1}`"


def publish(store: Store, path_or_text: str | Path, *, known_tools: KnownTools | None = None,
            now: str | None = None) -> SkillVersion:
    """Validate and store one skill version; returns it (``created`` says whether this call
    stored it). ``known_tools`` defaults to the store's tools (``known_tools_from_store``);
    pass ``lambda _: None`` to publish before the tools are blessed.

    Raises ``SkillError`` listing every problem, and ``SkillConflictError`` when the version
    is published with a different digest or was yanked."""
    text, file = _read(path_or_text)
    result = load_skill(text, file, known_tools=known_tools or known_tools_from_store(store))
    assert result.skill is not None and result.document is not None
    skill = result.skill
    record = SkillVersionRecord(name=skill.name, version=skill.version, digest=result.digest,
                                document=msgspec.json.encode(result.document.data).decode(), source=text,
                                published_at=now or _now())
    stored = store.put_skill_version(record)
    ref = f"`{skill.name}@{skill.version}`"
    if stored.digest != record.digest:
        raise SkillConflictError(
            f"{ref} is already published with different contents ({stored.digest[:19]}…, this file is "
            f"{record.digest[:19]}…); a published version cannot change: give this file a new version, "
            f"e.g. {_next_patch(skill.version)}")
    if stored.yanked_at is not None:
        raise SkillConflictError(f"{ref} was yanked at {stored.yanked_at}; publish it under a new version, "
                                 f"e.g. {_next_patch(skill.version)}")
    return SkillVersion.from_record(stored, created=stored is record)


# --------------------------------------------------------------------------- reading


def latest(versions: Iterable[SkillVersion]) -> SkillVersion | None:
    """The highest version that is not yanked, releases before prereleases; None if none is left."""
    live = [v for v in versions if not v.yanked]
    releases = [v for v in live if not is_prerelease(v.version)]
    pool = releases or live
    return max(pool, key=lambda v: semver_key(v.version)) if pool else None


def _by_name(store: Store, name: str | None = None) -> dict[str, list[SkillVersion]]:
    grouped: dict[str, list[SkillVersion]] = {}
    for record in store.list_skill_versions(name):
        grouped.setdefault(record.name, []).append(SkillVersion.from_record(record))
    for items in grouped.values():
        items.sort(key=lambda v: semver_key(v.version))
    return grouped


def list_skills(store: Store, *, include_yanked: bool = False) -> list[SkillVersion]:
    """The latest version of every skill, by name. A skill whose versions are all yanked is left
    out, unless ``include_yanked`` (then its highest version is shown, yanked)."""
    out = []
    for items in sorted(_by_name(store).items()):
        current = latest(items[1])
        if current is None and include_yanked:
            current = items[1][-1]
        if current is not None:
            out.append(current)
    return out


def versions(store: Store, name: str) -> list[SkillVersion]:
    """Every version of ``name``, yanked ones included, lowest first."""
    found = _by_name(store, name).get(name)
    if not found:
        raise SkillNotFoundError(f"no skill `{name}`; see `interlock skills list`")
    return found


def show(store: Store, name: str, version: str | None = None) -> SkillVersion:
    """One version: ``version``, even if yanked (for audit), or else the latest."""
    if version is not None:
        record = store.get_skill_version(name, version)
        if record is None:
            raise SkillNotFoundError(f"no version `{version}` of skill `{name}`; see "
                                     f"`interlock skills versions {name}`")
        return SkillVersion.from_record(record)
    current = latest(versions(store, name))
    if current is None:
        raise SkillNotFoundError(f"every version of skill `{name}` is yanked; publish a new version")
    return current


def resolve(store: Store, name: str, version: str | None = None) -> SkillVersion:
    """What is served for ``name`` (and ``version``): like ``show``, but a yanked version is not found."""
    found = show(store, name, version)
    if found.yanked:
        raise SkillNotFoundError(f"version `{version}` of skill `{name}` is yanked")
    return found


def yank(store: Store, name: str, version: str, *, now: str | None = None) -> SkillVersion:
    """Stop serving one version; it stays in the store. Yanking twice changes nothing."""
    record = store.yank_skill_version(name, version, now or _now())
    if record is None:
        raise SkillNotFoundError(f"no version `{version}` of skill `{name}`; see `interlock skills versions {name}`")
    return SkillVersion.from_record(record)


# --------------------------------------------------------------------------- gateways


def pattern_matches(pattern: str, name: str) -> bool:
    """A gateway's skill pattern (`reply-*`, `*`): `*` matches any run of characters."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name) is not None


def exposed_on(patterns: Iterable[str], name: str) -> bool:
    """Whether a gateway with these `skills` patterns exposes skill ``name`` (before the per-step check)."""
    return any(pattern_matches(p, name) for p in patterns)
