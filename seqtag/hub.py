"""Whether the Hugging Face hub can be reached, answered within seconds, and what is in its local caches.

``datasets.load_dataset`` retries a failed connection five times with growing pauses (about 25 s,
a ``Retrying`` line each time) before it gives up, and a server that accepts a connection but never
answers can hold it far longer. Before a download seqtag therefore probes the hub's endpoint once,
under one deadline: the name lookup, the TCP connection and a TLS handshake. Any failure is a short
reason for a one-line :class:`~seqtag.errors.HubUnavailableError`; a copy in the local cache is still
used then (:func:`cache_only`), as ``HF_HUB_OFFLINE=1`` would.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
import urllib.request
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import urlparse

from .errors import HubUnavailableError

__all__ = ["PROBE_SECONDS", "OFFLINE_HINT", "probe_hub", "hub_endpoint", "is_connection_error", "offline_mode",
           "cache_only", "unavailable"]

PROBE_SECONDS = 4.0
OFFLINE_HINT = "use local files (set SEQTAG_CORPORA or pass --dataset PATH) or HF_HUB_OFFLINE=1 for a cached copy"


def offline_mode() -> bool:
    """Whether the user asked for the local caches only (``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE``)."""
    return any(os.environ.get(var, "").strip().lower() not in ("", "0", "false", "no", "off")
               for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


@contextmanager
def cache_only() -> Iterator[None]:
    """Within the block, ``datasets`` and ``huggingface_hub`` read their local caches and never connect.

    Both libraries read ``HF_HUB_OFFLINE`` once, at import, into a module constant, so setting the
    variable now would change nothing: the constants are switched for the block and restored after.
    Their "using the cached copy" log lines are held back too; the caller says so in its own words.
    """
    import datasets
    from huggingface_hub import constants

    saved = (datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE, datasets.logging.get_verbosity())
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    datasets.logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved[:2]
        datasets.logging.set_verbosity(saved[2])


def unavailable(message: str, reason: str) -> HubUnavailableError:
    """The one-line error for a dataset or model the hub cannot give; ``reason`` is the short cause."""
    err = HubUnavailableError(message)
    err.reason = reason
    return err


def hub_endpoint() -> str:
    """The hub's address as ``huggingface_hub`` uses it (``HF_ENDPOINT`` when set)."""
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def _proxy_for(scheme: str, host: str) -> tuple[str, int] | None:
    """The proxy (host, port) that the HTTP client would use for ``host``, from the environment."""
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme) or proxies.get("all")
    if not url or urllib.request.proxy_bypass_environment(host):  # type: ignore[attr-defined]  # not in typeshed
        return None
    parsed = urlparse(url if "://" in url else f"http://{url}")
    try:
        port = parsed.port
    except ValueError:
        return None
    return (parsed.hostname, port or 8080) if parsed.hostname else None


def _handshake(host: str, port: int, tls: bool, proxy: tuple[str, int] | None, deadline: float) -> str | None:
    """DNS, TCP and a TLS handshake (an HTTP answer for http) with ``host:port``; ``None`` when all went through."""
    def left() -> float:
        return max(0.05, deadline - time.monotonic())

    target = proxy or (host, port)
    name = f"{target[0]}:{target[1]}" + (" (the proxy)" if proxy else "")
    try:
        sock = socket.create_connection(target, timeout=left())
    except socket.gaierror:
        return f"the name {target[0]} does not resolve (DNS)"
    except ConnectionRefusedError:
        return f"{name} refused the connection"
    except TimeoutError:
        return f"{name} did not accept a connection"
    except OSError as exc:
        return f"{name} cannot be reached ({exc.strerror or type(exc).__name__})"
    with sock:
        if proxy is not None:  # what lies behind the proxy is the HTTP client's to find out, after CONNECT
            return None
        sock.settimeout(left())
        if not tls:  # a plain http endpoint: any answer to a request shows a server is there
            try:
                sock.sendall(f"HEAD / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                if sock.recv(1):
                    return None
                return f"{name} closed the connection without answering"
            except TimeoutError:
                return f"{name} accepted the connection but did not answer"
            except OSError as exc:
                return f"{name} closed the connection ({exc.strerror or type(exc).__name__})"
        try:
            with ssl.create_default_context().wrap_socket(sock, server_hostname=host):
                return None
        except ssl.SSLCertVerificationError:
            # the server speaks TLS: it is there. Whether its certificate is trusted is the HTTP
            # client's decision (it may use another CA bundle), so the probe does not refuse it.
            return None
        except TimeoutError:
            return f"{name} accepted the connection but did not answer the TLS handshake"
        except ssl.SSLError as exc:
            return f"{name} accepted the connection but the TLS handshake failed ({exc.reason or exc})"
        except OSError as exc:
            return f"{name} closed the connection during the TLS handshake ({exc.strerror or type(exc).__name__})"


def probe_hub(timeout: float = PROBE_SECONDS) -> str | None:
    """``None`` when the hub's endpoint answers a TLS handshake, else a short reason, within about ``timeout`` s.

    The probe runs in a daemon thread, because a name lookup cannot be given a timeout: a resolver
    that hangs is abandoned at the deadline.
    """
    try:
        endpoint = hub_endpoint()
    except Exception:  # pragma: no cover - huggingface_hub comes with datasets
        return "huggingface_hub is not installed"
    url = urlparse(endpoint)
    host = url.hostname
    if not host or url.scheme not in ("http", "https"):
        return f"the hub endpoint {endpoint!r} (HF_ENDPOINT) is not an http(s) address"
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        return f"the hub endpoint {endpoint!r} (HF_ENDPOINT) has an invalid port"
    deadline = time.monotonic() + timeout
    result: list[str | None] = []
    worker = threading.Thread(target=lambda: result.append(
        _handshake(host, port, url.scheme == "https", _proxy_for(url.scheme, host), deadline)), daemon=True)
    worker.start()
    worker.join(timeout + 0.5)  # the grace lets a stage that timed out at the deadline give its own reason
    if not result:
        return f"{host}:{port} did not answer within {timeout:g} s"
    return result[0]


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is a network failure, not a missing dataset."""
    seen: set[int] = set()
    current: Any = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError, socket.gaierror, ssl.SSLError)):
            return True
        if any(cls.__name__ in ("TransportError", "ConnectError", "TimeoutException", "ProxyError")
               for cls in type(current).__mro__):  # httpx's (and its forks') network errors, without importing them
            return True
        current = current.__cause__ or current.__context__
    return False
