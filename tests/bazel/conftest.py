"""Real Bazel builds in throw-away workspaces: copies of this one, and workspaces that adopt it.

Every workspace gets its own output base inside the test's temporary folder (one shared
``--output_user_root``, so Bazel unpacks itself once); every server started is shut down at
the end. The interpreter is this test run's own (``TORCHPACK_PYTHON``) unless a workspace
brings its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import site
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# What a Bazel build of the examples reads: everything else stays out of the copies.
WORKSPACE_FILES = ["WORKSPACE", "BUILD.bazel", ".bazelrc", ".bazelignore", "WORKSPACE.bzlmod"]
WORKSPACE_FOLDERS = ["rules", "third_party", "torchpack", "examples"]
BAZEL_TIMEOUT = 900


@dataclass(frozen=True)
class Spawn:
    """One action Bazel ran or fetched from a cache, from its JSON execution log."""

    mnemonic: str
    outputs: tuple[str, ...]
    runner: str
    remote_cache_hit: bool


@dataclass
class BuildResult:
    stderr: str
    spawns: list[Spawn]
    stdout: str = ""

    def executed(self, mnemonic: str) -> list[str]:
        """Outputs of the ``mnemonic`` actions that really ran (not served by a cache)."""
        return sorted(
            output
            for spawn in self.spawns
            if spawn.mnemonic == mnemonic and not spawn.remote_cache_hit
            for output in spawn.outputs
        )

    def summary(self) -> str:
        """Bazel's ``INFO: N processes: ...`` line."""
        lines = [line for line in self.stderr.splitlines() if " processes" in line]
        assert lines, self.stderr
        return lines[-1]


def read_execution_log(path: Path) -> list[Spawn]:
    """Parse ``--execution_log_json_file``: pretty-printed JSON objects one after another."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    spawns, position = [], 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return spawns
        entry, position = decoder.raw_decode(text, position)
        spawns.append(
            Spawn(
                mnemonic=entry.get("mnemonic", ""),
                outputs=tuple(entry.get("listedOutputs", [])),
                runner=entry.get("runner", ""),
                remote_cache_hit=bool(entry.get("remoteCacheHit", False)),
            )
        )


@dataclass
class Checkout:
    """A workspace with its own Bazel output base."""

    root: Path
    output_base: Path
    output_user_root: Path
    # $TORCHPACK_PYTHON for every command; None leaves the choice to the workspace.
    torchpack_python: str | None = sys.executable
    logs: list[Path] = field(default_factory=list)
    built: BuildResult | None = None  # the first build, for tests that compare with it

    def bazel(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [
            "bazel",
            "--nohome_rc",
            f"--output_user_root={self.output_user_root}",
            f"--output_base={self.output_base}",
            # A test that dies before its finalizer must not leave a server behind for long.
            "--max_idle_secs=600",
            *args,
        ]
        env = dict(os.environ)
        env.pop("TORCHPACK_PYTHON", None)
        if self.torchpack_python is not None:
            env["TORCHPACK_PYTHON"] = self.torchpack_python
        result = subprocess.run(
            command,
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=BAZEL_TIMEOUT,
        )
        if check:
            assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-6000:]}"
        return result

    def build(self, *args: str, command: str = "build") -> BuildResult:
        """``bazel build`` (or ``command``), with the spawns of its execution log."""
        log = self.root.parent / f"{self.root.name}-exec-{len(self.logs)}.json"
        self.logs.append(log)
        result = self.bazel(command, f"--execution_log_json_file={log}", *args)
        return BuildResult(result.stderr, read_execution_log(log), result.stdout)

    def package_hashes(self, pattern: str = "examples/models/*.pt") -> dict[str, str]:
        """sha256 of the torch_package archives in bazel-bin matching ``pattern``."""
        bin_dir = Path(self.bazel("info", "bazel-bin").stdout.strip())
        return {
            str(path.relative_to(bin_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(bin_dir.glob(pattern))
        }

    def shutdown(self) -> None:
        if self.output_base.exists():
            self.bazel("shutdown", check=False)


def copy_workspace(
    destination: Path,
    files: list[str] = WORKSPACE_FILES,
    folders: list[str] = WORKSPACE_FOLDERS,
) -> Path:
    """A copy of ``files`` and ``folders`` of this checkout (by default what Bazel reads)."""
    destination.mkdir(parents=True)
    for name in files:
        shutil.copy2(REPO_ROOT / name, destination / name)
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in folders:
        shutil.copytree(REPO_ROOT / name, destination / name, ignore=ignored, symlinks=True)
    return destination


def make_venv(folder: Path) -> None:
    """A `.venv` whose Python imports this test run's packages (torch), but not torchpack."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    # A plain path line: the editable torchpack install's own .pth files are not processed.
    packages = next((folder / "lib").glob("python3*/site-packages"))
    (packages / "test_run_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")


@pytest.fixture(scope="session")
def bazel_checkouts(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """``make(name)`` returns a fresh workspace copy at its own path with its own output base.

    ``make(name, populate, torchpack_python)`` lets ``populate(folder)`` write the workspace
    instead, and runs Bazel with that ``$TORCHPACK_PYTHON`` (None: unset).
    """
    if shutil.which("bazel") is None:
        pytest.fail("bazel is not installed: run `bash scripts/setup.sh` (installs it with apt)")
    base = tmp_path_factory.mktemp("bazel")
    output_user_root = base / "user_root"
    checkouts: list[Checkout] = []

    def make(
        name: str,
        populate: Callable[[Path], object] = copy_workspace,
        torchpack_python: str | None = sys.executable,
    ) -> Checkout:
        populate(base / name)
        checkout = Checkout(base / name, base / f"{name}-out", output_user_root, torchpack_python)
        checkouts.append(checkout)
        return checkout

    yield make
    for checkout in checkouts:
        checkout.shutdown()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


NGINX_CONFIG = """
user root;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{}}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            root {root}/cache;
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 0;
        }}
    }}
}}
"""


@pytest.fixture(scope="session")
def http_cache() -> Iterator[str]:
    """nginx on 127.0.0.1 serving GET/PUT as Bazel's HTTP remote cache; yields its URL."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is not installed: run `bash scripts/setup.sh` (installs it with apt)")
    # Not under pytest's private temp folder: nginx's workers may run as another user.
    root = Path(tempfile.mkdtemp(prefix="torchpack-nginx-"))
    (root / "cache").mkdir()
    for folder in (root, root / "cache"):
        folder.chmod(0o777)
    port = _free_port()
    config = root / "nginx.conf"
    config.write_text(NGINX_CONFIG.format(root=root, port=port))
    server = subprocess.Popen(
        [nginx, "-c", str(config), "-p", str(root), "-e", str(root / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, server, root)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def _wait_until_serving(url: str, server: subprocess.Popen, root: Path) -> None:
    probe = f"{url}/probe/check"
    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"nginx exited: {server.stderr.read().decode()}")
        try:
            request = urllib.request.Request(probe, data=b"ok", method="PUT")
            urllib.request.urlopen(request, timeout=5).close()
            with urllib.request.urlopen(probe, timeout=5) as response:
                assert response.read() == b"ok"
            return
        except (urllib.error.URLError, ConnectionError) as err:
            if time.monotonic() > deadline:
                log = (root / "error.log").read_text() if (root / "error.log").exists() else ""
                raise RuntimeError(f"nginx does not serve PUT/GET at {url}: {err}\n{log}") from err
            time.sleep(0.2)
