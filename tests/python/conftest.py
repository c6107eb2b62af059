"""Fixtures of the Python test suite: one driver per backend this build and machine offer.

Every test taking ``driver`` runs on the memory driver and on the files driver (in a fresh
temporary folder), and on the kafka driver when the package was built with it and
``DIASPORA_KAFKA_BOOTSTRAP`` names a broker, and on the mofka driver when the package was built
with it and ``DIASPORA_MOFKA_GROUP_FILE`` names a service's group file.
"""

import os
import uuid

import pytest

from diaspora_stream.api import Driver, builtin_drivers


def _backends():
    out = ["memory", "files"]
    if "kafka" in builtin_drivers() and os.environ.get("DIASPORA_KAFKA_BOOTSTRAP"):
        out.append("kafka")
    if "mofka" in builtin_drivers() and os.environ.get("DIASPORA_MOFKA_GROUP_FILE"):
        out.append("mofka")
    return out


@pytest.fixture(params=_backends())
def driver(request, tmp_path):
    backend = request.param
    if backend == "files":
        return Driver(backend="files", options={"root_path": str(tmp_path / "topics")})
    if backend == "mofka":
        return Driver(
            backend="mofka", options={"group_file": os.environ["DIASPORA_MOFKA_GROUP_FILE"]}
        )
    if backend == "kafka":
        bootstrap = os.environ["DIASPORA_KAFKA_BOOTSTRAP"]
        return Driver(backend="kafka", options={"kafka": {"bootstrap.servers": bootstrap}})
    return Driver(backend="memory", options={"namespace": f"pytest-{uuid.uuid4()}"})


@pytest.fixture
def topic_args(driver):
    """Topic options that work on every backend (one replica on the test broker)."""
    return {"replication_factor": 1} if "kafka" in repr(driver).lower() else {}


@pytest.fixture
def topic(driver, topic_args):
    name = f"t-{uuid.uuid4().hex[:12]}"
    driver.create_topic(name, options=topic_args)
    return driver.open_topic(name)
