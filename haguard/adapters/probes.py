"""One probe of one real server, on asyncio: an HTTPS GET, a DNS query, a script (TCP and
plain-HTTP checks run in bulk: adapters/sweep.py). Every probe ends and says what it saw
in words an operator reads in `haguard status` ("connect refused", "HTTPS 503 from
/healthz", "script exit 1: not ready"); none raises. A probe that could not be made here
(no file descriptor, no local port, no memory) says so with ``local`` set: it tells
nothing about the real server.

An HTTPS exchange and a DNS query are bounded by their timeout as a whole.

What counts as success is keepalived's: SSL_GET a status in the list (2xx by default)
and, where asked, text in the body (core.httpanswer), DNS_CHECK a reply to our query with
rcode NOERROR, MISC_CHECK exit 0 (with dynamic weights 0 or 2-255). A script
that outlives its timeout gets SIGTERM on its process group and SIGKILL 2 s later, as
keepalived does.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import signal
import ssl
import struct
import time
from dataclasses import dataclass

from haguard.adapters.keepalived import insecure_path_components
from haguard.core import httpanswer
from haguard.core.healthconfig import DnsSpec, HttpSpec, TlsSpec

KILL_AFTER_S = 2.0          # SIGTERM to SIGKILL for a script past its timeout
DNS_TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16,
             "AAAA": 28, "SRV": 33}


# Errors of this host, not of the real server: a probe failing with one was not made.
LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM,
                          errno.EADDRNOTAVAIL, errno.EAGAIN})


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    duration_s: float
    exit_code: int | None = None      # scripts: what the weight of a dynamic check reads
    local: bool = False               # not made here (``LOCAL_ERRNOS``): no verdict


def _failed(exc: OSError, start: float, words: str | None = None) -> ProbeResult:
    """What an OSError of a probe begun at ``start`` reads as."""
    return _failure(exc, time.monotonic() - start, words)


def connect_failure(err: int, duration_s: float) -> ProbeResult:
    """What a connect that failed with errno ``err`` after ``duration_s`` reads as."""
    return _failure(OSError(err, os.strerror(err)), duration_s)


def _failure(exc: OSError, duration_s: float, words: str | None = None) -> ProbeResult:
    """One of this host's own errors is no verdict; any other is the real server's."""
    if exc.errno in LOCAL_ERRNOS:
        return ProbeResult(False, f"not checked: {exc.strerror or exc} on this director",
                           duration_s, local=True)
    return ProbeResult(False, words or _os_words(exc), duration_s)


def _os_words(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connect refused"
    return f"connect failed: {exc.strerror or exc}"


def _tls_context(tls: TlsSpec) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_default_certs()
    return context


async def https(address: str, port: int, spec: HttpSpec, timeout_s: float,
                tls: TlsSpec) -> ProbeResult:
    """GET ``spec.path`` over TLS, judged as core.httpanswer says; the exchange bounded
    by ``timeout_s`` as a whole."""
    start = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            return await _https(address, port, spec, tls, start)
    except TimeoutError:
        return ProbeResult(False, f"HTTPS timeout after {timeout_s:g} s on {spec.path}",
                           time.monotonic() - start)


async def _https(address: str, port: int, spec: HttpSpec, tls: TlsSpec,
                 start: float) -> ProbeResult:
    context = _tls_context(tls)
    server_name = tls.sni or spec.host
    try:
        reader, writer = await asyncio.open_connection(
            address, port, ssl=context,
            server_hostname=(server_name.split(":")[0] if server_name else
                             (address if tls.verify else None)))
    except ssl.SSLError as exc:
        return ProbeResult(False, f"TLS handshake failed: {exc.reason or exc}",
                           time.monotonic() - start)
    except OSError as exc:
        return _failed(exc, start)
    try:
        writer.write(httpanswer.request(address, port, spec))
        await writer.drain()
        answer = b""
        while True:
            chunk = await reader.read(httpanswer.BODY_LIMIT)
            answer += chunk
            said = httpanswer.verdict(answer, not chunk, spec, "HTTPS")
            if said is not None:
                return ProbeResult(said[0], said[1], time.monotonic() - start)
    except (OSError, ssl.SSLError) as exc:
        return ProbeResult(False, f"HTTPS exchange failed: {exc}", time.monotonic() - start)
    finally:
        writer.transport.abort()


class _DnsReply(asyncio.DatagramProtocol):
    def __init__(self, query_id: int) -> None:
        self.query_id = query_id
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == self.query_id \
                and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


def dns_query(query_id: int, spec: DnsSpec) -> bytes:
    """A recursion-desired query for ``spec.name`` of ``spec.type``, class IN."""
    labels = b"".join(bytes([len(p)]) + p.encode("ascii")
                      for p in spec.name.rstrip(".").split(".") if p)
    return struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + labels + b"\0" + \
        struct.pack("!HH", DNS_TYPES[spec.type], 1)


async def dns(address: str, port: int, spec: DnsSpec, timeout_s: float) -> ProbeResult:
    """A UDP query; a reply with rcode NOERROR is up (keepalived's DNS_CHECK)."""
    start = time.monotonic()
    loop = asyncio.get_running_loop()
    query_id = random.randrange(1, 65536)
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _DnsReply(query_id), remote_addr=(address, port))
    except OSError as exc:
        return _failed(exc, start, f"DNS socket failed: {exc.strerror or exc}")
    try:
        transport.sendto(dns_query(query_id, spec))
        data = await asyncio.wait_for(protocol.reply, timeout_s)
    except TimeoutError:
        return ProbeResult(False, f"no DNS reply within {timeout_s:g} s",
                           time.monotonic() - start)
    except OSError as exc:
        return ProbeResult(False, _os_words(exc).replace("connect", "DNS query"),
                           time.monotonic() - start)
    finally:
        transport.close()
    flags = struct.unpack("!H", data[2:4])[0]
    rcode = flags & 0x0F
    if not flags & 0x8000 or rcode:
        return ProbeResult(False, f"DNS rcode {rcode} for {spec.name} {spec.type}",
                           time.monotonic() - start)
    answers = struct.unpack("!H", data[6:8])[0]
    return ProbeResult(True, f"DNS NOERROR for {spec.name} {spec.type} ({answers} answers)",
                       time.monotonic() - start)


async def command(argv: tuple[str, ...], timeout_s: float, user: str | None = None
                  ) -> ProbeResult:
    """Run ``argv`` (as ``user``, in its own process group); exit 0 is success.

    Script security, as keepalived's enable_script_security: a program that is not
    root's, or that someone else could change (it or a directory above it), is refused."""
    start = time.monotonic()
    unsafe = insecure_path_components(argv[0])
    if unsafe:
        return ProbeResult(False, f"refused by script security: {unsafe[0]}",
                           time.monotonic() - start)
    # Only root can run a command as another user; a user's own agent runs it as itself.
    as_user = user if user is not None and os.geteuid() == 0 else None
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, start_new_session=True, close_fds=True,
            user=as_user, group=_group_of(as_user) if as_user else None,
            extra_groups=[] if as_user else None)
    except OSError as exc:
        return _failed(exc, start, f"cannot run {argv[0]}: {exc}")
    except (KeyError, ValueError) as exc:
        return ProbeResult(False, f"cannot run {argv[0]}: {exc}", time.monotonic() - start)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        await _kill_group(proc)
        return ProbeResult(False, f"{os.path.basename(argv[0])} timed out after "
                                  f"{timeout_s:g} s", time.monotonic() - start)
    code = proc.returncode if proc.returncode is not None else -1
    first = next((line for line in err.decode("utf-8", "replace").splitlines()
                  if line.strip()), "")
    words = f"exit {code}" if code >= 0 else f"killed by signal {-code}"
    detail = f"{os.path.basename(argv[0])} {words}" + (f": {first[:200]}" if first else "")
    return ProbeResult(code == 0, detail, time.monotonic() - start, exit_code=code)


def _group_of(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), KILL_AFTER_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    # What the script left behind in its group goes too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
