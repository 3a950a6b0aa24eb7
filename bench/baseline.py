"""The script a careful user writes without batchrun: asyncio + httpx, a semaphore of C, one
POST per row, a GET per run every second until it ends, a CSV at the end.

    python -m bench.baseline MANIFEST.csv TECHNIQUE BASE_URL OUT.csv CONCURRENCY
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys

import httpx


async def main(manifest: str, technique: str, base_url: str, out: str, concurrency: int) -> None:
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    headers = {"Authorization": f"Bearer {os.environ['FLORA_API_KEY']}"}
    gate = asyncio.Semaphore(concurrency)
    results: list[dict[str, object]] = [{} for _ in rows]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:

        async def one(i: int, row: dict[str, str]) -> None:
            async with gate:
                inputs = [
                    {"id": k, "type": "text", "value": v} for k, v in row.items() if k != "id" and v
                ]
                key = f"baseline-{row['id']}"
                r = await client.post(f"{base_url}/techniques/{technique}/runs",
                                      json={"inputs": inputs, "mode": "async", "idempotency_key": key},
                                      headers={"Idempotency-Key": key})  # fmt: skip
                r.raise_for_status()
                run = r.json()
                while run["status"] in ("pending", "running"):
                    await asyncio.sleep(1.0)
                    r = await client.get(f"{base_url}/techniques/{technique}/runs/{run['run_id']}")
                    r.raise_for_status()
                    run = r.json()
                results[i] = {"id": row["id"], "run_id": run["run_id"], "status": run["status"],
                              "charged_cost": run.get("charged_cost")}  # fmt: skip

        await asyncio.gather(*(one(i, row) for i, row in enumerate(rows)))
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "run_id", "status", "charged_cost"])
        writer.writeheader()
        writer.writerows(results)


if __name__ == "__main__":
    m, t, b, o, c = sys.argv[1:6]
    asyncio.run(main(m, t, b, o, int(c)))
