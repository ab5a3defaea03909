"""An HTTP check's request, and its verdict on the answer read so far (pure).

What counts as success is keepalived's HTTP_GET / SSL_GET with a status list: a status
in the list (2xx by default) and, where ``body`` is given, that text in the body (the
first BODY_LIMIT bytes of it, chunked framing left in: a text match does not need it
undone). The verdict is given as soon as the bytes decide it, so a probe reads no more
than it must.
"""

from __future__ import annotations

from haguard.core.healthconfig import HttpSpec

BODY_LIMIT = 65536          # bytes of an answer read for its status line and body


def request(address: str, port: int, spec: HttpSpec) -> bytes:
    """The GET a check sends (``Connection: close``: one exchange per connection)."""
    host = spec.host or (f"[{address}]:{port}" if ":" in address else f"{address}:{port}")
    return (f"GET {spec.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: haguard-check"
            "\r\nAccept: */*\r\nConnection: close\r\n\r\n").encode("ascii", "replace")


def verdict(data: bytes, ended: bool, spec: HttpSpec, scheme: str = "HTTP"
            ) -> tuple[bool, str] | None:
    """(up, words) on the answer ``data`` (``ended``: the server has closed it), or None
    while more bytes could change it."""
    line_end = data.find(b"\n")
    if line_end < 0 and not ended and len(data) < BODY_LIMIT:
        return None
    status_line = data if line_end < 0 else data[:line_end]
    parts = status_line.decode("latin-1").split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        words = status_line[:60].decode("latin-1").strip() or "nothing"
        return False, f"not an HTTP answer from {spec.path}: {words!r}"
    status = int(parts[1])
    if status not in spec.status:
        return False, f"{scheme} {status} from {spec.path}"
    said = f"{scheme} {status} from {spec.path}"
    if spec.body is None:
        return True, said
    missing = (False, f"{said} without {spec.body!r} in the body")
    rest = data[line_end + 1:] if line_end >= 0 else b""
    body_at = _headers_end(rest)
    if body_at is None:
        # Headers past the limit, or an answer that ended inside them: no body to match.
        return missing if ended or len(rest) > BODY_LIMIT else None
    body = rest[body_at:body_at + BODY_LIMIT]
    if spec.body.encode() in body:
        return True, said
    return missing if ended or len(body) >= BODY_LIMIT else None


def _headers_end(rest: bytes) -> int | None:
    """Where the body starts in ``rest`` (the answer after its status line), None while
    the blank line that ends the headers has not come."""
    at = 0
    while True:
        end = rest.find(b"\n", at)
        if end < 0:
            return None
        if rest[at:end] in (b"", b"\r"):
            return end + 1
        at = end + 1
