"""The PostgreSQL journal's schema as ordered migrations, recorded in ``schema_migrations``.

Each migration runs once, in its own transaction. All of them run under a session advisory
lock, so processes that start on the same empty database at once apply each migration once: the
first takes the lock and migrates, the others wait, then find nothing left to do. Never edit a
released migration; append a new one.
"""

from __future__ import annotations

from typing import Final

import psycopg
from psycopg.rows import TupleRow

# pg_advisory_lock takes one bigint: a fixed one for "batchrun migrates this database".
MIGRATION_LOCK: Final = 0x6261_7463_686D_6967  # b"batchmig"

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "batches, rows, history, downloads and reports",
        """
        CREATE TABLE batches (
            name text PRIMARY KEY,
            manifest text NOT NULL,
            columns text NOT NULL,              -- JSON list of the manifest's column names
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            fingerprint text,
            revision bigint NOT NULL DEFAULT 0  -- moved by every committed change to the batch
        );
        CREATE TABLE rows (
            batch text NOT NULL,
            row_id text NOT NULL,
            idx integer,                        -- position in the manifest; NULL once it left it
            line integer NOT NULL,
            technique_id text NOT NULL,
            inputs text NOT NULL,               -- JSON [[id, type, value], ...] in manifest order
            digest text NOT NULL,
            cells text NOT NULL,                -- JSON list of the row's cells, for the report
            state text NOT NULL,
            attempt integer NOT NULL DEFAULT 1,
            idem_key text,
            body bytea,                         -- the exact create body, resent byte for byte
            first_sent_at double precision,
            last_sent_at double precision,
            run_id text,
            run_status text,
            charged_cost double precision,
            cost_final integer NOT NULL DEFAULT 0,
            error_code text,
            error_message text,
            outputs text,                       -- JSON [[output_id, type, url], ...]
            created_at double precision,
            started_at double precision,
            completed_at double precision,
            updated_at double precision NOT NULL,
            PRIMARY KEY (batch, row_id)
        );
        CREATE INDEX rows_by_state ON rows (batch, state, idx);
        CREATE INDEX rows_by_idx ON rows (batch, idx);
        CREATE INDEX rows_by_run ON rows (run_id) WHERE run_id IS NOT NULL;
        CREATE INDEX rows_cost_open ON rows (batch, idx) WHERE state = 'completed' AND cost_final = 0;
        CREATE TABLE history (
            batch text NOT NULL,
            row_id text NOT NULL,
            attempt integer NOT NULL,
            digest text NOT NULL,
            state text NOT NULL,
            idem_key text,
            run_id text,
            run_status text,
            charged_cost double precision,
            error_code text,
            error_message text,
            outputs text,
            created_at double precision,
            completed_at double precision,
            archived_at double precision NOT NULL,
            reason text NOT NULL
        );
        CREATE INDEX history_by_row ON history (batch, row_id);
        CREATE INDEX history_by_run ON history (run_id) WHERE run_id IS NOT NULL;
        CREATE TABLE downloads (
            batch text NOT NULL,
            row_id text NOT NULL,
            output_id text NOT NULL,
            url text NOT NULL,
            path text NOT NULL,                 -- as the user named the folder, plus the file name
            bytes bigint NOT NULL,
            sha256 text NOT NULL,
            downloaded_at double precision NOT NULL,
            PRIMARY KEY (batch, row_id, output_id)
        );
        CREATE TABLE reports (
            batch text NOT NULL,
            path text NOT NULL,
            revision bigint NOT NULL,           -- the journal's revision the report shows
            tag text NOT NULL,                  -- batchrun version and report format
            size bigint NOT NULL,
            mtime_ns bigint NOT NULL,
            counts text NOT NULL,               -- rows per report status, JSON
            PRIMARY KEY (batch, path)
        );
        """,
    ),
    (
        2,
        "leases on rows, batch-wide limits, send slots and worker heartbeats",
        """
        ALTER TABLE rows ADD COLUMN lease_owner text;
        ALTER TABLE rows ADD COLUMN lease_expires timestamptz;
        CREATE INDEX rows_by_lease_owner ON rows (lease_owner) WHERE lease_owner IS NOT NULL;
        -- Limits that hold for a batch across all its workers. Runs in flight are not stored:
        -- they are the rows in 'sending' or 'submitted', plus the slots workers hold below.
        CREATE TABLE batch_limits (
            batch text PRIMARY KEY,
            concurrency integer,                -- most runs in flight at once, all workers
            rate double precision,              -- most creates per second, all workers
            max_cost double precision,
            throttle_until timestamptz,         -- a 429 seen by one worker slows them all
            throttle_limit integer,
            rate_tokens double precision,       -- the shared token bucket for --rate
            rate_stamp timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        -- Slots a worker took to send and has not yet turned into 'sending' rows. They count
        -- as in flight until used, released, or their worker stops renewing them.
        CREATE TABLE send_slots (
            batch text NOT NULL,
            worker_id text NOT NULL,
            held integer NOT NULL,
            expires_at timestamptz NOT NULL,
            PRIMARY KEY (batch, worker_id)
        );
        CREATE TABLE workers (
            worker_id text PRIMARY KEY,
            host text NOT NULL,
            pid integer NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            heartbeat_at timestamptz NOT NULL DEFAULT now(),
            lease_seconds double precision NOT NULL
        );
        """,
    ),
    (
        3,
        "failed runs sent again by their error tier; quotes apart from charged costs",
        """
        ALTER TABLE rows ADD COLUMN retries integer NOT NULL DEFAULT 0;  -- tier re-sends used
        ALTER TABLE rows ADD COLUMN resend_after double precision;  -- a tier re-send waits till
        ALTER TABLE rows ADD COLUMN quote double precision;  -- charged_cost of an unfinished run
        """,
    ),
    (
        4,
        "local files uploaded once as FLORA assets, per workspace; the files each batch names",
        """
        CREATE TABLE assets (
            workspace_id text NOT NULL,
            sha256 text NOT NULL,               -- of the file's content: one asset per content
            status text NOT NULL,               -- creating, pending_upload, ready, failed
            size bigint NOT NULL,
            content_type text NOT NULL,
            file_name text NOT NULL,            -- as sent: names the content, so it can be found
            announced_at double precision NOT NULL,
            asset_id text,
            url text,
            error text,
            updated_at double precision NOT NULL,
            PRIMARY KEY (workspace_id, sha256)
        );
        CREATE TABLE batch_files (
            batch text NOT NULL,
            path text NOT NULL,                 -- resolved
            sha256 text NOT NULL,
            size bigint NOT NULL,
            mtime_ns bigint NOT NULL,
            content_type text NOT NULL,
            first_idx integer NOT NULL,         -- the first row that names it
            PRIMARY KEY (batch, path)
        );
        CREATE TABLE row_assets (
            batch text NOT NULL,
            row_id text NOT NULL,
            input_id text NOT NULL,
            path text NOT NULL,                 -- as the manifest gave it
            sha256 text NOT NULL,
            asset_id text NOT NULL,
            url text NOT NULL,
            idem_key text NOT NULL,             -- the send that used it
            PRIMARY KEY (batch, row_id, input_id)
        );
        CREATE TABLE batch_files_loaded (
            batch text PRIMARY KEY,
            fingerprint text NOT NULL           -- of the manifest load batch_files came from
        );
        """,
    ),
    (
        5,
        "downloads claimed under leases like sends; the host each file landed on",
        """
        ALTER TABLE downloads ADD COLUMN host text;  -- the host whose disk holds the file
        -- One output file to fetch, claimed by one worker at a time under a lease its heartbeat
        -- renews; a claim whose lease ran out (its worker died) is taken over.
        CREATE TABLE download_claims (
            batch text NOT NULL,
            row_id text NOT NULL,
            output_id text NOT NULL,
            worker_id text,
            expires_at timestamptz,
            PRIMARY KEY (batch, row_id, output_id)
        );
        CREATE INDEX download_claims_by_worker ON download_claims (worker_id)
            WHERE worker_id IS NOT NULL;
        """,
    ),
]


def migrate(conn: psycopg.Connection[TupleRow]) -> list[int]:
    """Bring the database up to date; returns the versions applied now. ``conn`` is in
    autocommit mode, as the journal keeps it."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            with conn.transaction():
                conn.execute(sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (version, name),
                )
            applied.append(version)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def is_migrated(conn: psycopg.Connection[TupleRow]) -> bool:
    """Whether this database holds a journal at all (without creating anything)."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    return bool(row and row[0])
