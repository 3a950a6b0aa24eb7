"""Local files uploaded once as FLORA assets: the files a batch names, each content's asset per
workspace (announced before its create leaves), and the assets each row's run used."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...models import LocalFile
from ..records import AssetRecord, AssetUse
from .base import PgStore

_ASSET_COLS = (
    "workspace_id, sha256, status, size, content_type, file_name, announced_at, asset_id, url, "
    "error"
)


class PgAssetStore(PgStore):
    def record_files(self, batch: str, files: Sequence[LocalFile], fingerprint: str) -> None:
        """The local files the batch's manifest names now (replacing the last load's), read in
        the load ``fingerprint`` names."""
        with self._tx(batch) as cur:
            cur.execute("DELETE FROM batch_files WHERE batch = %s", (batch,))
            cur.execute(
                "INSERT INTO batch_files_loaded VALUES (%s, %s) ON CONFLICT (batch) "
                "DO UPDATE SET fingerprint = excluded.fingerprint",
                (batch, fingerprint),
            )
            cur.executemany(
                "INSERT INTO batch_files VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (batch, path) DO NOTHING",
                [(batch, f.path, f.sha256, f.size, f.mtime_ns, f.content_type, f.first_index)
                 for f in files],
            )  # fmt: skip

    def batch_files(self, batch: str) -> list[LocalFile]:
        """The files recorded for the batch, in the order its rows first name them."""
        return [
            LocalFile(*r)
            for r in self._all(
                "SELECT path, sha256, size, mtime_ns, content_type, first_idx FROM batch_files "
                "WHERE batch = %s ORDER BY first_idx, path",
                (batch,),
            )
        ]

    def files_fingerprint(self, batch: str) -> str | None:
        """The fingerprint of the manifest load the batch's files were recorded from."""
        row = self._one("SELECT fingerprint FROM batch_files_loaded WHERE batch = %s", (batch,))
        return None if row is None else str(row[0])

    def assets(self, workspace_id: str) -> dict[str, AssetRecord]:
        """Every asset recorded for the workspace, by the sha256 of its content."""
        return {
            r[1]: AssetRecord(*r)
            for r in self._all(
                f"SELECT {_ASSET_COLS} FROM assets WHERE workspace_id = %s", (workspace_id,)
            )
        }

    def announce_asset(self, rec: AssetRecord) -> AssetRecord:
        """Before a create leaves: the content's asset is being made (durable). A record already
        there is kept, and returned."""
        with self._tx(None, durable=True) as cur:
            cur.execute(
                f"INSERT INTO assets ({_ASSET_COLS}, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (workspace_id, sha256) DO NOTHING",
                (rec.workspace_id, rec.sha256, rec.status, rec.size, rec.content_type,
                 rec.file_name, rec.announced_at, rec.asset_id, rec.url, rec.error, self.clock()),
            )  # fmt: skip
            cur.execute(
                f"SELECT {_ASSET_COLS} FROM assets WHERE workspace_id = %s AND sha256 = %s",
                (rec.workspace_id, rec.sha256),
            )
            row = cur.fetchone()
        assert row is not None
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
        with self._tx(None) as cur:
            cur.execute(
                "UPDATE assets SET status = %s, asset_id = %s, url = %s, error = %s, "
                "updated_at = %s WHERE workspace_id = %s AND sha256 = %s",
                (status, asset_id, url, error, self.clock(), workspace_id, sha256),
            )

    def record_row_assets(
        self, batch: str, row_id: str, idem_key: str, uses: Sequence[AssetUse]
    ) -> None:
        """The assets a row's send (under ``idem_key``) names, for its report."""
        with self._tx(batch) as cur:
            cur.execute("DELETE FROM row_assets WHERE batch = %s AND row_id = %s", (batch, row_id))
            cur.executemany(
                "INSERT INTO row_assets VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(batch, row_id, u.input_id, u.path, u.sha256, u.asset_id, u.url, idem_key)
                 for u in uses],
            )  # fmt: skip


def pg_row_assets(
    query: Callable[[str, Sequence[Any]], list[Any]],
    batch: str,
    keys: Sequence[tuple[str, str | None]],
) -> dict[str, list[AssetUse]]:
    """For the report: the assets each row's current send used, by row id (``keys``: each row's
    id and idempotency key; a use recorded under another key belonged to an earlier send)."""
    sent = {row_id: key for row_id, key in keys if key is not None}
    if not sent or not query("SELECT 1 FROM row_assets WHERE batch = %s LIMIT 1", (batch,)):
        return {}
    out: dict[str, list[AssetUse]] = {}
    for r in query(
        "SELECT row_id, input_id, path, sha256, asset_id, url, idem_key FROM row_assets "
        "WHERE batch = %s AND row_id = ANY(%s) ORDER BY row_id, input_id",
        (batch, list(sent)),
    ):
        if sent.get(r[0]) == r[6]:
            out.setdefault(r[0], []).append(AssetUse(*r[1:6]))
    return out
