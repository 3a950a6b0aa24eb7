"""Local files uploaded once as FLORA assets: the files a batch names, each content's asset per
workspace (announced before its create leaves), and the assets each row's run used."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ..models import LocalFile
from .base import Store
from .records import AssetRecord, AssetUse

_ASSET_COLS = (
    "workspace_id, sha256, status, size, content_type, file_name, announced_at, asset_id, url, "
    "error"
)


class AssetStore(Store):
    def record_files(self, batch: str, files: Sequence[LocalFile], fingerprint: str) -> None:
        """The local files the batch's manifest names now (replacing the last load's), read in
        the load ``fingerprint`` names."""
        with self._tx() as db:
            db.execute("DELETE FROM batch_files WHERE batch = ?", (batch,))
            db.execute(
                "INSERT OR REPLACE INTO batch_files_loaded VALUES (?, ?)", (batch, fingerprint)
            )
            db.executemany(
                "INSERT OR REPLACE INTO batch_files VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(batch, f.path, f.sha256, f.size, f.mtime_ns, f.content_type, f.first_index)
                 for f in files],
            )  # fmt: skip

    def batch_files(self, batch: str) -> list[LocalFile]:
        """The files recorded for the batch, in the order its rows first name them."""
        return [
            LocalFile(*r)
            for r in self._db.execute(
                "SELECT path, sha256, size, mtime_ns, content_type, first_idx FROM batch_files "
                "WHERE batch = ? ORDER BY first_idx, path",
                (batch,),
            )
        ]

    def files_fingerprint(self, batch: str) -> str | None:
        """The fingerprint of the manifest load the batch's files were recorded from."""
        row = self._db.execute(
            "SELECT fingerprint FROM batch_files_loaded WHERE batch = ?", (batch,)
        ).fetchone()
        return None if row is None else str(row[0])

    def assets(self, workspace_id: str) -> dict[str, AssetRecord]:
        """Every asset recorded for the workspace, by the sha256 of its content."""
        return {
            r[1]: AssetRecord(*r)
            for r in self._db.execute(
                f"SELECT {_ASSET_COLS} FROM assets WHERE workspace_id = ?", (workspace_id,)
            )
        }

    def announce_asset(self, rec: AssetRecord) -> AssetRecord:
        """Before a create leaves: the content's asset is being made (durable). A record already
        there is kept, and returned."""
        with self._tx(durable=True) as db:
            db.execute(
                f"INSERT OR IGNORE INTO assets ({_ASSET_COLS}, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.workspace_id, rec.sha256, rec.status, rec.size, rec.content_type,
                 rec.file_name, rec.announced_at, rec.asset_id, rec.url, rec.error, self.clock()),
            )  # fmt: skip
            row = db.execute(
                f"SELECT {_ASSET_COLS} FROM assets WHERE workspace_id = ? AND sha256 = ?",
                (rec.workspace_id, rec.sha256),
            ).fetchone()
        return AssetRecord(*row)

    def record_asset(
        self,
        workspace_id: str,
        sha256: str,
        status: str,
        asset_id: str | None,
        url: str | None = None,
        error: str | None = None,
    ) -> None:
        """What FLORA answered about the content's asset."""
        with self._tx() as db:
            db.execute(
                "UPDATE assets SET status = ?, asset_id = ?, url = ?, error = ?, updated_at = ? "
                "WHERE workspace_id = ? AND sha256 = ?",
                (status, asset_id, url, error, self.clock(), workspace_id, sha256),
            )

    def record_row_assets(
        self, batch: str, row_id: str, idem_key: str, uses: Sequence[AssetUse]
    ) -> None:
        """The assets a row's send (under ``idem_key``) names, for its report."""
        with self._tx() as db:
            db.execute("DELETE FROM row_assets WHERE batch = ? AND row_id = ?", (batch, row_id))
            db.executemany(
                "INSERT INTO row_assets VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(batch, row_id, u.input_id, u.path, u.sha256, u.asset_id, u.url, idem_key)
                 for u in uses],
            )  # fmt: skip


def row_assets(
    db: sqlite3.Connection, batch: str, keys: Sequence[tuple[str, str | None]]
) -> dict[str, list[AssetUse]]:
    """For the report: the assets each row's current send used, by row id (``keys``: each row's
    id and idempotency key; a use recorded under another key belonged to an earlier send)."""
    sent = {row_id: key for row_id, key in keys if key is not None}
    if not sent or db.execute("SELECT 1 FROM row_assets WHERE batch = ? LIMIT 1", (batch,)) \
            .fetchone() is None:  # fmt: skip
        return {}
    out: dict[str, list[AssetUse]] = {}
    ids = list(sent)
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        for r in db.execute(
            "SELECT row_id, input_id, path, sha256, asset_id, url, idem_key FROM row_assets "
            f"WHERE batch = ? AND row_id IN ({','.join('?' * len(part))}) "
            "ORDER BY row_id, input_id",
            (batch, *part),
        ):
            if sent.get(r[0]) == r[6]:
                out.setdefault(r[0], []).append(AssetUse(*r[1:6]))
    return out
