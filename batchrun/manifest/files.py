"""Local files as ``imageUrl`` / ``videoUrl`` values: where a value points, and whether FLORA
would take the file there (checked before anything is sent).

A value that is not an http(s) URL names a local file: a path relative to the manifest's folder,
an absolute path, ``~/...`` or a ``file://`` URL. The file must exist, be readable, be a regular
file of a type FLORA accepts for that input (sniffed from its first bytes), and be within FLORA's
size limits. Each file is hashed once (sha256: what the row's key depends on, and what an asset is
uploaded once for) however many rows name it.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..models import LocalFile

# FLORA's limits (../shared/spec/flora-assets-api.md): one multipart request up to 4 MB (read as
# 4,000,000 bytes, the shorter reading); larger files go through a signed upload, for which FLORA
# publishes no limit: batchrun stops at MAX_FILE_BYTES.
DIRECT_MAX_BYTES = 4_000_000
MAX_FILE_BYTES = 500_000_000
MAX_MEGAPIXELS = 150
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/avif", "image/heic",
               "image/heif")  # fmt: skip
VIDEO_TYPES = ("video/mp4", "video/webm", "video/quicktime")
ACCEPTED = {"imageUrl": IMAGE_TYPES, "videoUrl": VIDEO_TYPES}
KIND = {"imageUrl": "an image", "videoUrl": "a video"}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"}
_BLOCK = 1 << 20


def sniff(head: bytes) -> str | None:
    """The content type the first bytes of a file show, or None when they show none we know."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in _HEIF_BRANDS:
            return "image/heic"
        if brand in (b"mif1", b"msf1"):
            return "image/heif"
        if brand == b"qt  ":
            return "video/quicktime"
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    return None


def image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF or JPEG header (the first 64 KB), else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
        return int(w), int(h)
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        w, h = struct.unpack("<HH", head[6:10])
        return int(w), int(h)
    if head.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(head):
            if head[i] != 0xFF:
                i += 1
                continue
            marker = head[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (length,) = struct.unpack(">H", head[i + 2 : i + 4])
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", head[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + length
    return None


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


class LocalFiles:
    """Checks and hashes the files one manifest names; each file once per read.

    ``check`` gives the LocalFile or the reason it cannot be sent; ``files`` holds every file
    found good, by resolved path, in the order rows first named them."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.files: dict[str, LocalFile] = {}
        self._seen: dict[tuple[str, int, int], LocalFile | str] = {}

    def resolve(self, value: str) -> Path | str:
        """The path a value names, or why it names none."""
        text = value.strip()
        if text.lower().startswith("file://"):
            parts = urlsplit(text)
            if parts.netloc not in ("", "localhost"):
                return f"'{_short(text)}' names a file on another host ({parts.netloc})"
            return Path(unquote(parts.path))
        if _SCHEME.match(text):
            return f"'{_short(text)}' is neither an http(s) URL nor a local file path"
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.base / path

    def check(self, value: str, input_type: str, index: int = 0) -> LocalFile | str:
        where = self.resolve(value)
        if isinstance(where, str):
            return where
        shown = f"file '{_short(value.strip())}'"
        try:
            st = os.stat(where)
        except FileNotFoundError:
            return f"{shown} not found (looked for {where})"
        except OSError as exc:
            return f"{shown} cannot be read ({exc.strerror or type(exc).__name__})"
        if stat.S_ISDIR(st.st_mode):
            return f"{shown} is a directory, not a file"
        if not stat.S_ISREG(st.st_mode):
            return f"{shown} is not a regular file"
        resolved = str(Path(os.path.abspath(where)))
        seen = self._seen.get((resolved, st.st_size, st.st_mtime_ns))
        if seen is None:
            seen = self._read(resolved, st, shown)
            self._seen[(resolved, st.st_size, st.st_mtime_ns)] = seen
        if isinstance(seen, str):
            return seen
        accepted = ACCEPTED.get(input_type, ())
        if seen.content_type not in accepted:
            return (
                f"{shown} is {seen.content_type}, not {KIND.get(input_type, 'a file')} FLORA "
                f"accepts for {input_type} ({', '.join(t.split('/')[1] for t in accepted)})"
            )
        if resolved not in self.files:
            self.files[resolved] = LocalFile(
                seen.path, seen.sha256, seen.size, seen.mtime_ns, seen.content_type, index
            )
        return self.files[resolved]

    def _read(self, path: str, st: os.stat_result, shown: str) -> LocalFile | str:
        if st.st_size == 0:
            return f"{shown} is empty"
        if st.st_size > MAX_FILE_BYTES:
            return f"{shown} is {_mb(st.st_size)}, over the {_mb(MAX_FILE_BYTES)} limit"
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                head = fh.read(1 << 16)
                digest.update(head)
                while block := fh.read(_BLOCK):
                    digest.update(block)
        except PermissionError:
            return f"{shown} cannot be read (permission denied)"
        except OSError as exc:
            return f"{shown} cannot be read ({exc.strerror or type(exc).__name__})"
        kind = sniff(head)
        if kind is None:
            return f"{shown} is not a file type FLORA accepts (images, videos, audio, pdf)"
        size = image_size(head) if kind.startswith("image/") else None
        if size is not None and size[0] * size[1] > MAX_MEGAPIXELS * 1_000_000:
            return (
                f"{shown} is {size[0]}x{size[1]} pixels, over FLORA's {MAX_MEGAPIXELS} megapixels"
            )
        return LocalFile(path, digest.hexdigest(), st.st_size, st.st_mtime_ns, kind)


def _short(value: str) -> str:
    return value if len(value) <= 60 else value[:57] + "..."
