"""Local compose images built by several runs at once: built once, each from a whole context.

Before: every build assembled its context in the shared compose/.build/{nats,toxiproxy}
(rmtree, mkdir, copy), so a second run's build removed the first one's context under it,
and both built. Here the engine is a stand-in that records what each build saw; no Docker.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from harness.env.compose import images


class Engine:
    """The part of the Docker client build_images uses: images.build and images.get."""

    def __init__(self) -> None:
        self.images = self
        self.built: list[tuple[str, list[str]]] = []
        self._have: set[str] = set()
        self._lock = threading.Lock()

    def get(self, tag: str) -> str:
        if tag not in self._have:
            raise LookupError(f"no such image: {tag}")
        return tag

    def build(self, *, path: str, tag: str, rm: bool, pull: bool) -> None:
        files = sorted(p.name for p in Path(path).iterdir())
        time.sleep(0.2)  # a build takes a while: others arrive meanwhile
        assert sorted(p.name for p in Path(path).iterdir()) == files, "context changed during the build"
        with self._lock:
            self.built.append((tag, files))
            self._have.add(tag)


@pytest.fixture
def build_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / ".build"
    (d / "bin").mkdir(parents=True)
    for name in ("healthcheck", "toxiproxy-server"):
        (d / "bin" / name).write_text("binary")
    (tmp_path / "nats-server").write_text("binary")
    monkeypatch.setattr(images, "BUILD_DIR", d)
    monkeypatch.setattr(images, "HEALTHCHECK_BIN", d / "bin" / "healthcheck")
    monkeypatch.setattr(images, "STATIC_TOXIPROXY_BIN", d / "bin" / "toxiproxy-server")
    monkeypatch.setattr(images, "find_binary", lambda *a: str(tmp_path / "nats-server"))
    monkeypatch.setattr(images, "local_image_tags", lambda: {"NATS_IMAGE": "localhost/nats-chaos/nats:9.9.9",
                                                             "TOXIPROXY_IMAGE": "localhost/nats-chaos/toxiproxy:2.12.0"})
    return d


def test_runs_missing_the_images_at_once_build_each_once_from_a_whole_context(build_dir: Path) -> None:
    engine = Engine()
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def run() -> None:
        try:
            start.wait(10)
            images.build_images(engine, only_missing=True)
        except BaseException as e:  # handed to the test thread
            failures.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failures, failures
    assert engine.built == [("localhost/nats-chaos/nats:9.9.9", ["Dockerfile", "nats-server"]),
                            ("localhost/nats-chaos/toxiproxy:2.12.0", ["Dockerfile", "toxiproxy-server"])]
    assert sorted(p.name for p in build_dir.iterdir()) == [".lock", "bin"]  # private contexts removed


def test_an_explicit_rebuild_builds_even_when_the_images_exist(build_dir: Path) -> None:
    engine = Engine()
    images.build_images(engine)
    images.build_images(engine)  # `harness env images`: the binaries may have changed
    assert len(engine.built) == 4
