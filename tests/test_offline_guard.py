"""The offline guard of the unit tests: a network attempt fails the test, caught or not."""

from __future__ import annotations

import contextlib
import socket

import pytest

from tests.conftest import NetworkBlockedError, network_guard


def test_a_connection_a_library_catches_still_fails_the_test() -> None:
    # The suppress stands for a library with a broad except around its connection attempt.
    with (
        pytest.raises(pytest.fail.Exception, match="tried to use the network"),
        network_guard(),
        contextlib.suppress(NetworkBlockedError),
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
    ):
        sock.connect(("192.0.2.1", 443))


def test_a_name_lookup_is_caught_too() -> None:
    with (
        pytest.raises(pytest.fail.Exception, match="getaddrinfo"),
        network_guard(),
        contextlib.suppress(NetworkBlockedError),
    ):
        socket.getaddrinfo("example.org", 443)


def test_a_socket_that_never_connects_is_not_network_use() -> None:
    """langchain-openai probes socket options on an unconnected socket when a client is built."""
    with network_guard() as attempts, socket.socket(socket.AF_INET, socket.SOCK_STREAM):
        pass
    assert attempts == []


def test_unix_sockets_stay_allowed() -> None:
    left, right = socket.socketpair()
    left.close()
    right.close()
