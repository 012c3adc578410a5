"""The ports tests and the bench give their child processes: never one a client socket can take."""

from __future__ import annotations

import socket

import pytest

from sandbox import server
from sandbox.server import port_for_a_child


def test_ports_for_children_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    ports = [port_for_a_child() for _ in range(50)]
    assert len(set(ports)) == 50  # two children never get the same one
    assert all(10_000 <= port < server._ephemeral_start() for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port_for_a_child()))  # free when handed out


def test_a_listening_port_is_skipped() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", port_for_a_child()))
    taken.listen()
    try:
        server._child_ports_left.rotate(1)  # the next call would give that port again
        assert server._child_ports_left[0] == taken.getsockname()[1]
        assert port_for_a_child() != taken.getsockname()[1]
    finally:
        taken.close()


def test_each_xdist_worker_has_a_slice_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    slices = []
    for worker in range(4):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
        slices.append(set(server._child_ports()))
    for one in range(4):
        for other in range(one + 1, 4):
            assert not slices[one] & slices[other]
