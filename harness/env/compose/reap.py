"""Finding and removing compose projects: a run's own at stop, and those of runs that died.

Every container carries `org.nats-chaos.owner=<pid>:<start time>` of the process that
started its project; a project whose owner is gone (SIGKILLed run) is reaped by the next
run's start and by `harness env reap --env compose`. Only projects named `nats-chaos-*`
with such an owner are considered.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import psutil

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
# Set on both services from CHAOS_OWNER: "<pid>:<create time>" of the process that started
# the project, so that the next run can reap the stack of a run that was SIGKILLed.
OWNER_LABEL = "org.nats-chaos.owner"
PROJECT_PREFIX = "nats-chaos-"


def owner_mark() -> str:
    me = psutil.Process()
    return f"{me.pid}:{me.create_time():.2f}"


def owner_alive(mark: str) -> bool:
    try:
        pid, ct = mark.split(":")
        return abs(psutil.Process(int(pid)).create_time() - float(ct)) < 0.05
    except (ValueError, psutil.Error):
        return False


def remove_project(client: Any, project: str) -> list[str]:
    """Remove (through the API) every container, network and volume of a compose project.

    Returns what could not be removed, as "kind name" strings (empty when clean).
    """
    label = {"label": [f"{PROJECT_LABEL}={project}"]}
    left: list[str] = []
    for c in _safe(lambda: client.containers.list(all=True, filters=label)):
        try:
            if c.status == "paused":
                c.unpause()
            c.remove(force=True, v=True)
        except Exception as e:
            if "no such container" not in str(e).lower():
                left.append(f"container {c.name}")
    for n in _safe(lambda: client.networks.list(filters=label)):
        try:
            n.remove()
        except Exception as e:
            if "not found" not in str(e).lower():
                left.append(f"network {n.name}")
    for v in _safe(lambda: client.volumes.list(filters=label)):
        try:
            v.remove(force=True)
        except Exception as e:
            if "no such volume" not in str(e).lower():
                left.append(f"volume {v.name}")
    return left


def _safe(listing: Callable[[], Iterable[Any]]) -> list[Any]:
    try:
        return list(listing())
    except Exception:
        return []


def project_resources(client: Any, project: str) -> list[str]:
    """Containers, networks and volumes still labelled with `project`, as "kind name" strings."""
    label = {"label": [f"{PROJECT_LABEL}={project}"]}
    return (
        [f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
        + [f"network {n.name}" for n in client.networks.list(filters=label)]
        + [f"volume {v.name}" for v in client.volumes.list(filters=label)]
    )


def reap_stale_projects(client: Any) -> list[str]:
    """Remove the stacks of earlier runs whose owner process is gone (e.g. SIGKILLed).

    Only projects whose containers carry our owner label are considered; a stack started
    by hand with the Compose CLI (owner "manual", CHAOS_OWNER unset) is never touched. Returns the projects removed.
    """
    stale: set[str] = set()
    for c in _safe(lambda: client.containers.list(all=True, filters={"label": [OWNER_LABEL]})):
        owner = c.labels.get(OWNER_LABEL, "")
        project = c.labels.get(PROJECT_LABEL, "")
        if project.startswith(PROJECT_PREFIX) and owner not in ("", "manual") and not owner_alive(owner):
            stale.add(project)
    for project in sorted(stale):
        remove_project(client, project)
    return sorted(stale)
