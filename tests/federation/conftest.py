"""Session-wide peers for the federation tests: one test CA, one Synapse, one Parley."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.federation.peers import Peer, TestCA, make_test_ca, start_parley, start_synapse


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_test_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA) -> Iterator[Peer]:
    peer = start_synapse(tmp_path_factory.mktemp("synapse"), test_ca)
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture(scope="session")
def parley(tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA) -> Iterator[Peer]:
    peer = start_parley(tmp_path_factory.mktemp("parley"), test_ca)
    try:
        yield peer
    finally:
        peer.stop()
