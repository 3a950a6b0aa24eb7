from collections.abc import Iterator

import pytest

from tests.support.emulator import EmulatorProcess
from tests.support.postgres import PostgresCluster, cluster_fixture


@pytest.fixture
def emulator() -> Iterator[EmulatorProcess]:
    """A fresh emulator process with quick runs."""
    with EmulatorProcess("--run-seconds", "0.3") as emu:
        yield emu


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL server for the session (skipped where there is none, failed in
    CI): see tests/support/postgres.py."""
    yield from cluster_fixture()


@pytest.fixture
def pg_url(postgres_cluster: PostgresCluster) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    return postgres_cluster.create_database()
