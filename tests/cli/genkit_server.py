"""`genkit serve` in a subprocess on a free loopback port, for the tests that talk to it."""

import contextlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import SHARED_DATA


class Server:
    def __init__(self, process: subprocess.Popen, url: str, log: list[str]):
        self.process, self.url, self.log = process, url, log

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit status (genkit serve finishes what is in flight and exits 0)."""
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def genkit_server(ckpt: Path, cwd: Path, *options: str, ready_s: float = 120) -> Iterator[Server]:
    genkit = Path(sys.executable).with_name("genkit")
    env = {**os.environ, "GENKIT_DATA_DIR": str(SHARED_DATA)}
    env.pop("GENKIT_API_KEY", None)
    process = subprocess.Popen(
        [str(genkit), "serve", f"ckpt={ckpt}", "port=0", *options],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    log: list[str] = []
    ready = threading.Event()
    url: list[str] = []

    def read() -> None:  # the whole output, kept for the assertions; the ready line gives the port
        for line in process.stdout:
            log.append(line)
            found = re.search(r" on (http://127\.0\.0\.1:\d+/)", line)
            if found and not url:
                url.append(found.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    server = None
    try:
        ready.wait(ready_s)
        assert url, "genkit serve did not say it was ready:\n" + "".join(log)[-3000:]
        server = Server(process, url[0], log)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
