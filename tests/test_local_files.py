"""Local files as imageUrl/videoUrl values: where a value points, what is checked before anything
is sent, and what a row's key depends on (the file's content, never its path or asset URL)."""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

import pytest

from batchrun.keys import idempotency_key
from batchrun.manifest import ManifestOptions, open_manifest
from batchrun.manifest import files as files_mod
from batchrun.manifest.files import LocalFiles, image_size, sniff
from batchrun.models import Input, Job, RowProblem


def png(w: int = 2, h: int = 2, seed: int = 0) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    raw = b"".join(b"\x00" + bytes([seed % 256, 7, 9]) * w for _ in range(min(h, 4)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip


def read(path: Path, technique: str = "tech_caption") -> list[Job | RowProblem]:
    return list(open_manifest(ManifestOptions(path=path, technique=technique)).rows())


def reasons(items: list[Job | RowProblem]) -> list[tuple[int, str]]:
    return [(p.line, p.reason) for p in items if isinstance(p, RowProblem)]


def test_a_relative_path_is_read_from_the_manifests_folder_not_the_working_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "m" / "photos").mkdir(parents=True)
    (tmp_path / "m" / "photos" / "a.png").write_bytes(png())
    manifest = tmp_path / "m" / "b.csv"
    manifest.write_text("id,image:imageUrl\nr1,photos/a.png\n")
    monkeypatch.chdir(tmp_path)  # not the manifest's folder
    (job,) = read(manifest)
    assert isinstance(job, Job)
    digest = hashlib.sha256(png()).hexdigest()
    assert job.inputs == (Input("image", "imageUrl", f"sha256:{digest}", "photos/a.png"),)
    assert job.inputs[0].file_sha256 == digest
    assert job.inputs[0].as_dict() == {"id": "image", "type": "imageUrl",
                                       "value": f"sha256:{digest}"}  # fmt: skip


def test_absolute_home_and_file_urls_name_files_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / "pics").mkdir(parents=True)
    (home / "pics" / "b.png").write_bytes(png(seed=1))
    monkeypatch.setenv("HOME", str(home))
    files = LocalFiles(tmp_path / "elsewhere")
    for value in (str(home / "pics" / "b.png"), "~/pics/b.png",
                  f"file://{home}/pics/b.png", f"file://localhost{home}/pics/%62.png"):  # fmt: skip
        found = files.check(value, "imageUrl")
        assert not isinstance(found, str), (value, found)
        assert found.path == str(home / "pics" / "b.png") and found.content_type == "image/png"
    assert len(files.files) == 1  # one file, however it was named
    assert "another host" in str(files.check("file://nas/pics/b.png", "imageUrl"))
    assert "neither an http(s) URL nor a local file" in str(files.check("s3://b/k", "imageUrl"))


def test_each_problem_is_a_row_problem_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    (tmp_path / "huge.png").write_bytes(png(20000, 10000))  # 200 megapixels, a small file
    (tmp_path / "ok.png").write_bytes(png())
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "id,image:imageUrl\nr1,missing.png\nr2,dir\nr3,notes.txt\nr4,empty.png\n"
        "r5,clip.mp4\nr6,huge.png\nr7,ok.png\n"
    )
    items = read(manifest)
    got = dict(reasons(items))
    assert (
        got[2]
        == f"column 'image': file 'missing.png' not found (looked for {tmp_path}/missing.png)"
    )
    assert got[3] == "column 'image': file 'dir' is a directory, not a file"
    assert "is not a file type FLORA accepts" in got[4]
    assert got[5] == "column 'image': file 'empty.png' is empty"
    assert "is video/mp4, not an image FLORA accepts for imageUrl" in got[6]
    assert "20000x10000 pixels, over FLORA's 150 megapixels" in got[7]
    assert isinstance(items[6], Job)


def test_a_video_input_takes_a_video_and_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    (tmp_path / "a.png").write_bytes(png())
    files = LocalFiles(tmp_path)
    assert not isinstance(files.check("clip.mp4", "videoUrl"), str)
    assert "not a video FLORA accepts for videoUrl" in str(files.check("a.png", "videoUrl"))


def test_over_the_size_limit_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.png").write_bytes(png() + b"\x00" * 2000)
    monkeypatch.setattr(files_mod, "MAX_FILE_BYTES", 1000)
    assert "over the 0.0 MB limit" in str(LocalFiles(tmp_path).check("a.png", "imageUrl"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png())
    path.chmod(0)
    assert "cannot be read" in str(LocalFiles(tmp_path).check("a.png", "imageUrl"))


def test_the_key_depends_on_the_content_not_on_the_path(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "a.png").write_bytes(png())
    (tmp_path / "x" / "copy.png").write_bytes(png())
    (tmp_path / "b.png").write_bytes(png(seed=5))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"id": "r1", "image": "a.png"}\n'
        '{"id": "r2", "inputs": [{"id": "image", "type": "imageUrl", "value": "x/copy.png"}]}\n'
        '{"id": "r3", "image": "b.png"}\n'
    )
    opts = ManifestOptions(path=manifest, technique="t", input_map={"image": ("image", "imageUrl")})
    m = open_manifest(opts)
    r1, r2, r3 = list(m.rows())
    assert isinstance(r1, Job) and isinstance(r2, Job) and isinstance(r3, Job)
    assert r1.inputs[0].value == r2.inputs[0].value != r3.inputs[0].value
    assert (r1.inputs[0].source, r2.inputs[0].source) == ("a.png", "x/copy.png")
    key = idempotency_key("b", "r", "t", r1.inputs, 1)
    assert key == idempotency_key("b", "r", "t", r2.inputs, 1)
    # The key is the documented function of the canonical value sha256:<hex>.
    assert key == idempotency_key(
        "b", "r", "t", [Input("image", "imageUrl", r1.inputs[0].value)], 1
    )
    assert len(m.local_files.files) == 3 and [
        f.first_index for f in m.local_files.files.values()
    ] == [0, 1, 2]


def test_sniffing_and_sizes() -> None:
    assert sniff(png()) == "image/png" and image_size(png(7, 3)) == (7, 3)
    assert sniff(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert sniff(b"GIF89a\x05\x00\x06\x00") == "image/gif"
    assert image_size(b"GIF89a\x05\x00\x06\x00") == (5, 6)
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff(b"\x00\x00\x00\x18ftypqt  ") == "video/quicktime"
    assert sniff(b"\x00\x00\x00\x18ftypheic") == "image/heic"
    assert sniff(b"\x1a\x45\xdf\xa3") == "video/webm"
    assert sniff(b"hello") is None
    jpeg = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
            b"\xff\xc0\x00\x11\x08\x00\x20\x00\x40\x03\x01\x22\x00")  # fmt: skip
    assert image_size(jpeg) == (64, 32)
