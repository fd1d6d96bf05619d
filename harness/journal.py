"""The run journal: one JSON line per event, appended as the run goes, so a killed run keeps
every scenario it finished.

`reports/<run-id>/journal.jsonl` holds, in order:

    {"kind": "header", ...}     the run's header (seed, versions, target, settings)
    {"kind": "record", ...}     one per finished scenario, appended when its report arrives
    {"kind": "infra", ...}      an environment death and restart (recorded, the run goes on)
    {"kind": "end", ...}        written last by a run that ended by itself (its exit status)

A run stopped by SIGKILL or a CI time limit has no `end` line and maybe half a last line;
`read_journal` keeps every whole line and says the journal is partial. `journal.json` (the
whole run in one document, written at the end) is read too, so `harness report` and
`harness diff` accept either.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import secrets
from pathlib import Path
from typing import IO, Any, Mapping

from harness.errors import HarnessError

JSONL_NAME = "journal.jsonl"
JSON_NAME = "journal.json"
VERDICTS = ("passed", "failed", "inconclusive", "error", "not_applicable")
SYMBOL = {"passed": "PASS", "failed": "FAIL", "inconclusive": "INCONCLUSIVE", "error": "ERROR", "not_applicable": "N/A"}


class JournalError(HarnessError):
    """A journal could not be found or read."""


@dataclasses.dataclass(frozen=True)
class Journal:
    """What a run recorded: its header, its finished scenarios, its infrastructure events."""

    path: Path
    header: Mapping[str, Any]
    records: tuple[Mapping[str, Any], ...]
    infra: tuple[Mapping[str, Any], ...] = ()
    complete: bool = True  # the run wrote its `end` line (False: killed, or still running)
    exitstatus: int | None = None
    damaged_lines: int = 0  # lines that were not whole JSON (a write cut short by a kill)

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in VERDICTS}
        for r in self.records:
            out[r["verdict"]] = out.get(r["verdict"], 0) + 1
        return out


class JournalWriter:
    """Append-only writer of `journal.jsonl`; each line is flushed as it is written."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / JSONL_NAME
        self._f: IO[str] | None = None
        self.has_header = False

    def _write(self, kind: str, payload: Mapping[str, Any]) -> None:
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")
        # One write() of one whole line: a kill leaves at most the last line cut short.
        self._f.write(json.dumps({"kind": kind, **payload}, default=str) + "\n")
        self._f.flush()

    def header(self, header: Mapping[str, Any]) -> None:
        self._write("header", header)
        self.has_header = True
        point_latest(self.path.parent)

    def record(self, record: Mapping[str, Any]) -> None:
        self._write("record", record)

    def infra(self, event: Mapping[str, Any]) -> None:
        self._write("infra", event)

    def end(self, exitstatus: int) -> None:
        now = datetime.datetime.now().isoformat(timespec="seconds")
        self._write("end", {"exitstatus": int(exitstatus), "finished": now})

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def locate(path: Path | str) -> Path:
    """The journal file for a run directory or a journal path (`journal.jsonl` preferred)."""
    p = Path(path)
    if p.is_dir():
        for name in (JSONL_NAME, JSON_NAME):
            if (p / name).is_file():
                return p / name
        raise JournalError(
            f"no journal in {p}",
            evidence=f"looked for {JSONL_NAME} and {JSON_NAME}; found: {', '.join(sorted(x.name for x in p.iterdir())) or '(empty)'}",
            hint="pass a run directory (reports/<run-id>) or a journal file; a run killed before "
            "its first scenario finished has none",
        )
    if not p.is_file():
        raise JournalError(f"no such journal: {p}", hint="pass a run directory (reports/<run-id>) or its journal.jsonl")
    return p


def read_journal(path: Path | str) -> Journal:
    """Read a run's journal (directory, `journal.jsonl` or `journal.json`); a partial one is fine."""
    p = locate(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise JournalError(f"cannot read {p}: {e}") from None
    if p.suffix == ".json":
        return _from_document(p, text)
    return _from_lines(p, text)


def _from_document(p: Path, text: str) -> Journal:
    try:
        doc = json.loads(text)
        return Journal(path=p, header=doc["header"], records=tuple(doc["records"]), infra=tuple(doc.get("infra", ())),
                       complete=doc.get("complete", True), exitstatus=doc.get("exitstatus"))
    except (ValueError, KeyError, TypeError) as e:
        raise JournalError(f"{p}: not a nats-chaos journal ({type(e).__name__}: {e})",
                           hint="journal.json is written at the end of a run; journal.jsonl as it goes") from None


def _from_lines(p: Path, text: str) -> Journal:
    header: dict[str, Any] | None = None
    records: list[dict[str, Any]] = []
    infra: list[dict[str, Any]] = []
    exitstatus: int | None = None
    complete = False
    damaged = 0
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            kind = entry.pop("kind")
        except (ValueError, KeyError, AttributeError, TypeError):
            damaged += 1  # a line cut short by a kill; everything before it is whole
            continue
        if kind == "header":
            header = entry
        elif kind == "record":
            records.append(entry)
        elif kind == "infra":
            infra.append(entry)
        elif kind == "end":
            complete, exitstatus = True, entry.get("exitstatus")
    if header is None:
        raise JournalError(f"{p}: no header line", evidence=f"{len(records)} record(s), {damaged} damaged line(s)",
                           hint="is this a nats-chaos journal.jsonl?")
    return Journal(path=p, header=header, records=tuple(records), infra=tuple(infra), complete=complete,
                   exitstatus=exitstatus, damaged_lines=damaged)


def as_document(j: Journal) -> dict[str, Any]:
    """The whole run as one JSON document (`journal.json`), records sorted by id."""
    records = sorted(j.records, key=lambda r: r["id"])
    return {"header": dict(j.header), "counts": j.counts(), "complete": j.complete, "exitstatus": j.exitstatus,
            "infra": list(j.infra), "records": records}


def write_document(j: Journal, run_dir: Path) -> Path:
    """Write `journal.json` atomically (a reader never sees half of it)."""
    out = run_dir / JSON_NAME
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    tmp.write_text(json.dumps(as_document(j), indent=2, default=str))
    os.replace(tmp, out)
    return out


def point_latest(run_dir: Path) -> None:
    """Point `<reports>/latest` at `run_dir` (best effort: a read-only reports dir is no error).

    A new link under a private name replaces the old one in one rename: runs finishing at once
    never find `latest` missing, and never fail on each other's link.
    """
    latest = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest.{os.getpid()}.{secrets.token_hex(3)}"
    try:
        tmp.symlink_to(run_dir.name)
        os.replace(tmp, latest)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def claim_run_dir(reports: Path, run_id: str) -> str:
    """Create `reports/<run_id>` for this run alone; if another run has it (same second, same
    seed, same target), `<run_id>-2`, `-3`, …; return the id claimed."""
    reports.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = run_id if n == 1 else f"{run_id}-{n}"
        try:
            (reports / candidate).mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"{reports / run_id}: 999 runs with this id already")
