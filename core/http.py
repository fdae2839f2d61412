"""DUIS XML over HTTP/1.1, like the DCC's test tools: the HTTP side of a server connection.

``POST /api/v1/serviceS``, ``/api/v1/serviceT`` and ``/api/v1/serviceD`` take one DUIS XML
Service Request (``Content-Length`` required; keep-alive). The answer is synchronous: a DUIS
``Response`` with ``I99`` (200), ``400`` with the :class:`~dccsim.core.errors.MessageError`
text for a bad request, ``413`` for a body over ``max_frame_bytes`` (then close), ``503`` when
busy. The final response is kept (bounded, oldest dropped first) and polled with
``GET /api/v1/response/<RequestID>``: 200 with the DUIS XML, 404 while pending or unknown.
The three paths are treated alike (dccsim does not check signatures).

Methods are case-sensitive (RFC 9110): ``GET`` and ``POST`` are served, another known method
gets ``405``, anything else (``get``, ``BREW``) ``501``; a connection whose request is not
complete in time gets ``408`` and is closed (``server.header_timeout_s``,
``server.frame_timeout_s``), as is one idle for ``server.idle_timeout_s``.

A connection speaks HTTP when its first byte is an ASCII letter (:func:`starts_http`): a
request line starts with its method, and no frame can (its first byte is its length's highest,
and ``max_frame_bytes`` is at most 1 GiB, so that byte is at most ``0x40``);
its :class:`HttpAdapter` then parses the requests out of the connection's buffer, hands them
to the server (:mod:`dccsim.core.server`) and writes the replies through the connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .columns import RequestBatch
from .duisxml import decode_request_xml, encode_response_xml
from .errors import MessageError
from .messages import Response
from .protocol import SERVICE_PATHS

if TYPE_CHECKING:
    from .server import _Conn

__all__ = ["HttpAdapter", "RESULT_PATH", "starts_http"]

#: the path prefix under which final responses are polled: ``GET RESULT_PATH + RequestID``
RESULT_PATH = b"/api/v1/response/"
_LETTERS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"))
_MAX_HEAD = 16384
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def starts_http(first: bytes | bytearray) -> bool:
    """Whether a connection whose first bytes are ``first`` (one or more) speaks HTTP (else: frames)."""
    return first[0] in _LETTERS


class HttpAdapter:
    """The HTTP requests of one connection: parsed from its buffer, answered through it."""

    __slots__ = ("conn",)

    def __init__(self, conn: _Conn):
        self.conn = conn

    def received(self) -> bool:
        """Handle every complete request in the connection's buffer (while it speaks HTTP);
        whether one was."""
        conn = self.conn
        buf = conn.buf
        handled = False
        while conn.mode == "http":
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                if len(buf) > _MAX_HEAD:
                    self._reply(431, b"text/plain", b"request header fields too large\n", close=True)
                return handled
            head = bytes(buf[:head_end]).decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self._reply(400, b"text/plain", b"malformed request line: expected METHOD PATH HTTP/1.1\n", close=True)
                return handled
            method, path, _version = parts
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            try:
                length = int(headers.get("content-length", "0"))
                if length < 0:
                    raise ValueError
            except ValueError:
                self._reply(400, b"text/plain", b"Content-Length: expected a non-negative integer\n", close=True)
                return handled
            if length > conn.cfg.max_frame_bytes:
                conn.server.counters.oversized += 1
                self._reply(
                    413,
                    b"text/plain",
                    f"body of {length} bytes exceeds the maximum of {conn.cfg.max_frame_bytes}\n".encode(),
                    close=True,
                )
                return handled
            if len(buf) < head_end + 4 + length:
                return handled
            body = bytes(buf[head_end + 4 : head_end + 4 + length])
            del buf[: head_end + 4 + length]
            close = headers.get("connection", "").lower() == "close"
            handled = True
            self._request(method, path.encode("latin-1"), body, close)
        return handled

    def reply_and_close(self, status: int, why: str) -> None:
        """A plain-text status with ``why``, then close (a time-out, a limit)."""
        self._reply(status, b"text/plain", (why + "\n").encode(), close=True)

    def _request(self, method: str, path: bytes, body: bytes, close: bool) -> None:
        srv = self.conn.server
        srv.counters.http_requests += 1
        if method not in _KNOWN_METHODS:
            srv.counters.malformed += 1
            shown = method[:40].encode("ascii", "backslashreplace")
            self._reply(
                501,
                b"text/plain",
                b"method " + shown + b" not implemented: POST a service request, GET a response "
                b"(methods are case-sensitive)\n",
                close,
            )
            return
        if method == "GET" and path.startswith(RESULT_PATH):
            from urllib.parse import unquote

            rid = unquote(path[len(RESULT_PATH) :].decode("latin-1"))
            xml = srv.http_result(rid)
            if xml is None:
                self._reply(404, b"text/plain", f"no final response for {rid} (pending or unknown)\n".encode(), close)
            else:
                self._reply(200, b"application/xml", xml, close)
            return
        if path not in SERVICE_PATHS:
            self._reply(404, b"text/plain", b"not found: POST to /api/v1/serviceS, serviceT or serviceD\n", close)
            return
        if method != "POST":
            self._reply(405, b"text/plain", b"method not allowed: use POST\n", close)
            return
        try:
            req = decode_request_xml(body)
            row = RequestBatch.from_requests([req])
            srv.check_periods(row)
        except MessageError as exc:
            srv.counters.malformed += 1
            self._reply(400, b"text/plain", (str(exc) + "\n").encode(), close)
            return
        why = srv.room(1)
        if why is not None:
            srv.counters.refused_busy += 1
            self._reply(503, b"text/plain", f"busy: {why}\n".encode(), close)
            return
        srv.counters.acked += 1
        ack = Response.for_request(req, "I99", srv.now_datetime())
        self._reply(200, b"application/xml", encode_response_xml(ack), close)
        srv.enqueue_http(req, row, self.conn.id)

    def _reply(self, status: int, ctype: bytes, body: bytes, close: bool) -> None:
        reason = _REASONS[status]
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: ".encode()
            + ctype
            + f"\r\nContent-Length: {len(body)}\r\n".encode()
            + (b"Connection: close\r\n" if close else b"")
            + b"\r\n"
        )
        self.conn.send(head + body)
        if close:
            self.conn.close_now()
