"""_status.wire: one rule for what a servicer's metadata and status message may be, on every transport."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import status_pb2

from procgrpc import errors
from procgrpc._status.wire import MAX_RESPONSE_METADATA_BYTES, checked_metadata, exact_details


def test_legal_metadata_passes_as_a_tuple() -> None:
    pairs = [("x-a", "printable text"), ("x-b-bin", b"\x00\xff"), ("grpc-status-details-bin", b"rich"), ("grpc-retry-pushback-ms", "100")]
    assert checked_metadata(pairs, "trailing metadata") == tuple(pairs)
    assert checked_metadata(None, "trailing metadata") == ()


@pytest.mark.parametrize("pair, problem", [
    (("X-Upper", "v"), "not a legal metadata key"),
    (("bad key", "v"), "not a legal metadata key"),
    (("grpc-status", "0"), "reserved for the transport"),
    (("content-type", "text/plain"), "reserved for the transport"),
    (("x-bin", "text"), "must be bytes"),
    (("x-text", b"bytes"), "must be str"),
    (("x-text", "é"), "not printable ASCII"),
    (("x-text", " edge"), "leading or trailing spaces"),
])
def test_what_the_transports_cannot_carry_alike_is_refused(pair: tuple, problem: str) -> None:
    with pytest.raises(errors.Internal) as raised:
        checked_metadata([pair], "trailing metadata")
    assert raised.value.message.startswith("invalid trailing metadata set by the servicer: ")
    assert problem in raised.value.message


def test_a_block_over_the_limit_is_refused() -> None:
    with pytest.raises(errors.Internal, match="over the limit"):
        checked_metadata([("x-big", "z" * MAX_RESPONSE_METADATA_BYTES)], "initial metadata")


def test_a_message_with_edge_spaces_also_travels_in_status_details() -> None:
    trailing = exact_details(grpc.StatusCode.NOT_FOUND, " gone ", (("x", "y"),))
    assert trailing[0] == ("x", "y")
    key, value = trailing[1]
    assert key == "grpc-status-details-bin"
    status = status_pb2.Status.FromString(value)
    assert (status.code, status.message) == (5, " gone ")
    # Nothing to carry, or rich details the servicer sent itself: untouched.
    assert exact_details(5, "plain", ()) == ()
    assert exact_details(5, " x", (("grpc-status-details-bin", b"mine"),)) == (("grpc-status-details-bin", b"mine"),)
