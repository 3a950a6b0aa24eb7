"""Output files: small, deterministic, of the right type, so a download can be checked byte for byte."""

from __future__ import annotations

import hashlib
import struct
import zlib


def _png(seed: bytes) -> bytes:
    """A valid 2x2 PNG whose colours come from the seed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)  # 2x2, 8-bit RGB
    rows = b"".join(b"\x00" + seed[i * 6 : i * 6 + 6] for i in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


_MAGIC = {
    "videoUrl": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
    "audioUrl": b"ID3\x04\x00\x00\x00\x00\x00\x00",
    "documentUrl": b"%PDF-1.4\n% emulated output\n",
}
_TRAILER = {"documentUrl": b"\n%%EOF\n"}


def media_bytes(run_id: str, output_id: str, output_type: str) -> bytes:
    seed = hashlib.sha256(f"{run_id}/{output_id}".encode()).digest()
    if output_type == "imageUrl":
        return _png(seed)
    filler = b"".join(hashlib.sha256(seed + bytes([i])).digest() for i in range(16))
    return _MAGIC.get(output_type, b"") + filler + _TRAILER.get(output_type, b"")
