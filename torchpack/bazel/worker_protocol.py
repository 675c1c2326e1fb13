"""Bazel's persistent worker protocol in its default (proto) form, encoded by hand.

Bazel writes ``WorkRequest`` messages to a worker's stdin and reads ``WorkResponse`` messages
from its stdout, each a protobuf message preceded by its length as a varint (protobuf's
``writeDelimitedTo``). Every Bazel from 4 to 8 speaks it without flags, unlike the JSON form.
Only the fields torchpack uses are encoded; unknown fields are skipped, as protobuf does. No
protobuf dependency: the analysis worker runs with ``python -S`` and must stay torch-free.

Field numbers, from Bazel's ``worker_protocol.proto``::

    message WorkRequest  { repeated string arguments = 1; int32 request_id = 3; ... }
    message WorkResponse { int32 exit_code = 1; string output = 2; int32 request_id = 3; }

Both directions are here: the worker's (``read_requests``, ``write_response``) and Bazel's
(``write_request``, ``read_response``), which tests and the benchmark play.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
_REQUEST_ARGUMENTS, _REQUEST_ID = 1, 3
_RESPONSE_EXIT_CODE, _RESPONSE_OUTPUT, _RESPONSE_REQUEST_ID = 1, 2, 3


class WorkerProtocolError(Exception):
    """The bytes on the worker's stdin are not a length-delimited WorkRequest."""


@dataclass(frozen=True)
class WorkRequest:
    arguments: list[str] = field(default_factory=list)
    request_id: int = 0


@dataclass(frozen=True)
class WorkResponse:
    exit_code: int = 0
    output: str = ""
    request_id: int = 0


def encode_varint(value: int) -> bytes:
    """Protobuf's base-128 varint; a negative int32 takes ten bytes (two's complement)."""
    value &= (1 << 64) - 1
    encoded = bytearray()
    while value > 0x7F:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


def _decode_varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise WorkerProtocolError("truncated or overlong varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def _int32(value: int) -> int:
    """A varint read back as protobuf's int32 (negative values were sign-extended to 64 bits)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _fields(message: bytes) -> Iterator[tuple[int, int | bytes]]:
    """``(field number, value)`` of every field: an int for varints, bytes for the rest."""
    position = 0
    while position < len(message):
        key, position = _decode_varint(message, position)
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == _VARINT:
            value, position = _decode_varint(message, position)
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _decode_varint(message, position)
            value, position = message[position : position + length], position + length
        elif wire_type in (_FIXED64, _FIXED32):
            width = 8 if wire_type == _FIXED64 else 4
            value, position = message[position : position + width], position + width
        else:
            raise WorkerProtocolError(f"field {number} has unsupported wire type {wire_type}")
        if position > len(message):
            raise WorkerProtocolError(f"field {number} runs past the end of the message")
        yield number, value


def _varint_field(number: int, value: int) -> bytes:
    # proto3 leaves out fields that hold their default value.
    return encode_varint(number << 3 | _VARINT) + encode_varint(value) if value else b""


def _length_delimited(number: int, value: bytes) -> bytes:
    return encode_varint(number << 3 | _LENGTH_DELIMITED) + encode_varint(len(value)) + value


def _read_delimited(stream: BinaryIO) -> bytes | None:
    """The next length-prefixed message; ``None`` at a clean end of the stream."""
    prefix = bytearray()
    while True:
        byte = stream.read(1)
        if not byte:
            if prefix:
                raise WorkerProtocolError("the stream ended inside a length prefix")
            return None
        prefix += byte
        if not byte[0] & 0x80:
            break
    length, _ = _decode_varint(bytes(prefix), 0)
    message = stream.read(length)
    if len(message) != length:
        raise WorkerProtocolError(f"the stream ended {length - len(message)} bytes into a message")
    return message


def _write_delimited(stream: BinaryIO, message: bytes) -> None:
    stream.write(encode_varint(len(message)) + message)
    stream.flush()


def decode_request(message: bytes) -> WorkRequest:
    arguments: list[str] = []
    request_id = 0
    for number, value in _fields(message):
        if number == _REQUEST_ARGUMENTS and isinstance(value, bytes):
            arguments.append(value.decode("utf-8"))
        elif number == _REQUEST_ID and isinstance(value, int):
            request_id = _int32(value)
    return WorkRequest(arguments, request_id)


def encode_request(request: WorkRequest) -> bytes:
    # Every element of a repeated field is written, empty strings included.
    arguments = b"".join(
        _length_delimited(_REQUEST_ARGUMENTS, argument.encode("utf-8"))
        for argument in request.arguments
    )
    return arguments + _varint_field(_REQUEST_ID, request.request_id)


def decode_response(message: bytes) -> WorkResponse:
    exit_code, output, request_id = 0, "", 0
    for number, value in _fields(message):
        if number == _RESPONSE_EXIT_CODE and isinstance(value, int):
            exit_code = _int32(value)
        elif number == _RESPONSE_OUTPUT and isinstance(value, bytes):
            output = value.decode("utf-8")
        elif number == _RESPONSE_REQUEST_ID and isinstance(value, int):
            request_id = _int32(value)
    return WorkResponse(exit_code, output, request_id)


def encode_response(response: WorkResponse) -> bytes:
    output = response.output.encode("utf-8")
    return (
        _varint_field(_RESPONSE_EXIT_CODE, response.exit_code)
        + (_length_delimited(_RESPONSE_OUTPUT, output) if output else b"")
        + _varint_field(_RESPONSE_REQUEST_ID, response.request_id)
    )


def read_requests(stream: BinaryIO) -> Iterator[WorkRequest]:
    """The worker's side: every WorkRequest Bazel sends, until it closes the stream."""
    while (message := _read_delimited(stream)) is not None:
        yield decode_request(message)


def write_response(stream: BinaryIO, response: WorkResponse) -> None:
    _write_delimited(stream, encode_response(response))


def write_request(stream: BinaryIO, request: WorkRequest) -> None:
    """Bazel's side: send one WorkRequest."""
    _write_delimited(stream, encode_request(request))


def read_response(stream: BinaryIO) -> WorkResponse | None:
    """Bazel's side: the next WorkResponse, ``None`` if the worker closed its stdout."""
    message = _read_delimited(stream)
    return None if message is None else decode_response(message)
