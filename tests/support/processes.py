"""Run a long-lived command (a server) for a test, ready when it says so on stderr."""

from __future__ import annotations

import queue
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(
    cmd: Sequence[str], *, ready: Sequence[str], cwd: Path, env: dict[str, str]
) -> Iterator[list[str]]:
    """Run ``cmd`` until the block ends; ready when a stderr line contains one of ``ready``.

    Yields the stderr lines seen so far; lines that come later are appended after the block.
    """
    process = subprocess.Popen(list(cmd), cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        while True:
            line = lines.get(timeout=120)
            seen.append(line)
            if any(word in line for word in ready):
                break
        yield seen
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
        while not lines.empty():
            seen.append(lines.get())
