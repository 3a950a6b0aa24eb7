"""The journal's schema as ordered migrations. Each runs once, in its own transaction, and is
recorded in ``schema_migrations``; never edit a released one, append a new one."""

from __future__ import annotations

import sqlite3
import time

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "batches, rows and history",
        """
        CREATE TABLE batches (
            name TEXT PRIMARY KEY,
            manifest TEXT NOT NULL,
            columns TEXT NOT NULL,          -- JSON list of the manifest's column names
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE rows (
            batch TEXT NOT NULL,
            row_id TEXT NOT NULL,
            idx INTEGER,                    -- position in the manifest; NULL once it left it
            line INTEGER NOT NULL,
            technique_id TEXT NOT NULL,
            inputs TEXT NOT NULL,           -- JSON [[id, type, value], ...] in manifest order
            digest TEXT NOT NULL,
            cells TEXT NOT NULL,            -- JSON list of the row's cells, for the report
            state TEXT NOT NULL,
            attempt INTEGER NOT NULL DEFAULT 1,
            idem_key TEXT,
            body BLOB,                      -- the exact create body, resent byte for byte
            first_sent_at REAL,
            last_sent_at REAL,
            run_id TEXT,
            run_status TEXT,
            charged_cost REAL,
            cost_final INTEGER NOT NULL DEFAULT 0,
            error_code TEXT,
            error_message TEXT,
            outputs TEXT,                   -- JSON [[output_id, type, url], ...]
            created_at REAL,
            started_at REAL,
            completed_at REAL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (batch, row_id)
        ) WITHOUT ROWID;
        CREATE INDEX rows_by_state ON rows (batch, state, idx);
        CREATE INDEX rows_by_idx ON rows (batch, idx);
        CREATE INDEX rows_by_run ON rows (run_id);
        CREATE TABLE history (
            batch TEXT NOT NULL,
            row_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            digest TEXT NOT NULL,
            state TEXT NOT NULL,
            idem_key TEXT,
            run_id TEXT,
            run_status TEXT,
            charged_cost REAL,
            error_code TEXT,
            error_message TEXT,
            outputs TEXT,
            created_at REAL,
            completed_at REAL,
            archived_at REAL NOT NULL,
            reason TEXT NOT NULL
        );
        CREATE INDEX history_by_row ON history (batch, row_id);
        CREATE INDEX history_by_run ON history (run_id);
        """,
    ),
    (
        2,
        "downloaded output files",
        """
        CREATE TABLE downloads (
            batch TEXT NOT NULL,
            row_id TEXT NOT NULL,
            output_id TEXT NOT NULL,
            url TEXT NOT NULL,
            path TEXT NOT NULL,             -- as the user named the folder, plus the file name
            bytes INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            downloaded_at REAL NOT NULL,
            PRIMARY KEY (batch, row_id, output_id)
        ) WITHOUT ROWID;
        """,
    ),
    (
        3,
        "fingerprint of the manifest a batch was last loaded from",
        "ALTER TABLE batches ADD COLUMN fingerprint TEXT",
    ),
    (
        4,
        "index for completed runs whose cost is still open",
        "CREATE INDEX rows_by_cost ON rows (batch, state, cost_final, idx)",
    ),
    (
        5,
        "journal revision and the reports written at each",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO meta VALUES ('revision', 0);
        CREATE TABLE reports (
            batch TEXT NOT NULL,
            path TEXT NOT NULL,
            revision INTEGER NOT NULL,      -- the journal's revision the report shows
            tag TEXT NOT NULL,              -- batchrun version and report format
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            counts TEXT NOT NULL,           -- rows per report status, JSON
            PRIMARY KEY (batch, path)
        ) WITHOUT ROWID;
        """,
    ),
    (
        6,
        "failed runs sent again by their error tier; quotes apart from charged costs",
        """
        ALTER TABLE rows ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;  -- tier re-sends used
        ALTER TABLE rows ADD COLUMN resend_after REAL;  -- a tier re-send waits until then
        ALTER TABLE rows ADD COLUMN quote REAL;  -- charged_cost of an unfinished run: a quote
        """,
    ),
    (
        7,
        "local files uploaded once as FLORA assets, per workspace; the files each batch names",
        """
        CREATE TABLE assets (
            workspace_id TEXT NOT NULL,
            sha256 TEXT NOT NULL,           -- of the file's content: one asset per content
            status TEXT NOT NULL,           -- creating (announced), pending_upload, ready, failed
            size INTEGER NOT NULL,
            content_type TEXT NOT NULL,
            file_name TEXT NOT NULL,        -- as sent: names the content, so it can be found
            announced_at REAL NOT NULL,     -- the first create was about to leave
            asset_id TEXT,
            url TEXT,
            error TEXT,
            updated_at REAL NOT NULL,
            PRIMARY KEY (workspace_id, sha256)
        ) WITHOUT ROWID;
        CREATE TABLE batch_files (
            batch TEXT NOT NULL,
            path TEXT NOT NULL,             -- resolved
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            content_type TEXT NOT NULL,
            first_idx INTEGER NOT NULL,     -- the first row that names it: uploads go in this order
            PRIMARY KEY (batch, path)
        ) WITHOUT ROWID;
        CREATE TABLE row_assets (
            batch TEXT NOT NULL,
            row_id TEXT NOT NULL,
            input_id TEXT NOT NULL,
            path TEXT NOT NULL,             -- as the manifest gave it
            sha256 TEXT NOT NULL,
            asset_id TEXT NOT NULL,
            url TEXT NOT NULL,
            idem_key TEXT NOT NULL,         -- the send that used it
            PRIMARY KEY (batch, row_id, input_id)
        ) WITHOUT ROWID;
        CREATE TABLE batch_files_loaded (
            batch TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL       -- of the manifest load batch_files came from
        ) WITHOUT ROWID;
        """,
    ),
]


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Bring the database up to date; returns the versions applied now."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    done = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in MIGRATIONS:
        if version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another connection (`status` while `run` creates the journal) may have applied it
            # between our read of the versions and our write lock.
            if conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
            ).fetchone():
                conn.execute("COMMIT")
                continue
            # executescript would commit on its own; run statement by statement inside our txn
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, time.time())
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


def _statements(sql: str) -> list[str]:
    out, current = [], ""
    for line in sql.splitlines():
        current += line.split("--", 1)[0] + "\n"
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out
