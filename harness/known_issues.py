"""Known issues as data: `known_issues/known_issues.yaml`, the machine-readable list behind
known_issues/README.md. Users edit this file, so its format is an interface (documented
in known_issues/README.md); it is validated whole before anything runs, and every error
names the file, the entry and the field.

An issue *explains* a finding when its `scenarios` patterns match the scenario id, its
`checks` name the finding's check, and its `client`/`server` ranges include the target.
Patterns are fnmatch-style with `*` and `?` only: `[` and `]` are literal, because every
scenario id contains them (`objectstore.get[drain.close@transfer]`).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Mapping

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from harness.errors import HarnessError
from harness.targets import IMPLEMENTATIONS

DEFAULT_PATH = Path("known_issues/known_issues.yaml")
FIELDS = ("id", "title", "scenarios", "checks", "client", "server", "flaky", "reason", "link", "repro")
REQUIRED = ("id", "title", "scenarios", "checks", "client")
ID_RE = re.compile(r"^[A-Z][A-Z0-9]*-\d+$")
# Client implementations and the version syntax of their ranges, as each implementation
# declares it (harness/targets: nats-py publishes PEP 440 versions, nats.go tags semver).
CLIENT_SYNTAX = {name: impl.version_syntax for name, impl in IMPLEMENTATIONS.items()}
SERVER_IMPL = "nats-server"


class KnownIssueError(HarnessError):
    """The known-issues file is malformed: names the file, the entry and the field."""


# -- versions and ranges -----------------------------------------------------------------

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_CLAUSE = re.compile(r"^(>=|<=|==|!=|>|<|=)?\s*(\S+)$")


def semver_key(text: str) -> tuple[int, int, int, int, str]:
    """Sort key of a semver tag (`v1.40.1`, `1.41.0-rc.1`): a pre-release sorts before its release."""
    m = _SEMVER.match(text.strip())
    if not m:
        raise ValueError(f"not a semver version: {text!r}")
    major, minor, patch, pre = m.groups()
    return int(major), int(minor), int(patch), 0 if pre else 1, pre or ""


def _semver_clauses(spec: str) -> tuple[tuple[str, tuple[int, int, int, int, str]], ...]:
    out = []
    for clause in spec.split(","):
        m = _CLAUSE.match(clause.strip())
        if not m:
            raise ValueError(f"bad clause {clause.strip()!r}")
        out.append((m.group(1) or "==", semver_key(m.group(2))))
    return tuple(out)


_OPS = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
    "==": lambda a, b: a == b, "=": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


def _pep440_version(text: str) -> Version:
    return Version(text.strip().removeprefix("v"))


@dataclasses.dataclass(frozen=True)
class VersionRange:
    """`nats-py>=2.16.0,<=2.16.0`, `nats.go>=v1.40.1,<v1.41.1`, `>=2.12` (server), or `*`."""

    text: str
    impl: str  # "" when the range names no implementation (server ranges, `*`)
    spec: str  # "" = any version
    syntax: str  # "pep440" | "semver" | "any"

    def contains(self, impl: str, version: str) -> bool:
        """Does this range include `impl` at `version`? Another implementation never matches."""
        if self.impl and impl and self.impl != impl:
            return False
        if not self.spec:
            return True
        try:
            if self.syntax == "semver":
                key = semver_key(version)
                return all(_OPS[op](key, bound) for op, bound in _semver_clauses(self.spec))
            return SpecifierSet(self.spec).contains(_pep440_version(version), prereleases=True)
        except (ValueError, InvalidVersion):
            return False  # a version we cannot read (e.g. a source checkout) is in no bounded range


def parse_range(text: str, *, side: str) -> VersionRange:
    """Parse a `client` (side="client") or `server` range; ValueError says what is wrong."""
    t = str(text).strip()
    if t in ("", "*"):
        return VersionRange(t or "*", "", "", "any")
    m = re.match(r"^([A-Za-z][A-Za-z0-9_.-]*?)\s*(?=[<>=!*]|$)(.*)$", t)
    impl, spec = (m.group(1), m.group(2).strip()) if m else ("", t)
    if side == "client":
        if impl not in CLIENT_SYNTAX:
            raise ValueError(f"must start with a client implementation ({', '.join(CLIENT_SYNTAX)}), got {t!r}")
        syntax = CLIENT_SYNTAX[impl]
    else:
        if impl not in ("", SERVER_IMPL):
            raise ValueError(f"a server range names no implementation but {SERVER_IMPL}, got {t!r}")
        impl, syntax = SERVER_IMPL, "pep440"
    if spec in ("", "*"):
        return VersionRange(t, impl, "", "any")
    if syntax == "semver":
        _semver_clauses(spec)
    else:
        spec = ",".join(_strip_v(c) for c in spec.split(","))
        try:
            SpecifierSet(spec)
        except InvalidSpecifier as e:
            raise ValueError(f"not a PEP 440 specifier: {spec!r} ({e})") from None
    return VersionRange(t, impl, spec, syntax)


def _strip_v(clause: str) -> str:
    """`>=v2.12.0` -> `>=2.12.0`: server tags carry a `v` that PEP 440 does not."""
    m = re.match(r"^\s*([<>=!~]*)\s*v?(.*)$", clause)
    return f"{m.group(1)}{m.group(2).strip()}" if m else clause.strip()


# -- the target a run tested ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """The system under test: client implementation and version, server version."""

    client_impl: str
    client_version: str
    server_version: str

    def __str__(self) -> str:
        return f"{self.client_impl} {self.client_version} on nats-server {self.server_version}"


def target_of(header: Mapping[str, Any]) -> Target:
    """The target a run's header names (issue 8's `target`, else the `nats_py`/`nats_server` keys)."""
    t = header.get("target")
    if isinstance(t, Mapping) and t.get("client"):  # {} when the run never resolved its target
        c, s = t.get("client") or {}, t.get("server") or {}
        return Target(str(c.get("impl", "nats-py")), str(c.get("version", "?")), str(s.get("version", "?")).removeprefix("v"))
    return Target("nats-py", str(header.get("nats_py", "?")), str(header.get("nats_server", "?")).removeprefix("v"))


# -- the issues ----------------------------------------------------------------------------


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + r"\Z")


@dataclasses.dataclass(frozen=True)
class KnownIssue:
    """One confirmed finding: where it shows (scenario patterns, checks) and for which versions."""

    id: str
    title: str
    scenarios: tuple[str, ...]
    checks: frozenset[str]
    client: VersionRange
    server: VersionRange
    flaky: bool = False
    reason: str = ""
    link: str = ""
    repro: str = ""

    def matches(self, scenario_id: str) -> bool:
        return any(_glob(p).match(scenario_id) for p in self.scenarios)

    def applies_to(self, target: Target) -> bool:
        return self.client.contains(target.client_impl, target.client_version) and self.server.contains(
            SERVER_IMPL, target.server_version)

    def explains(self, scenario_id: str, check: str) -> bool:
        return check in self.checks and self.matches(scenario_id)


@dataclasses.dataclass(frozen=True)
class KnownIssues:
    """Every issue of one file, in file order."""

    path: Path
    issues: tuple[KnownIssue, ...]

    def applicable(self, target: Target) -> tuple[KnownIssue, ...]:
        return tuple(i for i in self.issues if i.applies_to(target))

    def by_id(self, issue_id: str) -> KnownIssue | None:
        return next((i for i in self.issues if i.id == issue_id), None)


EMPTY = KnownIssues(Path("(none)"), ())


def known_checks() -> frozenset[str]:
    from harness import checks

    return frozenset(checks.CHECKS)


def load_known_issues(path: Path | str) -> KnownIssues:
    """Read and validate the whole file; KnownIssueError names the file, the entry and the field."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise KnownIssueError(f"{p}: no such known-issues file",
                              hint="pass --known-issues FILE, or create known_issues/known_issues.yaml") from None
    except (OSError, yaml.YAMLError) as e:
        raise KnownIssueError(f"{p}: not readable YAML", evidence=str(e),
                              hint="the file is a YAML list of issues; see known_issues/README.md") from None
    if data is None:
        data = []
    if not isinstance(data, list):
        raise KnownIssueError(f"{p}: must be a list of issues, got {type(data).__name__}",
                              hint="each entry starts with `- id: KI-NNN`; see known_issues/README.md")
    checks = known_checks()
    issues: list[KnownIssue] = []
    seen: set[str] = set()
    for n, entry in enumerate(data, 1):
        issue = _parse_entry(p, n, entry, checks)
        if issue.id in seen:
            raise KnownIssueError(f"{p}: entry {issue.id}: field 'id': duplicate id")
        seen.add(issue.id)
        issues.append(issue)
    return KnownIssues(p, tuple(issues))


def _parse_entry(p: Path, n: int, entry: Any, checks: frozenset[str]) -> KnownIssue:
    where = f"entry #{n}"
    if isinstance(entry, Mapping) and isinstance(entry.get("id"), str):
        where = f"entry {entry['id']}"

    def bad(field: str, why: str) -> KnownIssueError:
        return KnownIssueError(f"{p}: {where}: field '{field}': {why}",
                               hint="the format is documented in known_issues/README.md")

    if not isinstance(entry, Mapping):
        raise KnownIssueError(f"{p}: {where}: must be a mapping, got {type(entry).__name__}")
    for f in entry:
        if f not in FIELDS:
            raise bad(str(f), f"unknown field (known: {', '.join(FIELDS)})")
    for f in REQUIRED:
        if f not in entry:
            raise bad(f, "missing")
    if not isinstance(entry["id"], str) or not ID_RE.match(entry["id"]):
        raise bad("id", f"must look like KI-001, got {entry['id']!r}")
    if not isinstance(entry["title"], str) or not entry["title"].strip():
        raise bad("title", "must be a non-empty string")
    scen = entry["scenarios"]
    if not isinstance(scen, list) or not all(isinstance(s, str) and s for s in scen):
        raise bad("scenarios", "must be a list of scenario id patterns ([] when no scenario reaches it yet)")
    chk = entry["checks"]
    if not isinstance(chk, list) or not chk or not all(isinstance(c, str) for c in chk):
        raise bad("checks", "must be a non-empty list of check names")
    for c in chk:
        if c not in checks:
            raise bad("checks", f"unknown check {c!r} (known: {', '.join(sorted(checks))})")
    ranges = {}
    for side in ("client", "server"):
        raw = entry.get(side, "*")
        if not isinstance(raw, str):
            raise bad(side, f"must be a string such as {'nats-py>=2.16.0,<=2.16.0' if side == 'client' else '>=2.12'}")
        try:
            ranges[side] = parse_range(raw, side=side)
        except ValueError as e:
            raise bad(side, str(e)) from None
    flaky = entry.get("flaky", False)
    if not isinstance(flaky, bool):
        raise bad("flaky", f"must be true or false, got {flaky!r}")
    reason = entry.get("reason", "")
    if not isinstance(reason, str):
        raise bad("reason", "must be a string")
    if flaky and not reason.strip():
        raise bad("reason", "flaky: true needs a reason a reviewer would accept")
    for f in ("link", "repro"):
        if not isinstance(entry.get(f, ""), str):
            raise bad(f, "must be a string")
    repro = entry.get("repro", "")
    if repro and not (p.parent / repro).exists():
        raise bad("repro", f"{repro} does not exist (paths are relative to {p.parent})")
    return KnownIssue(
        id=entry["id"], title=entry["title"].strip(), scenarios=tuple(scen), checks=frozenset(chk),
        client=ranges["client"], server=ranges["server"], flaky=flaky, reason=reason.strip(),
        link=entry.get("link", ""), repro=repro,
    )
