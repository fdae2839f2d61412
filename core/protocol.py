"""The wire protocol of the wall-clock server: length-prefixed frames over TCP.

One TCP port speaks two protocols, told apart by the first byte of a connection: DUIS XML
over HTTP/1.1 (a connection that starts with an ASCII letter, see :mod:`dccsim.core.http`)
and the frames below (anything else: a frame's first byte is at most ``0x40``, as
``max_frame_bytes`` is at most 1 GiB). The server is :mod:`dccsim.core.server`; the network
load client, :mod:`dccsim.loadgen.netclient`, speaks the same frames.

Frames
------
Every frame, both ways, is::

    length: uint32 big-endian (bytes that follow: tag + payload, 1 .. max_frame_bytes)
    tag:    1 byte
    payload

Client -> server tags:

``R`` compact request batch (the fast path)
    ``batch_id`` (uint64 big-endian) + a MessagePack array of
    :class:`~dccsim.core.messages.RequestRow` arrays. Row ``k`` of the batch is known by
    ``batch_id + k`` in the answers, so a client that numbers its requests ``0, 1, 2 ...`` and
    uses the first number of a batch as its id gets its own numbers back.
``M`` / ``J`` one message or an array of messages, MessagePack / JSON
    :class:`~dccsim.core.messages.ServiceRequest` (kind ``request``),
    :class:`~dccsim.core.messages.DeviceAlert` (``device_alert``, a device emulator feeding
    Alert Storm Protection), :class:`~dccsim.core.messages.Subscribe` (``subscribe``: forward
    the alerts that pass the throttle to this connection, in this format) or
    :class:`~dccsim.core.messages.StatsRequest` (``stats``). Answers come in the same format.

Server -> client tags:

``A`` :class:`~dccsim.core.messages.RowAck` ``[batch_id, count]``: every row of the batch
    accepted, ``I99``.
``F`` final answers of rows: the payload is a whole number of fixed 26-byte records
    (:data:`FINAL_RECORD`, little-endian, no padding): ``id`` uint64, ``wait_ns`` int64 (DSP
    queue, virtual ns), ``backlog`` int64, ``code`` uint8 (index in ``RESPONSE_CODES``),
    ``outcome`` uint8 (index in ``OUTCOMES``). No MessagePack: the server sends slices of
    records it laid out once per micro-batch, the client reads them with one ``frombuffer``.
``B`` :class:`~dccsim.core.messages.BusyReply` (MessagePack map): the whole batch was refused,
    nothing of it was processed; the client may send it again later.
``E`` :class:`~dccsim.core.messages.ErrorReply` (MessagePack map): the frame was malformed
    (names the field, the value and what was expected); nothing of it was processed; the
    connection goes on.
``M`` / ``J`` for the full-message path: a ``Response`` ``I99`` for each request at receipt,
    then its final ``Response``; ``BusyReply`` / ``ErrorReply`` (kinds ``busy`` / ``error``,
    with ``request_ids``); ``DeviceAlert`` to subscribers; ``StatsReply``.
``X`` close: a UTF-8 reason, then the server closes the connection. Sent when the framing
    itself is broken (a zero length), the connection limit is reached, or a time-out closes
    the connection (header, frame, idle, or idle at the limit for a new client).

A frame longer than ``max_frame_bytes`` is skipped as it streams in and answered with an
``E`` frame; the connection goes on. "Busy" is a server-level reply, not a DUIS code: DUIS
has none, and a refused request never reached the DSP.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "FINAL_RECORD",
    "FINAL_RECORD_BYTES",
    "HEADER_BYTES",
    "SERVICE_PATHS",
    "TAG_ACK",
    "TAG_BUSY",
    "TAG_CLOSE",
    "TAG_ERROR",
    "TAG_FINALS",
    "TAG_JSON",
    "TAG_MSGPACK",
    "TAG_ROWS",
    "frame",
    "frame_head",
]

TAG_ROWS, TAG_MSGPACK, TAG_JSON = b"R"[0], b"M"[0], b"J"[0]
TAG_ACK, TAG_FINALS, TAG_BUSY, TAG_ERROR, TAG_CLOSE = b"A"[0], b"F"[0], b"B"[0], b"E"[0], b"X"[0]

#: bytes of a frame's header: the 4-byte length and the tag byte
HEADER_BYTES = 5

#: one final answer of an ``F`` frame: 26 bytes, little-endian, packed (see the module docstring)
FINAL_RECORD = np.dtype([("id", "<u8"), ("wait_ns", "<i8"), ("backlog", "<i8"), ("code", "u1"), ("outcome", "u1")])
#: bytes of one :data:`FINAL_RECORD`
FINAL_RECORD_BYTES = FINAL_RECORD.itemsize

#: the HTTP paths that take a DUIS XML Service Request (:mod:`dccsim.core.http`)
SERVICE_PATHS = (b"/api/v1/serviceS", b"/api/v1/serviceT", b"/api/v1/serviceD")


def frame_head(tag: int, payload_len: int) -> bytes:
    """The first 5 bytes of a frame: 4-byte big-endian length of tag + payload, the tag byte."""
    return (payload_len + 1).to_bytes(4, "big") + bytes((tag,))


def frame(tag: int, payload: bytes) -> bytes:
    """One frame: :func:`frame_head`, then the payload."""
    return frame_head(tag, len(payload)) + payload
