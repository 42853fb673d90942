"""The procgrpc error model: raise an exception, the caller gets a rich gRPC status.

Raise one of the classes below from a servicer method (sync or async) and the
worker ends the call with its code, message and details (google.rpc
error_details messages, sent packed in ``grpc-status-details-bin``)::

    from procgrpc import errors

    raise errors.NotFound("no user 42", errors.resource_info("user", "42"))
    raise errors.Unavailable("warming up", retry_after=2.5)

Or end the call directly with :func:`abort_with_details`.
"""

from __future__ import annotations

import inspect
from typing import Any, Awaitable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status

__all__ = [
    "Metadata",
    "RpcStatusError",
    "InvalidArgument",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "Unauthenticated",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "DeadlineExceeded",
    "Cancelled",
    "Unknown",
    "error_info",
    "retry_info",
    "bad_request",
    "debug_info",
    "quota_failure",
    "precondition_failure",
    "resource_info",
    "request_info",
    "help",
    "localized_message",
    "build_status",
    "abort_with_details",
]

#: Metadata as grpcio takes it: a sequence of (key, value) pairs; values of keys
#: ending in "-bin" are bytes.
Metadata = Sequence[Tuple[str, Union[str, bytes]]]


class RpcStatusError(Exception):
    """An exception that ends the call with ``code``, ``message`` and rich ``details``.

    ``details`` are google.rpc.error_details_pb2 messages (see the builders in
    this module); ``trailing_metadata`` is sent with the status.
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, code: grpc.StatusCode, message: str, *details: Message,
                 trailing_metadata: Optional[Metadata] = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: List[Message] = list(details)
        self.trailing_metadata: Tuple[Tuple[str, Union[str, bytes]], ...] = tuple(trailing_metadata or ())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}, {self.message!r})"


class _CodedError(RpcStatusError):
    """Base of the one-class-per-code errors: the code comes from the class."""

    def __init__(self, message: str, *details: Message, trailing_metadata: Optional[Metadata] = None) -> None:
        super().__init__(type(self).code, message, *details, trailing_metadata=trailing_metadata)


class _RetryableError(_CodedError):
    """A coded error that may carry a RetryInfo built from ``retry_after`` seconds."""

    def __init__(self, message: str, *details: Message, retry_after: Optional[float] = None,
                 trailing_metadata: Optional[Metadata] = None) -> None:
        extra = (retry_info(retry_after),) if retry_after is not None else ()
        super().__init__(message, *details, *extra, trailing_metadata=trailing_metadata)
        self.retry_after = retry_after


class InvalidArgument(_CodedError):
    """INVALID_ARGUMENT: the request is malformed whatever the system state."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(_CodedError):
    """NOT_FOUND: a requested entity does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(_CodedError):
    """ALREADY_EXISTS: the entity the caller tried to create exists."""

    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(_CodedError):
    """PERMISSION_DENIED: the caller may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(_CodedError):
    """UNAUTHENTICATED: the caller has no valid credentials."""

    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(_RetryableError):
    """RESOURCE_EXHAUSTED: a quota or capacity ran out; ``retry_after`` adds RetryInfo."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(_CodedError):
    """FAILED_PRECONDITION: the system is not in a state the operation needs."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(_CodedError):
    """ABORTED: a concurrency conflict; retry at a higher level."""

    code = grpc.StatusCode.ABORTED


class OutOfRange(_CodedError):
    """OUT_OF_RANGE: the operation went past the valid range."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(_CodedError):
    """UNIMPLEMENTED: the operation is not supported."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(_CodedError):
    """INTERNAL: an invariant broke."""

    code = grpc.StatusCode.INTERNAL


class Unavailable(_RetryableError):
    """UNAVAILABLE: transient; retrying may succeed. ``retry_after`` adds RetryInfo."""

    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(_CodedError):
    """DATA_LOSS: unrecoverable data loss or corruption."""

    code = grpc.StatusCode.DATA_LOSS


class DeadlineExceeded(_CodedError):
    """DEADLINE_EXCEEDED: the operation ran out of time."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(_CodedError):
    """CANCELLED: the operation was cancelled."""

    code = grpc.StatusCode.CANCELLED


class Unknown(_CodedError):
    """UNKNOWN: an error with no better code."""

    code = grpc.StatusCode.UNKNOWN


# ---------------------------------------------------------------- detail builders

def _pairs(items: Union[Mapping[str, str], Iterable[Tuple[str, str]]]) -> List[Tuple[str, str]]:
    if isinstance(items, Mapping):
        return [(str(k), str(v)) for k, v in items.items()]
    return [(str(a), str(b)) for a, b in items]


def error_info(reason: str, domain: str, metadata: Optional[Mapping[str, str]] = None) -> Message:
    """ErrorInfo: a machine-readable ``reason`` (UPPER_SNAKE_CASE) within ``domain``."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=domain)
    for key, value in (metadata or {}).items():
        info.metadata[str(key)] = str(value)
    return info  # type: ignore[no-any-return]


def retry_info(seconds: float) -> Message:
    """RetryInfo: the client should wait ``seconds`` before retrying."""
    delay = duration_pb2.Duration()
    whole = int(max(0.0, seconds))
    delay.seconds = whole
    delay.nanos = int(round((max(0.0, seconds) - whole) * 1e9))
    return error_details_pb2.RetryInfo(retry_delay=delay)  # type: ignore[no-any-return]


def bad_request(field_violations: Union[Mapping[str, str], Iterable[Tuple[str, str]]]) -> Message:
    """BadRequest: ``{field: description}`` or ``[(field, description), ...]``."""
    msg = error_details_pb2.BadRequest()
    for field, description in _pairs(field_violations):
        msg.field_violations.add(field=field, description=description)
    return msg  # type: ignore[no-any-return]


def debug_info(stack_entries: Iterable[str], detail: str = "") -> Message:
    """DebugInfo: stack entries and a detail string (never sent by default; see PROCGRPC_DEBUG)."""
    return error_details_pb2.DebugInfo(stack_entries=list(stack_entries), detail=detail)  # type: ignore[no-any-return]


def quota_failure(violations: Union[Mapping[str, str], Iterable[Tuple[str, str]]]) -> Message:
    """QuotaFailure: ``{subject: description}`` or ``[(subject, description), ...]``."""
    msg = error_details_pb2.QuotaFailure()
    for subject, description in _pairs(violations):
        msg.violations.add(subject=subject, description=description)
    return msg  # type: ignore[no-any-return]


def precondition_failure(violations: Iterable[Tuple[str, str, str]]) -> Message:
    """PreconditionFailure: ``[(type, subject, description), ...]``."""
    msg = error_details_pb2.PreconditionFailure()
    for type_, subject, description in violations:
        msg.violations.add(type=type_, subject=subject, description=description)
    return msg  # type: ignore[no-any-return]


def resource_info(resource_type: str, resource_name: str, owner: str = "", description: str = "") -> Message:
    """ResourceInfo: which resource the error is about."""
    return error_details_pb2.ResourceInfo(  # type: ignore[no-any-return]
        resource_type=resource_type, resource_name=resource_name, owner=owner, description=description)


def request_info(request_id: str, serving_data: str = "") -> Message:
    """RequestInfo: the request's id (e.g. the ``x-request-id`` the pool sent) and any
    data that helps the server's operators find it, for bug reports."""
    return error_details_pb2.RequestInfo(  # type: ignore[no-any-return]
        request_id=request_id, serving_data=serving_data)


def help(links: Union[Mapping[str, str], Iterable[Tuple[str, str]]]) -> Message:  # noqa: A001
    """Help: ``{description: url}`` or ``[(description, url), ...]``."""
    msg = error_details_pb2.Help()
    for description, url in _pairs(links):
        msg.links.add(description=description, url=url)
    return msg  # type: ignore[no-any-return]


def localized_message(locale: str, message: str) -> Message:
    """LocalizedMessage: ``message`` in ``locale`` (e.g. "en-US") for end users."""
    return error_details_pb2.LocalizedMessage(locale=locale, message=message)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- status building

def build_status(code: grpc.StatusCode, message: str, details: Iterable[Message] = (),
                 trailing_metadata: Optional[Metadata] = None) -> Any:
    """Build the ``grpc.Status`` for ``context.abort_with_status``.

    The google.rpc.Status (code, message, details packed as Any) travels in
    ``grpc-status-details-bin``; ``trailing_metadata`` is sent alongside.
    """
    if code == grpc.StatusCode.OK:
        raise ValueError("an error status cannot have code OK")
    proto = status_pb2.Status(code=code.value[0], message=message)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        proto.details.append(packed)
    status = rpc_status.to_status(proto)
    if not trailing_metadata:
        return status
    extra = tuple((k, v) for k, v in trailing_metadata if k != _DETAILS_KEY)
    return _Status(status.code, status.details, extra + tuple(status.trailing_metadata))


_DETAILS_KEY = "grpc-status-details-bin"


class _Status(grpc.Status):
    """A grpc.Status with extra trailing metadata next to the rich details."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: Tuple[Any, ...]) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def abort_with_details(context: Any, code: grpc.StatusCode, message: str, *details: Message,
                       trailing_metadata: Optional[Metadata] = None) -> Optional[Awaitable[None]]:
    """End the call with ``code``, ``message`` and rich ``details``.

    In a ``def`` servicer method this raises at once (like ``context.abort``).
    In an ``async def`` method it returns an awaitable: write
    ``await abort_with_details(context, ...)``.
    """
    result = context.abort_with_status(build_status(code, message, details, trailing_metadata))
    if inspect.isawaitable(result):
        return result
    return None
