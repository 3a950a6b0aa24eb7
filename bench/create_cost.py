"""Instructions per create: the client's own cost of one request, counted rather than timed.

`python -m bench.create_cost` runs the client's ``create_run`` against a server that answers at
once with a fixed run (another process), under ``valgrind --tool=callgrind``, for 200 and for
600 creates after a warm-up, and prints the difference per create. Instruction counts repeat to
a tenth of a percent whatever else the machine does, where CPU seconds here move by 20-40 %:
this is how two builds of the client are compared. Needs valgrind.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import sys
import time

RUN = (b'{"run_id":"run_0123456789abcdef","status":"queued","progress":0,"charged_cost":null,'
       b'"created_at":1764388800.123,"outputs":[]}')  # fmt: skip
ANSWER = (
    b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
    % (
        len(RUN),
        RUN,
    )
)
CONCURRENCY = 50


class _Fixed(asyncio.Protocol):
    """Answers every request on a kept-alive connection with the same run."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = re.search(rb"(?i)content-length:\s*(\d+)", self.buffer[:end])
            size = end + 4 + (int(length.group(1)) if length else 0)
            if len(self.buffer) < size:
                return
            self.buffer = self.buffer[size:]
            self.transport.write(ANSWER)  # type: ignore[attr-defined]


async def _serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Fixed, "127.0.0.1", port)
    await server.serve_forever()


async def _creates(port: int, n: int) -> None:
    from batchrun.api.client import FloraClient

    async with FloraClient(f"http://127.0.0.1:{port}/api/v1", "bench-key") as client:

        async def worker(first: int, count: int) -> None:
            for j in range(first, count, CONCURRENCY):
                await client.create_run("tech_text2img", b'{"inputs":[]}', f"key-{j}")

        for count in (100, n):  # the first round opens the connections
            await asyncio.gather(*(worker(i, count) for i in range(CONCURRENCY)))


def _instructions(port: int, n: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-m", "bench.create_cost", "client", str(port), str(n)],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    found = re.search(r"Collected : (\d+)", out)
    if found is None:
        raise SystemExit(f"bench.create_cost: no count in valgrind's output: {out[-300:]}")
    return int(found.group(1))


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        asyncio.run(_serve(int(argv[1])))
        return 0
    if argv[:1] == ["client"]:
        asyncio.run(_creates(int(argv[1]), int(argv[2])))
        return 0
    if shutil.which("valgrind") is None:
        print("bench.create_cost: needs valgrind", file=sys.stderr)
        return 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "bench.create_cost", "serve", str(port)])
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        few, many = _instructions(port, 200), _instructions(port, 600)
    finally:
        server.terminate()
        server.wait()
    print(f"instructions per create: {(many - few) / 400:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
