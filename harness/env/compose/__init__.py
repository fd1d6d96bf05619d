"""The compose backend: nats-server and Toxiproxy as containers of a per-run Compose project.

- `connection`: the Docker API (`docker_host`, `docker_client`, `docker_unavailable_reason`)
  and the Compose CLI (`compose_command`);
- `images`: the local FROM-scratch images (`build_images`, `harness env images`);
- `stack`: `ComposeEnvironment`, the environment itself (one nats-server);
- `cluster`: `ComposeClusterEnvironment`, a 3-node JetStream cluster (`--env compose --cluster 3`);
- `reap`: finding and removing projects (`remove_project`, `reap_stale_projects`,
  `harness env reap --env compose`).

Its command line is `harness env` (harness/cli_env.py); compose/compose.mk calls it through
scripts/compose-stack.sh.
"""

from __future__ import annotations

from harness.env.compose.connection import compose_command, docker_client, docker_host, docker_unavailable_reason
from harness.env.compose.images import build_images, local_image_tags
from harness.env.compose.reap import (
    OWNER_LABEL,
    PROJECT_LABEL,
    PROJECT_PREFIX,
    SERVICE_LABEL,
    project_resources,
    reap_stale_projects,
    remove_project,
)
from harness.env.compose.cluster import ComposeClusterEnvironment
from harness.env.compose.stack import ComposeEnvironment

__all__ = [
    "OWNER_LABEL",
    "PROJECT_LABEL",
    "PROJECT_PREFIX",
    "SERVICE_LABEL",
    "ComposeClusterEnvironment",
    "ComposeEnvironment",
    "build_images",
    "compose_command",
    "docker_client",
    "docker_host",
    "docker_unavailable_reason",
    "local_image_tags",
    "project_resources",
    "reap_stale_projects",
    "remove_project",
]
