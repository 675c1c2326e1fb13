"""The analysis worker speaks Bazel's default (proto) persistent worker protocol.

The byte strings below are written out from protobuf's wire format by hand, so these tests pin
the encoding to the format Bazel uses, not to our own encoder.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from torchpack.bazel.worker_protocol import (
    WorkerProtocolError,
    WorkRequest,
    WorkResponse,
    decode_request,
    encode_response,
    encode_varint,
    read_requests,
    read_response,
    write_request,
    write_response,
)


def test_varints_follow_protobuf():
    assert encode_varint(0) == b"\x00"
    assert encode_varint(1) == b"\x01"
    assert encode_varint(300) == b"\xac\x02"
    # int32 -1 is sign-extended to ten bytes.
    assert encode_varint(-1) == b"\xff" * 9 + b"\x01"


def test_response_bytes_are_protobufs_wire_format():
    # exit_code = 1 (field 1, varint), output = "x" (field 2, bytes), request_id = 7 (field 3).
    assert encode_response(WorkResponse(1, "x", 7)) == b"\x08\x01\x12\x01x\x18\x07"
    # proto3 leaves out default values: a success with no output for request 0 is empty.
    assert encode_response(WorkResponse(0, "", 0)) == b""


def test_request_fields_torchpack_does_not_use_are_skipped():
    message = (
        b"\x0a\x02-a"  # arguments: "-a"
        b"\x12\x0c\x0a\x04f.py\x12\x04\xde\xad\xbe\xef"  # inputs { path, digest }
        b"\x0a\x00"  # arguments: "" (kept: a repeated field keeps empty strings)
        b"\x18\x2a"  # request_id: 42
        b"\x20\x01"  # cancel: true
        b"\x28\x0a"  # verbosity: 10
        b"\x32\x03box"  # sandbox_dir: "box"
        b"\x3d\x01\x02\x03\x04"  # an unknown fixed32 field 7
    )
    assert decode_request(message) == WorkRequest(["-a", ""], 42)


def test_requests_and_responses_round_trip_through_a_stream():
    stream = io.BytesIO()
    sent = [WorkRequest(["--module", "é", ""], 1), WorkRequest([], -3), WorkRequest(["x" * 300])]
    for request in sent:
        write_request(stream, request)
    stream.seek(0)
    assert list(read_requests(stream)) == sent

    stream = io.BytesIO()
    write_response(stream, WorkResponse(2, "failed: ü", 9))
    stream.seek(0)
    assert read_response(stream) == WorkResponse(2, "failed: ü", 9)
    assert read_response(stream) is None


@pytest.mark.parametrize(
    "data",
    [b"\x05\x0a\x02", b"\x80", b"\x02\x0b\x00"],
    ids=["message cut short", "length prefix cut short", "unsupported wire type"],
)
def test_damaged_streams_are_rejected(data):
    with pytest.raises(WorkerProtocolError):
        list(read_requests(io.BytesIO(data)))


def test_the_analysis_worker_answers_each_request_in_order(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("import json\nfrom . import sibling\n")
    output = tmp_path / "mod.json"
    worker = subprocess.Popen(
        [sys.executable, "-S", "-m", "torchpack.bazel.analyze", "--persistent_worker"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO_ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    good = ["--module", "pkg.mod", "--source", str(source), "--output", str(output)]
    write_request(worker.stdin, WorkRequest(good, 1))
    assert read_response(worker.stdout) == WorkResponse(0, "", 1)
    write_request(worker.stdin, WorkRequest(["--module", "pkg.mod"], 2))
    failed = read_response(worker.stdout)
    worker.stdin.close()
    assert worker.wait(timeout=30) == 0, worker.stderr.read()
    assert failed is not None and (failed.exit_code, failed.request_id) == (1, 2)
    assert "--source" in failed.output
    assert "json" in json.loads(output.read_text())["imports"][0]
