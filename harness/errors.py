"""The harness's own errors: one family, each message one line first, then evidence and a hint.

Exit codes (documented in the README): 0 clean, 1 findings, 2 usage or environment error.
Every `HarnessError` maps to exit status 2: it says the harness could not do its job,
never that the client under test misbehaved.
"""

from __future__ import annotations

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


class HarnessError(Exception):
    """Base of every error the harness raises on purpose (exit status 2)."""

    def __init__(self, summary: str, *, evidence: str = "", hint: str = "") -> None:
        self.summary = summary
        self.evidence = evidence
        self.hint = hint
        super().__init__(summary)

    def __str__(self) -> str:
        parts = [self.summary]
        if self.evidence:
            parts.append(self.evidence.rstrip())
        if self.hint:
            parts.append(f"Hint: {self.hint}")
        return "\n".join(parts)


class EnvError(HarnessError):
    """The chaos environment (nats-server, Toxiproxy, containers) could not be used."""


class MissingBinaryError(EnvError):
    """A required executable is not installed or not executable."""


class StartupError(EnvError):
    """A server did not become ready; carries the tail of its log."""


class ToxiproxyError(EnvError):
    """The Toxiproxy API refused a call or could not be reached."""
