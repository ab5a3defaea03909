"""An HTTP check's verdict on the bytes read so far (haguard.core.httpanswer): given as
soon as the bytes decide it, never before, and always once the answer has ended or
reached the read limit."""

from __future__ import annotations

import pytest

from haguard.core.healthconfig import HttpSpec
from haguard.core.httpanswer import BODY_LIMIT, request, verdict

PLAIN, BODY = HttpSpec("/"), HttpSpec("/", body="ready")


@pytest.mark.parametrize(("data", "ended", "spec", "expected"), [
    (b"", False, PLAIN, None),
    (b"HTTP/1.1 200 O", False, PLAIN, None),                  # the status line goes on
    (b"HTTP/1.1 200 OK\r\n", False, PLAIN, (True, "HTTP 200 from /")),
    (b"HTTP/1.1 500 Oops\r\n", False, PLAIN, (False, "HTTP 500 from /")),
    (b"HTTP/1.1 200 OK\r\n", False, BODY, None),              # headers still to come
    (b"HTTP/1.1 200 OK\r\nX: 1\r\n\r\nstart", False, BODY, None),   # the body goes on
    (b"HTTP/1.1 200 OK\r\nX: 1\r\n\r\nall ready", False, BODY, (True, "HTTP 200 from /")),
    (b"HTTP/1.1 200 OK\r\nX: 1\r\n\r\nstart", True, BODY,
     (False, "HTTP 200 from / without 'ready' in the body")),
    (b"HTTP/1.1 200", True, PLAIN, (True, "HTTP 200 from /")),   # ended without a newline
    (b"", True, PLAIN, (False, "not an HTTP answer from /: 'nothing'")),
    (b"x" * BODY_LIMIT, False, PLAIN,
     (False, "not an HTTP answer from /: '" + "x" * 60 + "'")),
    (b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * BODY_LIMIT, False, BODY,
     (False, "HTTP 200 from / without 'ready' in the body")),
    (b"HTTP/1.1 200 OK\r\n\r\n" + b"a" * BODY_LIMIT + b"ready", False, BODY,
     (False, "HTTP 200 from / without 'ready' in the body")),   # past the limit
])
def test_the_verdict_comes_as_soon_as_the_bytes_decide_it(
        data: bytes, ended: bool, spec: HttpSpec, expected: tuple[bool, str] | None) -> None:
    assert verdict(data, ended, spec) == expected


def test_the_request_names_the_host_by_address_and_port_unless_told() -> None:
    assert b"Host: 192.0.2.21:8080\r\n" in request("192.0.2.21", 8080, PLAIN)
    assert b"Host: [2001:db8::21]:80\r\n" in request("2001:db8::21", 80, PLAIN)
    assert b"Host: www.example.org\r\n" in request("192.0.2.21", 80,
                                                   HttpSpec("/", host="www.example.org"))
