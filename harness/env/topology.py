"""A topology is a value the environment takes: one node (today's default) or a 3-node cluster."""

from __future__ import annotations

import dataclasses

SIZES = (1, 3)


@dataclasses.dataclass(frozen=True, order=True)
class Topology:
    """How many nats-server nodes the environment runs (3: a JetStream cluster, R3 possible)."""

    nodes: int = 1

    def __post_init__(self) -> None:
        if self.nodes not in SIZES:
            raise ValueError(f"a topology has 1 or 3 nodes, not {self.nodes}")

    @property
    def is_cluster(self) -> bool:
        return self.nodes > 1

    @property
    def label(self) -> str:
        return f"cluster{self.nodes}" if self.is_cluster else "single"

    @classmethod
    def parse(cls, value: object) -> "Topology":
        """`3`, "3" -> a 3-node cluster; None, 0, 1 -> a single server; anything else: ValueError."""
        if value in (None, "", 0, "0"):
            return SINGLE
        try:
            n = int(str(value))
        except ValueError:
            raise ValueError(f"a cluster size is a number (1 or 3), not {value!r}") from None
        return cls(n)


SINGLE = Topology(1)
CLUSTER3 = Topology(3)
