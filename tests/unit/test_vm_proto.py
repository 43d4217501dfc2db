"""The framed protocol between pallet and its guest agent."""

from __future__ import annotations

import pytest

from pallet.vm import proto


def test_frame_header_layout() -> None:
    b = proto.encode(proto.STDOUT, 3, b"hello")
    assert b[:8] == b"O\x00\x00\x03\x00\x00\x00\x05"
    assert b[8:] == b"hello"


def test_decoder_reassembles_split_frames() -> None:
    stream = proto.encode(proto.STDOUT, 0, b"abc") + proto.encode(proto.EXIT, 0, b"7")
    d = proto.Decoder()
    out = []
    for i in range(len(stream)):  # one byte at a time
        out += d.feed(stream[i : i + 1])
    assert out == [proto.Frame("O", 0, b"abc"), proto.Frame("X", 0, b"7")]
    assert d.pending == 0


def test_decoder_keeps_partial_frame() -> None:
    d = proto.Decoder()
    whole = proto.encode(proto.STDERR, 1, b"x" * 100)
    assert d.feed(whole[:50]) == []
    assert d.pending == 50
    assert d.feed(whole[50:]) == [proto.Frame("E", 1, b"x" * 100)]


def test_oversized_frames_are_refused() -> None:
    with pytest.raises(ValueError):
        proto.encode(proto.STDIN, 0, b"x" * (proto.MAX_PAYLOAD + 1))
    hdr = proto.HEADER.pack(ord("O"), 0, 0, proto.MAX_PAYLOAD + 1)
    with pytest.raises(ValueError):
        proto.Decoder().feed(hdr)


def test_chunks_split_large_data() -> None:
    frames = list(proto.encode_chunks(proto.STDIN, 2, b"a" * 10, chunk=4))
    assert [len(f) - 8 for f in frames] == [4, 4, 2]
    assert list(proto.encode_chunks(proto.STDIN, 2, b"")) == []


def test_spec_round_trip() -> None:
    spec = proto.ProcessSpec(
        args=("sh", "-c", "echo 'a b'"),
        env=("PATH=/bin", "EMPTY="),
        cwd="/work dir",
        uid=1000,
        gid=1000,
        additional_gids=(10, 29),
        terminal=True,
    )
    payload = proto.encode_spec(spec)
    assert payload.endswith(b"t1\0")
    assert b"asgh" not in payload and b"ash\0" in payload
    assert proto.decode_spec(payload) == spec


def test_spec_refuses_nul_bytes() -> None:
    with pytest.raises(ValueError, match="NUL"):
        proto.encode_spec(proto.ProcessSpec(args=("a\0b",)))


def test_file_and_share_payloads() -> None:
    assert proto.encode_file("/etc/hosts", b"127.0.0.1 x\n", 0o644) == b"/etc/hosts\x00644\x00127.0.0.1 x\n"
    assert proto.encode_share("vol0", "/data", True) == b"vol0\x00/data\x00ro"
    assert proto.encode_share("vol1", "/w", False).endswith(b"rw")
    assert proto.encode_mount("tmpfs", "tmpfs", "/run", ("nosuid", "size=1m")) == (
        b"tmpfs\x00tmpfs\x00/run\x00nosuid,size=1m")
