"""Vocabularies shipped beside a checkpoint, read for their special tokens' ids (never for tokenizing).

Two formats: a WordPiece ``vocab.txt`` (one token per line, the line number is the id) and a sentencepiece
``.model`` (a ``ModelProto``: field 1 repeats ``SentencePiece`` messages whose field 1 is the piece; the
position is the id).  The protobuf is walked here by hand, so reading a vocabulary needs no package.
"""

from __future__ import annotations

from pathlib import Path

_MAX_BYTES = 64 << 20  # a vocabulary is kilobytes to a few megabytes; larger is not one


def read_vocab(path: Path) -> list[str]:
    """The tokens of ``path`` in id order.  Raises ``ValueError`` for a file that is neither format."""
    data = path.read_bytes()[: _MAX_BYTES + 1]
    if len(data) > _MAX_BYTES:
        raise ValueError(f"{path.name} is larger than a vocabulary")
    if path.suffix == ".model":
        return _sentencepiece_pieces(data)
    return data.decode("utf-8").splitlines()


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """A message's (field number, value) pairs: varints as ints, length-delimited fields as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated field")
            out.append((number, data[pos : pos + size]))
            pos += size
        elif wire in (1, 5):  # fixed64 / fixed32 (a piece's score is a float)
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if pos != len(data):
        raise ValueError("truncated message")
    return out


def _sentencepiece_pieces(data: bytes) -> list[str]:
    pieces = []
    for number, value in _fields(data):
        if number == 1 and isinstance(value, bytes):
            piece = next((v for n, v in _fields(value) if n == 1 and isinstance(v, bytes)), b"")
            pieces.append(piece.decode("utf-8"))
    if not pieces:
        raise ValueError("no sentencepiece pieces")
    return pieces
