"""The ``rgw`` fixture: one real Ceph RADOS Gateway (an S3 engine) for the whole test session.

It is created in a temporary directory on first use (installing the Debian packages when they
are missing, which needs root), listens on 127.0.0.1 on a free port, and is stopped at the end
of the session (gateway → OSD → monitor). Tests that kill or stop the gateway must restart it
before they return (``RgwHandle.restart()``; use try/finally) so that later tests find it up.
Each test should use its own bucket (``new_bucket_name()``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kyso.dev.rgw import CEPH_PACKAGES, RadosGateway, RgwError

__all__ = ["RgwHandle", "new_bucket_name", "rgw"]

_counter = itertools.count()


def new_bucket_name(prefix: str = "t") -> str:
    """A bucket name unique in this session and valid for S3 (lowercase, 3-63 characters)."""
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class RgwHandle:
    """What a test needs to talk to the gateway, and to take it down and up again."""

    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    gateway: RadosGateway = field(repr=False)

    def kill(self) -> None:
        """SIGKILL the gateway process (the monitor and OSD keep running)."""
        self.gateway.kill_gateway()

    def stop(self) -> None:
        """Stop the gateway process cleanly."""
        self.gateway.stop_gateway()

    def restart(self) -> None:
        """Start the gateway again (no-op when running) and wait until it answers S3.

        When the gateway will not come back, the whole cluster is restarted, so that one bad
        restart on a loaded machine does not fail every later test of the session.
        """
        try:
            self.gateway.start_gateway()
        except RgwError:
            self.gateway.stop()
            self.gateway.start()

    @property
    def pid(self) -> int | None:
        return self.gateway.gateway_pid()


@pytest.fixture(scope="session")
def rgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RgwHandle]:
    """A running RADOS Gateway with one S3 user; skips only when Ceph cannot be installed."""
    if os.geteuid() != 0 and not shutil.which("radosgw"):
        pytest.skip(
            "Ceph's RADOS Gateway is not installed and installing it needs root: "
            f"apt-get install -y --no-install-recommends {' '.join(CEPH_PACKAGES)}"
        )
    workdir: Path = tmp_path_factory.mktemp("rgw")
    gateway = RadosGateway(workdir)
    try:
        gateway.start()
        user = gateway.create_user("kyso-test")
    except RgwError:
        gateway.stop()
        raise
    try:
        yield RgwHandle(
            endpoint=gateway.endpoint,
            access_key=user.access_key,
            secret_key=user.secret_key,
            gateway=gateway,
        )
    finally:
        gateway.stop()
