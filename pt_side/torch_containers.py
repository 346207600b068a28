"""The two ``torch.save`` containers, read without torch: each file parsed into one shape (:class:`Parsed`: the
pickle's object and the storages its persistent ids name, each located in the file).

``torch.save`` writes a pickle whose tensors are calls to ``torch._utils._rebuild_tensor_v2``
(or ``_v3`` for dtypes without a legacy storage class) over *persistent ids* that name
storages stored beside the pickle.  Two containers exist:

* zip (PyTorch >= 1.6): ``<archive>/data.pkl`` plus one uncompressed member
  ``<archive>/data/<key>`` per storage, ``<archive>/byteorder`` (``little``/``big``,
  absent before 1.10 = little) and ``<archive>/version``;
  persistent id ``('storage', StorageType, key, location, numel)``.
* legacy (before 1.6): back-to-back pickles (magic number, protocol version, sys_info,
  the object, the list of storage keys) then, per key in that order, an 8-byte
  little-endian element count and the raw little-endian bytes;
  persistent id ``('storage', StorageType, root_key, location, numel, view_metadata)``.

The pickles are read by the restricted unpickler (:mod:`pt_side.restricted_unpickler`).
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from bridge.core.errors import BridgeError, CorruptCheckpoint, UnsafeCheckpoint, UnsupportedFeature
from bridge.core.source import Window, file_arg
from pt_side._files import ZIP_ERRORS, is_count
from pt_side.restricted_unpickler import REDOWNLOAD, RESAVE, Malformed, Storage, StorageType, unpickle

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
MAGIC_BYTES = LEGACY_MAGIC.to_bytes(10, "little")  # as the pickle's LONG1 opcode stores it
ZIP_LOCAL = b"PK\x03\x04"


@dataclass
class Parsed:
    """One file's pickle and storages, before flattening."""

    path: Path
    obj: Any
    style: str  # "zip" or "legacy"
    big_endian: bool = False
    storages: dict[str, Storage] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    packed: zipfile.ZipFile | None = None  # only for compressed zip members


def _storage_from_pid(pid: Any, path: Path, storages: dict[str, Storage], legacy: bool) -> Storage:
    if not isinstance(pid, tuple) or not pid:
        raise Malformed(f"persistent id {pid!r} is not a tuple")
    typename = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
    if typename == "module" and legacy:
        # Whole-module pickles of old torch carry module source code to compare.
        raise UnsafeCheckpoint(
            "Refusing a pickled nn.Module",
            path=path,
            detail="the file is a whole model (torch.save(model)), whose classes plain torch.load imports",
            hint=RESAVE,
        )
    if typename != "storage" or len(pid) != (6 if legacy else 5):
        raise Malformed(f"unexpected persistent id {pid!r}")
    storage_type, key, location, numel = pid[1], pid[2], pid[3], pid[4]
    if not isinstance(storage_type, StorageType) or not isinstance(key, str) or not is_count(numel):
        raise Malformed(f"unexpected persistent id {pid!r}")
    root = storages.get(key)
    if root is None:
        root = storages[key] = Storage(key, storage_type.dtype, int(numel), str(location))
    elif root.dtype != storage_type.dtype or root.numel != numel:
        raise Malformed(f"storage {key} is described two different ways")
    view = pid[5] if legacy else None
    if view is None:
        return root
    # Legacy storage views: (view_key, offset, size) in elements of the root.
    if not (isinstance(view, tuple) and len(view) == 3 and is_count(view[1]) and is_count(view[2])):
        raise Malformed(f"unexpected storage view {view!r}")
    _, offset, size = view
    if offset + size > root.numel:
        raise Malformed(f"storage view {view!r} runs past storage {key}")
    return Storage(key, root.dtype, int(size), root.location, root=root, base=offset * root.itemsize)


def parse_zip(path: Path, window: tuple[int, int] | None = None) -> Parsed:
    """A torch.save zip archive: the whole file, or the ``(start, length)`` window of it that holds one."""
    start, size = window if window is not None else (0, path.stat().st_size)
    source: Any = Window(path, start, size) if window is not None else file_arg(path)
    try:
        archive = zipfile.ZipFile(source)
    except ZIP_ERRORS as exc:
        if window is not None:
            source.close()
        raise CorruptCheckpoint(
            "Damaged zip archive",
            path=path,
            detail=f"{exc} (a torch.save file cut short loses the zip directory at its end)",
            hint=REDOWNLOAD,
        ) from None

    def shut() -> None:  # zipfile leaves a file object it was given open
        archive.close()
        if window is not None:
            source.close()

    try:
        infos = {info.filename: info for info in archive.infolist()}
        pickles = [n for n in infos if n.endswith("/data.pkl") and n.count("/") == 1]
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in infos):
            raise UnsupportedFeature(
                "TorchScript archive",
                path=path,
                detail="written by torch.jit.save, not torch.save",
                hint="Load it with torch.jit.load in a trusted environment and save its state_dict()",
            )
        if len(pickles) != 1:
            raise CorruptCheckpoint(
                "Not a torch.save archive",
                path=path,
                detail=f"expected one <archive>/data.pkl member, found {len(pickles)}",
                hint="Check that the file was written by torch.save",
            )
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = archive.read(prefix + "byteorder").strip() if prefix + "byteorder" in infos else b"little"
        if byteorder not in (b"little", b"big"):
            raise CorruptCheckpoint(
                "Damaged torch.save archive",
                path=path,
                detail=f"byteorder record says {byteorder!r}",
                hint=REDOWNLOAD,
            )
        parsed = Parsed(path, None, "zip", big_endian=byteorder == b"big")
        parsed.facts["archive"] = prefix.rstrip("/")
        for record in ("version", ".format_version"):
            if prefix + record in infos:
                parsed.facts[record.lstrip(".")] = archive.read(prefix + record).decode("ascii", "replace").strip()
        data = io.BytesIO(archive.read(pickles[0]))  # small; zipfile checks its CRC

        def persistent(pid: Any) -> Storage:
            return _storage_from_pid(pid, path, parsed.storages, legacy=False)

        parsed.obj = unpickle(data, path, "torch.save pickle (data.pkl)", persistent)
        with Window(path, start, size) as raw:
            for key, storage in parsed.storages.items():
                member = f"{prefix}data/{key}"
                storage.member = member
                info = infos.get(member)
                if info is None:
                    raise CorruptCheckpoint(
                        "Damaged torch.save archive",
                        path=path,
                        detail=f"the pickle uses storage {key} but the archive has no member {member}",
                        hint=REDOWNLOAD,
                    )
                if info.file_size != storage.nbytes:
                    raise CorruptCheckpoint(
                        "Damaged torch.save archive",
                        path=path,
                        detail=f"member {member} holds {info.file_size} bytes, its storage needs {storage.nbytes}",
                        hint=REDOWNLOAD,
                    )
                if info.compress_type == zipfile.ZIP_STORED:
                    storage.file_offset = start + _member_data_offset(cast(IO[bytes], raw), info, path, size)
                else:
                    parsed.packed = archive  # re-zipped with compression: read, cannot map
    except BridgeError:
        shut()
        raise
    except ZIP_ERRORS as exc:
        shut()
        raise CorruptCheckpoint(
            "Damaged zip archive", path=path, detail=f"{type(exc).__name__}: {exc}", hint=REDOWNLOAD
        ) from None
    except BaseException:
        shut()
        raise
    if parsed.packed is None:
        shut()
    return parsed


def _member_data_offset(raw: IO[bytes], info: zipfile.ZipInfo, path: Path, size: int) -> int:
    """Where a stored member's bytes start: after its local header, whose extra field
    (torch pads it to align storages) may differ from the central directory's copy."""
    header = b""
    if info.header_offset >= 0:  # a damaged directory can say anything
        raw.seek(info.header_offset)
        header = raw.read(30)
    if len(header) < 30 or header[:4] != ZIP_LOCAL:
        raise CorruptCheckpoint(
            "Damaged zip archive",
            path=path,
            detail=f"no local header for member {info.filename}",
            hint=REDOWNLOAD,
        )
    name_len, extra_len = (int(n) for n in struct.unpack_from("<HH", header, 26))
    start = info.header_offset + 30 + name_len + extra_len
    if start + info.file_size > size:
        raise CorruptCheckpoint(
            "Damaged zip archive",
            path=path,
            detail=f"member {info.filename} runs past the end of the file",
            hint=REDOWNLOAD,
        )
    return start


class _Capped(io.RawIOBase):
    """A file whose ``read(n)`` never asks for more than the bytes left.

    ``BufferedReader.read(n)`` allocates ``n`` bytes before reading: a damaged BINSTRING length of 4 GiB in a
    legacy pickle would otherwise allocate 4 GiB to read a few bytes.
    """

    def __init__(self, raw: IO[bytes], size: int) -> None:
        super().__init__()
        self._raw = raw
        self._size = size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def read(self, n: int | None = -1) -> bytes:
        left = max(0, self._size - self._raw.tell())
        return self._raw.read(left if n is None or n < 0 else min(n, left))

    def readinto(self, buffer: Any) -> int:
        return self._raw.readinto(buffer)  # type: ignore[attr-defined,no-any-return]

    def readline(self, limit: int | None = -1) -> bytes:
        return self._raw.readline(-1 if limit is None else limit)


def parse_legacy(path: Path) -> Parsed:
    parsed = Parsed(path, None, "legacy")
    size = path.stat().st_size
    with path.open("rb") as raw_file:
        f = cast(IO[bytes], _Capped(raw_file, size))  # what the unpickler and the offsets below need
        magic = unpickle(f, path, "legacy torch.save header")
        if magic != LEGACY_MAGIC:
            raise CorruptCheckpoint(
                "Not a torch.save file",
                path=path,
                detail="neither a zip archive nor a legacy pickle with torch's magic number",
                hint="Check that the file was written by torch.save",
            )
        protocol = unpickle(f, path, "legacy torch.save header")
        if protocol != LEGACY_PROTOCOL:
            raise UnsupportedFeature(
                "Unknown legacy torch.save protocol",
                path=path,
                detail=f"protocol {protocol!r}, this reader knows {LEGACY_PROTOCOL}",
                hint="Re-save it with a current torch (zip format)",
            )
        sys_info = unpickle(f, path, "legacy torch.save header")
        if isinstance(sys_info, dict):
            # Storage bytes are always little-endian in this format; sys_info describes the writer.
            parsed.facts["sys_info"] = {k: v for k, v in sys_info.items() if isinstance(k, str)}

        def persistent(pid: Any) -> Storage:
            return _storage_from_pid(pid, path, parsed.storages, legacy=True)

        parsed.obj = unpickle(f, path, "torch.save pickle", persistent)
        keys = unpickle(f, path, "legacy storage key list")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise CorruptCheckpoint(
                "Damaged legacy torch.save file",
                path=path,
                detail="the storage key list is not a list of str",
                hint=REDOWNLOAD,
            )
        offset = f.tell()
        for key in keys:
            storage = parsed.storages.get(key)
            if storage is None:
                raise CorruptCheckpoint(
                    "Damaged legacy torch.save file",
                    path=path,
                    detail=f"storage {key} is stored but no tensor names it, so its element size is unknown",
                    hint=REDOWNLOAD,
                )
            f.seek(offset)
            head = f.read(8)
            if len(head) < 8:
                raise _truncated(path, key, size)
            (count,) = struct.unpack("<q", head)
            if count != storage.numel:
                raise CorruptCheckpoint(
                    "Damaged legacy torch.save file",
                    path=path,
                    detail=f"storage {key} holds {count} elements but the pickle says {storage.numel}",
                    hint=REDOWNLOAD,
                )
            storage.file_offset = offset + 8
            offset += 8 + storage.nbytes
            if offset > size:
                raise _truncated(path, key, size)
    return parsed


def _truncated(path: Path, key: str, size: int) -> CorruptCheckpoint:
    return CorruptCheckpoint(
        "Truncated legacy torch.save file",
        path=path,
        detail=f"storage {key} runs past the end of the file ({size} bytes)",
        hint=REDOWNLOAD,
    )


def parse(path: Path) -> Parsed:
    with path.open("rb") as f:
        head = f.read(512)
    if head.startswith(ZIP_LOCAL) or (head[:4] == b"PK\x05\x06"):
        return parse_zip(path)
    if head[257:262] == b"ustar":
        raise UnsupportedFeature(
            "Tar-format torch.save file",
            path=path,
            detail="the tar container of the earliest PyTorch releases is not read",
            hint="Load it with an old torch in a trusted environment and save it again with a current one",
        )
    return parse_legacy(path)
