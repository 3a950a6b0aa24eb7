"""Local files in the manifest, end to end: the real CLI against the emulator as another process.
Each content is uploaded once per workspace, big files go through the signed upload (never with
the API key), nothing is sent when a file is missing, reruns upload nothing, and a kill -9 in the
middle of uploads resumes without a second asset for a file or a run naming an unready asset."""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from batchrun.emulator import EmulatorThread
from tests.support.cli import API_KEY, batchrun_cmd, cli_env, run_cli
from tests.support.emulator import EmulatorProcess, steady_config

pytestmark = pytest.mark.e2e


def png(seed: int, w: int = 3, h: int = 3, pad: int = 0) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    raw = b"".join(b"\x00" + bytes([seed % 256, 40, 90]) * w for _ in range(h))
    extra = chunk(b"tEXt", b"pad\x00" + random.Random(seed).randbytes(pad)) if pad else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip


def photo_manifest(tmp: Path, files: dict[str, bytes], rows: list[tuple[str, str]]) -> Path:
    (tmp / "photos").mkdir(exist_ok=True)
    for name, data in files.items():
        (tmp / "photos" / name).write_bytes(data)
    manifest = tmp / "shoot.csv"
    manifest.write_text("id,image:imageUrl,prompt\n"
                        + "".join(f"{r},{p},turn it slowly\n" for r, p in rows))  # fmt: skip
    return manifest


def args(emu: Any, manifest: Path, tmp: Path, *extra: str) -> list[str]:
    return ["run", str(manifest), "-t", "tech_img2vid", "--base-url", emu.base_url,
            "--state-dir", str(tmp / "state"), "--report", str(tmp / "r.parquet"),
            "--report", str(tmp / "r.csv"), *extra]  # fmt: skip


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_runs_name_ready_assets(ledger: dict[str, Any]) -> None:
    """Every run's image is an asset that was ready before the run was created."""
    assets = {a["asset_id"]: a for a in ledger["assets"]}
    for run in ledger["runs"]:
        (image,) = [i["value"] for i in run["inputs"] if i["id"] == "image"]
        asset = assets[image.split("/media/assets/")[1].split("/")[0]]
        assert asset["status"] == "ready" and asset["ready_at"] <= run["created_at"]


def test_shared_photos_are_uploaded_once_and_a_rerun_uploads_nothing(tmp_path: Path) -> None:
    files = {"a.png": png(1), "b.png": png(2), "c.png": png(3)}
    rows = [("s1", "photos/a.png"), ("s2", "photos/a.png"), ("s3", "./photos/b.png"),
            ("s4", "photos/c.png"), ("s5", str(tmp_path / "photos" / "b.png"))]  # fmt: skip
    manifest = photo_manifest(tmp_path, files, rows)
    with EmulatorProcess("--run-seconds", "0.2") as emu:
        first = run_cli(*args(emu, manifest, tmp_path), cwd=Path("/"))
        assert first.returncode == 0, first.stderr + first.stdout
        ledger = emu.ledger()
        assert len(ledger["runs"]) == 5
        by_sha = {a["sha256"]: a for a in ledger["assets"]}
        assert len(ledger["assets"]) == 3 and set(by_sha) == {sha(d) for d in files.values()}
        assert {a["uploaded_via"] for a in ledger["assets"]} == {"direct"}
        check_runs_name_ready_assets(ledger)

        df = pd.read_parquet(tmp_path / "r.parquet").set_index("id")
        assert df.loc["s3", "image:imageUrl"] == "./photos/b.png"  # the path as given
        (used,) = df.loc["s1", "assets"]
        assert used["input_id"] == "image" and used["path"] == "photos/a.png"
        assert used["asset_id"] == by_sha[sha(files["a.png"])]["asset_id"]
        assert df.loc["s2", "assets"][0]["asset_id"] == used["asset_id"]
        csv = pd.read_csv(tmp_path / "r.csv").set_index("id")
        assert json.loads(csv.loc["s5", "assets"])[0]["url"] == df.loc["s3", "assets"][0]["url"]
        assert df.loc["s1", "idempotency_key"] != df.loc["s2", "idempotency_key"]

        stats = emu.stats()
        again = run_cli(*args(emu, manifest, tmp_path))
        assert again.returncode == 0, again.stderr
        after = emu.stats()
        for endpoint in ("asset_create", "upload", "create", "workspaces"):
            assert after["by_endpoint"].get(endpoint) == stats["by_endpoint"].get(endpoint)

        # A new batch over the same photos (another manifest) uploads nothing either.
        other = tmp_path / "other.csv"
        other.write_text("id,image:imageUrl\nx1,photos/c.png\nx2,photos/a.png\n")
        third = run_cli(*args(emu, other, tmp_path))
        assert third.returncode == 0, third.stderr
        assert len(emu.ledger()["assets"]) == 3 and len(emu.ledger()["runs"]) == 7
        assert (
            emu.stats()["by_endpoint"].get("asset_create") == stats["by_endpoint"]["asset_create"]
        )
        assert emu.stats()["auth_seen_off_api"] == []


def test_a_5mb_file_goes_through_the_signed_upload_without_the_api_key(tmp_path: Path) -> None:
    big = png(9, pad=5_000_000)
    manifest = photo_manifest(tmp_path, {"big.png": big, "small.png": png(4)},
                              [("b1", "photos/big.png"), ("s1", "photos/small.png"),
                               ("b2", "photos/big.png")])  # fmt: skip
    with EmulatorProcess("--run-seconds", "0.2") as emu:
        result = run_cli(*args(emu, manifest, tmp_path, "--log-format", "json"))
        assert result.returncode == 0, result.stderr + result.stdout
        ledger = emu.ledger()
        vias = {a["sha256"]: a["uploaded_via"] for a in ledger["assets"]}
        assert vias == {sha(big): "signed_url", sha(png(4)): "direct"}
        assert ledger["asset_uploads"] == 1 and ledger["asset_uploads_refused_auth"] == 0
        assert emu.stats()["auth_seen_off_api"] == []  # the upload URL never saw the key
        check_runs_name_ready_assets(ledger)
        (asset,) = [a for a in ledger["assets"] if a["uploaded_via"] == "signed_url"]
        url = pd.read_parquet(tmp_path / "r.parquet").set_index("id").loc["b2", "assets"][0]["url"]
        assert httpx.get(url).content == big  # the bytes FLORA holds are the file's
        assert asset["size_bytes"] == len(big)
        events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
        uploaded = [e for e in events if e["event"] == "uploaded"]
        assert len(uploaded) == 2 and {e["via"] for e in uploaded} == {"direct", "signed"}
    assert API_KEY not in result.stdout + result.stderr


def test_a_missing_file_stops_the_batch_before_anything_is_uploaded_or_run(tmp_path: Path) -> None:
    manifest = photo_manifest(tmp_path, {"a.png": png(1)},
                              [("s1", "photos/a.png"), ("s2", "photos/gone.png")])  # fmt: skip
    with EmulatorProcess("--run-seconds", "0.2") as emu:
        plan = run_cli(*args(emu, manifest, tmp_path, "--dry-run"))
        assert plan.returncode == 2
        assert "local files to upload as assets: 1 (" in plan.stdout
        result = run_cli(*args(emu, manifest, tmp_path))
        assert result.returncode == 2, result.stderr
        assert f"{manifest}:3: column 'image': file 'photos/gone.png' not found" in result.stderr
        assert "Traceback" not in result.stderr
        endpoints = emu.stats()["by_endpoint"]
        assert not {"workspaces", "asset_create", "upload", "create"} & set(endpoints)
        assert emu.ledger()["runs"] == [] and emu.ledger()["assets"] == []
        # --skip-invalid: the row is rejected with its reason, the rest run.
        skipped = run_cli(*args(emu, manifest, tmp_path, "--skip-invalid"))
        assert skipped.returncode == 1, skipped.stderr
        df = pd.read_parquet(tmp_path / "r.parquet").set_index("id")
        assert df.loc["s2", "status"] == "rejected" and "gone.png" in df.loc["s2", "error_message"]
        assert df.loc["s1", "status"] == "completed"


def test_the_workspace_is_chosen_or_the_choices_are_named(tmp_path: Path) -> None:
    manifest = photo_manifest(tmp_path, {"a.png": png(1)}, [("s1", "photos/a.png")])
    with EmulatorProcess("--run-seconds", "0.2") as emu:
        emu.set_config(workspaces=["ws_team", "ws_personal"])
        result = run_cli(*args(emu, manifest, tmp_path))
        assert result.returncode == 2
        assert "ws_team" in result.stderr and "ws_personal" in result.stderr
        assert "--workspace" in result.stderr and emu.ledger()["runs"] == []
        chosen = run_cli(*args(emu, manifest, tmp_path), env={"FLORA_WORKSPACE_ID": "ws_personal"})
        assert chosen.returncode == 0, chosen.stderr
        assert [a["workspace_id"] for a in emu.ledger()["assets"]] == ["ws_personal"]


def test_kill_9_during_uploads_then_resume_makes_one_asset_per_file(tmp_path: Path) -> None:
    files = {f"p{i}.png": png(i, pad=4_100_000 if i % 3 == 0 else 0) for i in range(9)}
    rows = [(f"r{k}", f"photos/p{k % 9}.png") for k in range(18)]
    manifest = photo_manifest(tmp_path, files, rows)
    rng = random.Random(16)
    with EmulatorProcess("--run-seconds", "0.3", "--latency", "0.1..0.4",
                         "--fault-endpoints", "assets,create") as emu:  # fmt: skip
        cmd = args(emu, manifest, tmp_path, "--concurrency", "4")
        kills = 0
        for _ in range(6):
            proc = subprocess.Popen(batchrun_cmd(*cmd), env=cli_env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)  # fmt: skip
            time.sleep(rng.uniform(0.6, 1.6))
            if proc.poll() is None:
                proc.kill()
                kills += 1
            proc.wait()
        assert kills >= 3
        final = run_cli(*cmd, timeout=300)
        # Rows whose create answer a kill lost may stay in doubt (the run history cannot always
        # single their runs out: see recovery); what this test is about is the assets.
        assert final.returncode in (0, 3), final.stderr + final.stdout
        ledger = emu.ledger()
        per_sha: dict[str, int] = {}
        for a in ledger["assets"]:
            if a["sha256"]:
                per_sha[a["sha256"]] = per_sha.get(a["sha256"], 0) + 1
        assert max(ledger["asset_creates_by_key"].values()) == 1
        assert len(ledger["assets"]) == 9, ledger["assets"]  # one asset per file, never two
        assert set(per_sha) == {sha(d) for d in files.values()}
        assert max(ledger["creates_by_key"].values()) == 1 and len(ledger["runs"]) <= 18
        check_runs_name_ready_assets(ledger)
        df = pd.read_parquet(tmp_path / "r.parquet")
        assert set(df["status"]) <= {"completed", "in_doubt"}
        assert set(df[df["status"] == "in_doubt"]["idempotency_key"]) <= set(
            ledger["creates_by_key"]
        )
        done = df[df["status"] == "completed"]
        assets = {a["asset_id"]: a["sha256"] for a in ledger["assets"]}
        for path, used in zip(done["image:imageUrl"], done["assets"], strict=True):
            (use,) = used  # the asset the run used is the file's
            assert assets[use["asset_id"]] == sha(files[Path(path).name])


# -- the emulator's assets, in-process -----------------------------------------------------------


def test_the_emulators_assets_behave_as_flora_documents() -> None:
    with EmulatorThread(steady_config(run_seconds=0.05)) as emu:
        auth = {"Authorization": f"Bearer {API_KEY}"}
        api = httpx.Client(base_url=emu.base_url, headers=auth)
        assert api.get("/workspaces").json()["workspaces"][0]["workspace_id"] == "ws_emulator"
        # Direct: over 4 MB is refused; a text file is refused; a PNG is ready at once.
        body = {"workspace_id": "ws_emulator"}
        too_big = api.post("/assets", data=body, files={"file": ("a.png", png(1, pad=4_000_100))})
        assert too_big.status_code == 413
        text = api.post("/assets", data=body, files={"file": ("a.txt", b"hello")})
        assert text.status_code == 400
        key = {"Idempotency-Key": "k-direct"}
        ok = api.post("/assets", data=body, files={"file": ("a.png", png(1))}, headers=key)
        assert ok.status_code == 201 and ok.json()["status"] == "ready"
        again = api.post("/assets", data=body, files={"file": ("a.png", png(1))}, headers=key)
        assert again.status_code == 409 and again.json()["error"]["code"] == "idempotency_duplicate"
        other = api.post("/assets", data=body, files={"file": ("a.png", png(2))}, headers=key)
        assert other.status_code == 422
        # Signed: pending_upload until the bytes arrive at the upload URL and it is completed.
        made = api.post("/assets", json={"source": "signed-url", "workspace_id": "ws_emulator",
                                         "file_name": "big.png"}).json()  # fmt: skip
        assert made["status"] == "pending_upload"
        upload = made["upload"]
        assert httpx.URL(upload["url"]).host != httpx.URL(emu.base_url).host  # another origin
        run = api.post(
            "/techniques/tech_caption/runs",
            json={"inputs": [{"id": "image", "type": "imageUrl", "value": made["url"]}]},
        )
        assert run.status_code == 400 and "not ready" in run.text  # a run needs a ready asset
        early = api.post(f"/assets/{made['asset_id']}/complete")
        assert early.status_code == 400
        with_key = httpx.post(upload["url"], data=upload["form_fields"], headers=auth,
                              files={"file": ("big.png", png(3))})  # fmt: skip
        assert with_key.status_code == 400
        assert emu.ledger()["asset_uploads_refused_auth"] == 1
        assert API_KEY not in json.dumps(emu.stats()) or emu.stats()["auth_seen_off_api"]
        missing_field = httpx.post(upload["url"], files={"file": ("big.png", png(3))})
        assert missing_field.status_code == 403
        sent = httpx.post(upload["url"], data=upload["form_fields"],
                          files={"file": ("big.png", png(3))})  # fmt: skip
        assert sent.status_code == 204
        done = api.post(f"/assets/{made['asset_id']}/complete").json()
        assert done["status"] == "ready" and done["size_bytes"] == len(png(3))
        assert api.get(f"/assets/{made['asset_id']}").json()["status"] == "ready"
        assert httpx.get(done["url"]).content == png(3)
        run = api.post(
            "/techniques/tech_caption/runs",
            json={"inputs": [{"id": "image", "type": "imageUrl", "value": done["url"]}]},
        )
        assert run.status_code == 201
        found = api.get("/assets", params={"workspace_id": "ws_emulator", "query": "big"}).json()
        assert [a["asset_id"] for a in found["assets"]] == [made["asset_id"]]
        assert api.get("/assets/ast_nope").status_code == 404
        assert api.post("/assets", json={"source": "https://127.0.0.1/x.png",
                                         "workspace_id": "ws_emulator"}).status_code == 400  # fmt: skip
        assert api.post("/assets", json={"source": "signed-url",
                                         "workspace_id": "ws_other"}).status_code == 404  # fmt: skip
        api.close()


@pytest.fixture(autouse=True)
def _no_workspace_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLORA_WORKSPACE_ID", raising=False)
    os.environ.pop("FLORA_WORKSPACE_ID", None)


@pytest.mark.parametrize("mode", ["conflict409", "replay"])
def test_a_create_whose_answer_was_lost_is_found_again_not_made_twice(
    tmp_path: Path, mode: str
) -> None:
    import sqlite3

    manifest = photo_manifest(tmp_path, {"a.png": png(1), "big.png": png(2, pad=4_200_000)},
                              [("s1", "photos/a.png"), ("s2", "photos/big.png")])  # fmt: skip
    with EmulatorProcess("--run-seconds", "0.2", "--duplicate-mode", mode) as emu:
        assert run_cli(*args(emu, manifest, tmp_path)).returncode == 0
        # As if killed after each create left and before its answer was recorded.
        with sqlite3.connect(tmp_path / "state" / "journal.sqlite") as db:
            db.execute("UPDATE assets SET asset_id = NULL, url = NULL, status = 'creating'")
        other = tmp_path / "again.csv"
        other.write_text("id,image:imageUrl\nx1,photos/a.png\nx2,photos/big.png\n")
        result = run_cli(*args(emu, other, tmp_path))
        assert result.returncode == 0, result.stderr + result.stdout
        ledger = emu.ledger()
        assert len(ledger["assets"]) == 2  # found by name after FLORA's 409, not made again
        assert max(ledger["asset_creates_by_key"].values()) == 1
        # 409: found by name; a replay: the same answer again (a signed one gets a fresh URL).
        listed = emu.stats()["by_endpoint"].get("asset_list", 0)
        assert listed == (2 if mode == "conflict409" else 0)
        check_runs_name_ready_assets(ledger)
