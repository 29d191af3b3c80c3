"""The offline guard of the unit tests: a network attempt fails the test, caught or not."""

from __future__ import annotations

import contextlib
import socket

import pytest
from pytest_socket import SocketBlockedError, disable_socket, enable_socket

from tests.conftest import network_guard


def test_a_socket_attempt_a_library_catches_still_fails_the_test() -> None:
    enable_socket()  # step out of this test's own guard, to watch the one under test
    try:
        # The suppress stands for a library with a broad except around its connection attempt.
        with (
            pytest.raises(pytest.fail.Exception, match="tried to use the network"),
            network_guard(),
            contextlib.suppress(SocketBlockedError),
        ):
            socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    finally:
        disable_socket(allow_unix_socket=True)


def test_a_name_lookup_is_caught_too() -> None:
    enable_socket()
    try:
        with (
            pytest.raises(pytest.fail.Exception, match="getaddrinfo"),
            network_guard(),
            contextlib.suppress(SocketBlockedError),
        ):
            socket.getaddrinfo("example.org", 443)
    finally:
        disable_socket(allow_unix_socket=True)


def test_unix_sockets_stay_allowed() -> None:
    left, right = socket.socketpair()
    left.close()
    right.close()
