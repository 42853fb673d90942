"""What a servicer sets that the transports must carry the same way: its metadata and its status message.

The plain transport is HTTP/2, whose rules grpc applies only in part: a text value with a
leading or trailing space is dropped by the client's HTTP/2 stack, a non-ASCII one ends the
call with INTERNAL on the server, and a header block over the client's limit breaks the whole
connection (every call on it then hangs until its deadline). The pipelined transport would carry
all of these. So both transports check what the servicer sets here, with one rule and one error
(an INTERNAL status whose message says what was wrong), and a status message with edge spaces —
which HTTP/2 would turn into "" — also travels exactly in ``grpc-status-details-bin``, whose
``message`` the pool reads when ``grpc-message`` arrived empty.
"""

from __future__ import annotations

import re
from typing import Any, Sequence, Tuple

import grpc
from google.rpc import status_pb2  # type: ignore[import-untyped]

from .. import errors

__all__ = ["checked_metadata", "exact_details", "MAX_RESPONSE_METADATA_BYTES"]

_LEGAL_KEY = re.compile(r"^[0-9a-z_.-]+$")
_LEGAL_TEXT = re.compile(r"^[\x20-\x7e]*$")
# Keys the transport writes itself (other grpc-* keys are the servicer's to send: rich details in
# grpc-status-details-bin, server pushback in grpc-retry-pushback-ms).
_RESERVED = re.compile(r"^(grpc-status|grpc-message|grpc-encoding|grpc-accept-encoding|grpc-timeout|content-type|te|user-agent|host|accept-encoding)$")
_DETAILS_KEY = "grpc-status-details-bin"

#: The most metadata a servicer may send in one block (headers, or trailers), counted as HTTP/2
#: does (name + value + 32 per entry). Far below what breaks a Node client's connection.
MAX_RESPONSE_METADATA_BYTES = 16384


def _problem(key: Any, value: Any) -> str:
    if not isinstance(key, str) or not _LEGAL_KEY.match(key):
        return f"key {key!r} is not a legal metadata key (lower-case letters, digits, '-', '_', '.')"
    if _RESERVED.match(key):
        return f"key {key!r} is reserved for the transport"
    if key.endswith("-bin"):
        if not isinstance(value, (bytes, bytearray)):
            return f"the value of {key!r} must be bytes (its key ends in -bin)"
        return ""
    if not isinstance(value, str):
        return f"the value of {key!r} must be str (keys ending in -bin take bytes)"
    if not _LEGAL_TEXT.match(value):
        return f"the value of {key!r} is not printable ASCII (use a -bin key for other bytes)"
    if value != value.strip(" "):
        return f"the value of {key!r} has leading or trailing spaces, which HTTP/2 drops"
    return ""


def checked_metadata(metadata: Any, what: str) -> Tuple[Tuple[str, Any], ...]:
    """``metadata`` as a tuple, or ``errors.Internal`` naming what the transport cannot carry."""
    pairs = tuple(metadata) if metadata else ()
    size = 0
    for pair in pairs:
        try:
            key, value = pair
        except (TypeError, ValueError):
            raise errors.Internal(f"invalid {what} set by the servicer: {pair!r} is not a (key, value) pair") from None
        problem = _problem(key, value)
        if problem:
            raise errors.Internal(f"invalid {what} set by the servicer: {problem}")
        size += len(key) + (len(value) if isinstance(value, (bytes, bytearray)) else len(value.encode())) + 32
    if size > MAX_RESPONSE_METADATA_BYTES:
        raise errors.Internal(f"invalid {what} set by the servicer: {size} bytes, over the limit of {MAX_RESPONSE_METADATA_BYTES}")
    return pairs


def exact_details(code: Any, details: str, trailing: Sequence[Tuple[str, Any]]) -> Tuple[Tuple[str, Any], ...]:
    """``trailing``, plus a ``grpc-status-details-bin`` carrying ``details`` when HTTP/2 would
    not carry them as they are (edge spaces) and the servicer sent no rich details of its own."""
    pairs = tuple(trailing)
    if not details or details == details.strip(" ") or any(k == _DETAILS_KEY for k, _ in pairs):
        return pairs
    number = code.value[0] if isinstance(code, grpc.StatusCode) else int(code)
    return pairs + ((_DETAILS_KEY, status_pb2.Status(code=number, message=details).SerializeToString()),)
