"""Where checkpoint bytes come from: a local file (memory-mapped, the fast path) or an fsspec URL read by ranges.

A URL (``gs://b/model.ckpt-1000``, ``s3://...``, ``https://host/tf_model.h5``) becomes a :class:`RemotePath`: a
``Path`` whose names derive like local ones (``.parent``, ``/ "config.json"``, ``.with_name``) and whose I/O goes
through fsspec with range requests, so a reader asks for the bytes it needs and no file is downloaded whole.
Readers keep their local code; where they map a file they ask :func:`is_remote` and read ranges instead.

http(s) cannot list a directory: there a URL names a file or a checkpoint prefix, or (ending in ``/``) a folder
whose files are probed by name (``config.json``, ``model.safetensors``, a TF ``checkpoint`` state file).
fsspec (and aiohttp, the http back-end) are imported on the first URL only.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Generator, Iterator
from pathlib import Path, PosixPath
from typing import IO, Any, ClassVar, cast
from urllib.parse import urlsplit

import numpy as np

from bridge.core.errors import BridgeError, CorruptCheckpoint, MissingDependency, UsageError

_URL = re.compile(r"^(?P<protocol>[A-Za-z][A-Za-z0-9+.-]+)://")
# Protocols whose servers cannot list a folder: a URL there names files, never a pattern.
_UNLISTABLE = frozenset({"http", "https"})
# Reads of h5/zip metadata are small and scattered (h5py asks for 300-500 bytes at a time): they are served from
# blocks of this size, cached per file and shared by every opening of it (detection opens a file more than once);
# a read at least this large (a tensor) is one range request of exactly its bytes, never cached.
BLOCK = 16 * 1024
_CACHED_BLOCKS = 1024  # 16 MiB at most, per protocol://host
INSTALL_HINT = "Install the remote extra: pip install 'ckpt-bridge[remote]' (gs:// also needs [gcs], s3:// [s3])"


class RemoteError(BridgeError):
    """A URL that could not be read: unreachable host, refused access, a timeout, a short answer."""


def is_url(text: str | os.PathLike[str]) -> bool:
    return isinstance(text, str) and _URL.match(text) is not None and not isinstance(text, Path)


def is_remote(path: object) -> bool:
    return isinstance(path, RemotePath)


def as_path(path: str | os.PathLike[str]) -> Path:
    """A local ``Path`` (``~`` expanded), or a :class:`RemotePath` for a URL."""
    if isinstance(path, RemotePath):
        return path
    if isinstance(path, str) and is_url(path):
        return _remote(path)
    return Path(path).expanduser()


def local_only(path: str | os.PathLike[str], what: str) -> Path:
    """An output location: a URL there is a usage error (outputs are written locally, then renamed)."""
    if isinstance(path, RemotePath) or (isinstance(path, str) and is_url(path)):
        raise UsageError(
            f"{what} must be a local directory",
            path=str(path),
            detail="bridge reads URLs but writes locally (a temporary sibling renamed at the end)",
            hint="Write to a local directory, then upload it (gsutil cp -r, aws s3 cp --recursive)",
        )
    return Path(path).expanduser()


def file_arg(path: Path) -> Any:
    """What to give a library that opens a name or a file object (h5py, zipfile): the local path itself (its own
    fast path), or a ranged-read file object for a URL."""
    return path.open("rb") if isinstance(path, RemotePath) else path


# --------------------------------------------------------------------------- the remote path


class RemotePath(PosixPath):
    """A file or folder behind a URL. One subclass per ``protocol://host`` root (:func:`_remote`), so that every
    path derived from it (``parent``, ``/``, ``with_name``) keeps its root on every Python pathlib supports."""

    _remote_root: ClassVar[str] = ""
    _remote_protocol: ClassVar[str] = ""
    _remote_fs: ClassVar[Any] = None
    _remote_info: ClassVar[dict[str, dict[str, Any] | None]] = {}
    _remote_dirs: ClassVar[set[str]] = set()  # folders named with a trailing '/' where listing is impossible
    _remote_lock: ClassVar[threading.Lock] = threading.Lock()
    _remote_blocks: ClassVar[OrderedDict[tuple[str, int], bytes]] = OrderedDict()

    def __str__(self) -> str:
        return self._remote_root + self.as_posix()

    def as_posix(self) -> str:
        return PosixPath.__str__(self)

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __fspath__(self) -> str:
        # A reader that still opens by name gets a name no local file has: it fails as not found, never reads
        # a local file by accident.
        return str(self)

    def __hash__(self) -> int:
        return hash(str(self))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and str(self) == str(other)

    def absolute(self) -> RemotePath:
        return self

    def resolve(self, strict: bool = False) -> RemotePath:
        return self

    def expanduser(self) -> RemotePath:
        return self

    # -- metadata (one request per name, remembered: detection asks the same questions several times) --

    def _stat_info(self) -> dict[str, Any] | None:
        url = str(self)
        with self._remote_lock:
            if url in self._remote_info:
                return self._remote_info[url]
        info: dict[str, Any] | None = _call(url, lambda: _info_or_none(self._remote_fs, url))
        with self._remote_lock:
            self._remote_info[url] = info
        return info

    def exists(self, *, follow_symlinks: bool = True) -> bool:
        return self.is_dir() or self._stat_info() is not None

    def is_file(self) -> bool:
        if self.as_posix() in self._remote_dirs:
            return False
        info = self._stat_info()
        return info is not None and info.get("type") != "directory"

    def is_dir(self) -> bool:
        if self._remote_protocol in _UNLISTABLE:
            return self.as_posix() in self._remote_dirs
        info = self._stat_info()
        return info is not None and info.get("type") == "directory"

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        info = self._stat_info()
        if info is None:
            raise FileNotFoundError(2, "No such file", str(self))
        size = info.get("size")
        if not isinstance(size, int):
            raise RemoteError(
                "Size unknown",
                path=self,
                detail="the server names no Content-Length, so ranges cannot be checked",
                hint="Serve the file with its size (a plain static file server does)",
            )
        return os.stat_result((0o100444, 0, 0, 1, 0, 0, size, 0, 0, 0))

    def iterdir(self) -> Generator[RemotePath, None, None]:
        if self._remote_protocol in _UNLISTABLE:
            return
        for name in _call(str(self), lambda: self._remote_fs.ls(str(self), detail=False)):
            yield self._child(str(name))

    def glob(self, pattern: str, **_: Any) -> Iterator[RemotePath]:  # type: ignore[override]
        if self._remote_protocol in _UNLISTABLE:
            return iter(())  # no listing over http: readers fall back to the names they know
        found = _call(str(self), lambda: self._remote_fs.glob(str(self).rstrip("/") + "/" + pattern))
        return iter(sorted(self._child(str(name)) for name in found))

    def _child(self, name: str) -> RemotePath:
        """A path from a name fsspec listed (``bucket/dir/x``, with or without ``protocol://``)."""
        name = _URL.sub("", name).lstrip("/")
        host = urlsplit(self._remote_root).netloc
        if host and name.startswith(host + "/"):
            name = name[len(host) :]
        return type(self)("/" + name.lstrip("/"))

    # -- bytes --

    def read_range(self, offset: int, size: int) -> bytes:
        """Exactly ``size`` bytes from ``offset``, one range request; a short answer is an error, never padded."""
        if size == 0:
            return b""
        url = str(self)
        data = _call(url, lambda: self._remote_fs.cat_file(url, start=offset, end=offset + size))
        if len(data) != size:
            raise RemoteError(
                "Short read",
                path=self,
                detail=f"asked for bytes [{offset}, {offset + size}), the server returned {len(data)} bytes"
                + (" (it ignored the range request)" if len(data) > size else ""),
                hint="Check the server honours HTTP range requests, or copy the checkpoint locally",
            )
        return bytes(data)

    def open(  # type: ignore[override]
        self,
        mode: str = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> IO[Any]:
        if mode not in ("r", "rb", "rt"):
            raise UsageError(f"URLs are read-only (mode {mode!r})", path=self)
        raw = RangeFile(self, self.stat().st_size)
        if mode == "rb":
            return cast(IO[Any], raw)
        return io.TextIOWrapper(io.BufferedReader(raw), encoding=encoding or "utf-8", errors=errors, newline=newline)

    def read_bytes(self) -> bytes:
        return self.read_range(0, self.stat().st_size)

    def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        return self.read_bytes().decode(encoding or "utf-8", errors or "strict")


_ROOTS: dict[tuple[str, str], type[RemotePath]] = {}


def _remote(url: str) -> RemotePath:
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise UsageError(
            "A URL with a query string cannot name the files beside it",
            path=url,
            hint="Give the plain URL of the file or prefix; credentials come from the environment, where fsspec looks",
        )
    protocol = parts.scheme.lower()
    key = (protocol, parts.netloc)
    cls = _ROOTS.get(key)
    if cls is None:
        attrs = {
            "_remote_root": f"{protocol}://{parts.netloc}",
            "_remote_protocol": protocol,
            "_remote_fs": _filesystem(protocol, url),
            "_remote_info": {},
            "_remote_dirs": set(),
            "_remote_lock": threading.Lock(),
            "_remote_blocks": OrderedDict(),
        }
        cls = cast(type[RemotePath], type("RemotePath", (RemotePath,), attrs))
        _ROOTS[key] = cls
    path = cls("/" + parts.path.lstrip("/"))
    if url.endswith("/") and protocol in _UNLISTABLE:
        cls._remote_dirs.add(path.as_posix())
    return path


def _filesystem(protocol: str, url: str) -> Any:
    """fsspec's filesystem for a protocol, imported now (first URL): a missing package is exit 2 with the fix."""
    try:
        import fsspec
    except ImportError:
        raise MissingDependency("fsspec is not installed", path=url, hint=INSTALL_HINT) from None
    timeout = float(os.environ.get("BRIDGE_REMOTE_TIMEOUT", "60"))
    options: dict[str, Any] = {}
    if protocol in _UNLISTABLE:
        try:
            import aiohttp
        except ImportError:
            raise MissingDependency("aiohttp is not installed", path=url, hint=INSTALL_HINT) from None
        # A stalled server ends the read after `timeout` seconds of silence: an error, never a hang.
        options["client_kwargs"] = {"timeout": aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)}
    try:
        return fsspec.filesystem(protocol, skip_instance_cache=True, **options)
    except (ImportError, ValueError) as exc:
        what = f"No fsspec back-end for {protocol}://"
        raise MissingDependency(what, path=url, detail=str(exc), hint=INSTALL_HINT) from None
    except Exception as exc:  # a back-end that cannot start (credentials, configuration)
        raise RemoteError(f"Cannot open {protocol}://", path=url, detail=f"{type(exc).__name__}: {exc}") from None


def _info_or_none(fs: Any, url: str) -> dict[str, Any] | None:
    try:
        info = fs.info(url)
    except FileNotFoundError as exc:
        # fsspec's http back-end folds every failure into FileNotFoundError; only a 404/410 means "no such file".
        cause = exc.__cause__
        status = getattr(cause, "status", None)
        if cause is None or status in (404, 410):
            return None
        raise cause from None
    return cast(dict[str, Any], info)


def _call(url: str, fn: Any) -> Any:
    """Run one fsspec call; what goes wrong becomes an error naming the URL (exit 2), never a traceback."""
    try:
        return fn()
    except BridgeError:
        raise
    except FileNotFoundError:
        raise RemoteError("Not found", path=url, hint="Check the URL") from None
    except PermissionError as exc:
        raise RemoteError("Access refused", path=url, detail=str(exc), hint=_CREDENTIALS) from None
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status in (401, 403):
            raise RemoteError(f"Access refused (HTTP {status})", path=url, hint=_CREDENTIALS) from None
        detail = f"HTTP {status}" if isinstance(status, int) else f"{type(exc).__name__}: {exc}".rstrip(": ")
        raise RemoteError(
            "Cannot read URL",
            path=url,
            detail=detail,
            hint="Check the host is reachable and serves the file (BRIDGE_REMOTE_TIMEOUT sets the seconds to wait)",
        ) from None


_CREDENTIALS = "Check the credentials fsspec finds in the environment (gcloud / AWS configuration)"


# --------------------------------------------------------------------------- ranged reads


class _Positioned(io.RawIOBase):
    """A read-only, seekable raw file of ``_size`` bytes: the position bookkeeping of :class:`RangeFile` and
    :class:`Window` (a seek past either end is clamped, as a reader of a real file sees it)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos


class Window(_Positioned):
    """Bytes ``[start, start + size)`` of a file as a file of their own: a stored zip member (a ``.keras``
    archive's weights), a ``torch.save`` archive inside a larger file (an item of a ``.distcp`` file)."""

    def __init__(self, path: Path, start: int, size: int) -> None:
        super().__init__(size)
        self._fh = path.open("rb")  # closed by close()
        self._start = start

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        if n == 0:
            return 0
        self._fh.seek(self._start + self._pos)
        got = self._fh.readinto(view[:n]) or 0
        self._pos += got
        return got

    def close(self) -> None:
        self._fh.close()
        super().close()


class RangeFile(_Positioned):
    """A read-only, seekable file object over a URL: small reads from cached blocks, large ones as one exact range.

    h5py and zipfile read their metadata through it; tensors are read with :meth:`RemotePath.read_range`.
    """

    def __init__(self, path: RemotePath, size: int) -> None:
        super().__init__(size)
        self._path = path

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        if n == 0:
            return 0
        data = self._path.read_range(self._pos, n) if n >= BLOCK else self._cached(self._pos, n)
        view[:n] = data
        self._pos += n
        return n

    def _cached(self, pos: int, n: int) -> bytes:
        out = bytearray()
        url, blocks, lock = str(self._path), self._path._remote_blocks, self._path._remote_lock
        for block in range(pos // BLOCK, (pos + n - 1) // BLOCK + 1):
            with lock:
                data = blocks.get((url, block))
                if data is not None:
                    blocks.move_to_end((url, block))
            if data is None:
                start = block * BLOCK
                data = self._path.read_range(start, min(BLOCK, self._size - start))
                with lock:
                    blocks[(url, block)] = data
                    if len(blocks) > _CACHED_BLOCKS:
                        blocks.popitem(last=False)
            out += data
        first = pos - (pos // BLOCK) * BLOCK
        return bytes(out[first : first + n])


class RangeView:
    """``memmap[a:b]`` for a URL: a slice is one range request, returned as a uint8 array."""

    def __init__(self, path: RemotePath) -> None:
        self.path = path
        self.size = path.stat().st_size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, item: slice) -> np.ndarray:
        start, stop, step = item.indices(self.size)
        if step != 1:
            raise ValueError("a RangeView is sliced contiguously")
        if stop - start != (item.stop or self.size) - (item.start or 0):
            raise CorruptCheckpoint(
                "Truncated checkpoint data",
                path=self.path,
                detail=f"needs bytes [{item.start}, {item.stop}) of a {self.size}-byte file",
                hint="The file behind the URL is incomplete",
            )
        return np.frombuffer(self.path.read_range(start, max(0, stop - start)), np.uint8)
