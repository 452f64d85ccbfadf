"""A throwaway Docker registry on 127.0.0.1 for the integration tests.

It runs Debian's docker-registry (Docker Distribution 2.8) with storage in a
temporary folder. Docker trusts registries on 127.0.0.0/8 without TLS, so the
engine can push to it and pull from it with no extra configuration.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import docker
import docker.errors

START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0
START_ATTEMPTS = 3

CONFIG_TEMPLATE = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: {host}
"""


class Registry:
    """A docker-registry process serving on 127.0.0.1 at a free port.

    Use it as a context manager, or call start() and stop() yourself.
    """

    def __init__(
        self, client: docker.DockerClient, binary: str = "docker-registry"
    ) -> None:
        self.client = client
        self.binary = binary
        self.port: int | None = None
        self._process: subprocess.Popen | None = None
        self._workdir: Path | None = None

    @property
    def host(self) -> str:
        """The registry's address as it appears in image references."""
        if self.port is None:
            raise RuntimeError("the registry is not started; call start() first")
        return f"127.0.0.1:{self.port}"

    def start(self) -> Registry:
        executable = shutil.which(self.binary)
        if executable is None:
            raise RuntimeError(
                f"{self.binary} not found on PATH; install it with "
                "'apt-get install -y docker-registry'"
            )
        self._workdir = Path(tempfile.mkdtemp(prefix="cyanprint-test-registry-"))
        # A free port is picked by binding to port 0 first. Another process may
        # take it before the registry binds, so a failed start is retried.
        for _ in range(START_ATTEMPTS):
            self.port = _free_port()
            if self._launch(executable):
                return self
            self._terminate()
        log = self._log_tail()
        self.stop()
        raise RuntimeError(
            f"docker-registry did not answer on 127.0.0.1 after {START_ATTEMPTS} "
            f"attempts; last lines of its log:\n{log}"
        )

    def push(self, local_tag: str, repository: str) -> tuple[str, str]:
        """Push a local image as HOST/repository and return (reference, tag).

        The tag is the local tag's own tag. The pushed name is removed locally
        afterwards, so running the image requires pulling it from the registry.
        The local image and its local tag stay.
        """
        _, _, tag = local_tag.rpartition(":")
        if not tag or "/" in tag:
            raise ValueError(f"local tag {local_tag!r} has no tag part; use NAME:TAG")
        reference = f"{self.host}/{repository}"
        image = self.client.images.get(local_tag)
        image.tag(reference, tag)
        try:
            for status in self.client.images.push(
                reference, tag=tag, stream=True, decode=True
            ):
                if "error" in status:
                    raise RuntimeError(
                        f"pushing {reference}:{tag} failed: {status['error']}"
                    )
        finally:
            self.client.images.remove(f"{reference}:{tag}", noprune=True)
        return reference, tag

    def stop(self) -> None:
        """Stop the registry, delete its storage and untag images pulled from it."""
        if self.port is not None:
            self._untag_pulled_images()
        self._terminate()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _launch(self, executable: str) -> bool:
        assert self._workdir is not None
        storage = self._workdir / "storage"
        storage.mkdir(exist_ok=True)
        config = self._workdir / "config.yml"
        config.write_text(CONFIG_TEMPLATE.format(storage=storage, host=self.host))
        with open(self._workdir / "registry.log", "ab") as log:
            self._process = subprocess.Popen(
                [executable, "serve", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self._wait_ready()

    def _wait_ready(self) -> bool:
        # The registry is on loopback, so any proxy from the environment is skipped.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                with opener.open(f"http://{self.host}/v2/", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        return False

    def _terminate(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def _untag_pulled_images(self) -> None:
        prefix = self.host + "/"
        for image in self.client.images.list():
            for tag in image.tags:
                if tag.startswith(prefix):
                    try:
                        self.client.images.remove(tag, noprune=True)
                    except docker.errors.APIError:
                        pass  # A container still uses it; its owner removes both.

    def _log_tail(self, lines: int = 30) -> str:
        if self._workdir is None:
            return ""
        log = self._workdir / "registry.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
