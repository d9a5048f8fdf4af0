"""``quickstart`` (what ``./dev serve`` runs): make sure the example algorithm is installed and
active on the root, then serve.

First run: download the example's third-party wheels from the package registry into
``.cache/quickstart/wheels`` (once), build its offline zip with the SDK packager
(``procvision-cli package``), install it and bind its pids. Later runs find it installed and active
and go straight to serving.

It shows the trusted path: the first run makes a signing key for the root (``<root>/.signing/``),
trusts its public key (``<root>/trust/``, so ``trust_mode auto`` means require) and signs the example
with it before installing, as a build server would.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, TextIO

from runner.config import Settings
from runner.errors import PackageErrorCode, RunnerError
from runner.service import RunnerService
from runner.store.layout import RootLayout

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example-algorithm"
CACHE = REPO / ".cache" / "quickstart"
#: Wheels the test suite downloads (``./dev test``); reused so quickstart can run offline after it.
TEST_WHEELS = REPO / ".cache" / "wheels"
PIP_TIMEOUT_S = 900.0


class Quickstart:
    """Installs and activates the example algorithm through a started service."""

    def __init__(self, out: TextIO, example: Path = EXAMPLE, cache: Path = CACHE,
                 test_wheels: Path = TEST_WHEELS) -> None:
        self.out = out
        self.example = example
        self.cache = cache
        self.test_wheels = test_wheels
        self.pids: list[str] = []
        #: The example's name and version, and the pids that serve it once ``prepare`` has run.
        self.example_version: tuple[str, str] | None = None
        self.serving: list[str] = []
        #: pid -> "name version" of the example's pids that serve something else.
        self.taken: dict[str, str] = {}
        self.sample: Path | None = None

    def _say(self, message: str) -> None:
        self.out.write(f"quickstart: {message}\n")
        self.out.flush()

    def manifest(self) -> dict[str, Any]:
        path = self.example / "manifest.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunnerError(PackageErrorCode.MANIFEST_MISSING,
                              f"cannot read the example algorithm's manifest {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise RunnerError(PackageErrorCode.MANIFEST_MISSING, f"{path} must hold a JSON object")
        return data

    def prepare(self, service: RunnerService) -> None:
        """Install the example if missing, bind its pids that nothing serves yet."""
        manifest = self.manifest()
        name, version = str(manifest["name"]), str(manifest["version"])
        self.pids = [str(p) for p in manifest.get("supported_pids") or []]
        record = service.registry.get(name, version)
        if record is None or record.get("state") == "invalid":
            zip_path = self.sign(self.build_package(name, version), service.layout)
            self._say(f"installing {zip_path.name}")
            result = service.install(zip_path, progress=lambda stage: self._say(f"  {stage}"))
            self._say(f"installed {result.get('name')} {result.get('version')}")
        else:
            self._say(f"{name} {version} is already installed")
        bound = service.active()
        free = [pid for pid in self.pids if pid not in bound]
        if free:
            self._say(f"activating {name} {version} for {', '.join(free)}")
            service.activate(name, version, free)
        self.example_version = (name, version)
        bound = service.active()
        self.serving = [pid for pid in self.pids if pid in bound and bound[pid].key == (name, version)]
        self.taken = {pid: f"{bound[pid].name} {bound[pid].version}"
                      for pid in self.pids if pid in bound and pid not in self.serving}
        for pid, other in self.taken.items():
            # Left as the user set it: the quick start never moves a pid someone else bound.
            self._say(f"{pid} serves {other}, not the example; the example's commands below use "
                      f"{', '.join(self.serving) or 'no pid'}")
        self.sample = self.sample_image()

    def signing_key(self, layout: RootLayout) -> Path:
        """The root's own signing key; made, and its public key trusted, on the first run."""
        from procvision_algorithm_sdk.signing.keys import generate_key_pair
        from runner.trust.store import TrustStore

        key = layout.signing / "quickstart.key"
        if key.is_file():
            return key
        layout.signing.mkdir(mode=0o700, parents=True, exist_ok=True)
        pair = generate_key_pair(key)
        entry = TrustStore(layout).add(pair.public_key.read_bytes(), "quickstart")
        self._say(f"made a signing key for this root ({key}) and trusted it: {entry.name} sha256:{entry.fingerprint}")
        return key

    def sign(self, zip_path: Path, layout: RootLayout) -> Path:
        """A copy of ``zip_path`` signed with the root's key (the cached zip stays unsigned)."""
        from procvision_algorithm_sdk.signing.sign import SigningKey, sign_zip

        signed = layout.signing / zip_path.name
        sign_zip(zip_path, SigningKey(self.signing_key(layout)), signed)
        self._say(f"signed {zip_path.name} with the root's key ({signed})")
        return signed

    def build_package(self, name: str, version: str) -> Path:
        """The example's offline zip (built once, then reused from the cache)."""
        dist = self.cache / "dist"
        zip_path = dist / f"{name}-v{version}-offline.zip"
        if zip_path.is_file():
            return zip_path
        self._say(f"building the package of {name} {version} with procvision-cli package")
        # Wheels already on this machine (the test suite's cache) first; the registry only if needed.
        local = [d for d in (self.cache / "wheels", self.test_wheels) if d.is_dir()]
        code, message = self._package(dist, local) if local else (1, "no local wheels")
        if code != 0:
            code, message = self._package(dist, [self.ensure_wheels(), *local])
        if code != 0 or not zip_path.is_file():
            raise RunnerError(PackageErrorCode.INSTALL_FAILED,
                              f"procvision-cli package failed (exit {code}): {message[-2000:]}")
        return zip_path

    def _package(self, dist: Path, wheel_dirs: list[Path]) -> tuple[int, str]:
        from procvision_algorithm_sdk.cli.main import main as sdk_cli

        argv = ["package", str(self.example), "-o", str(dist), "--offline"]
        for folder in wheel_dirs:
            argv += ["--wheels-from", str(folder)]
        out, err = io.StringIO(), io.StringIO()
        code = sdk_cli(argv, out=out, err=err)
        return code, err.getvalue().strip()

    def ensure_wheels(self) -> Path:
        """Download the example's third-party wheels once (needs the package registry)."""
        from procvision_algorithm_sdk.cli.project import is_sdk_requirement, requirement_lines

        wheels = self.cache / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        req_file = self.example / "requirements.txt"
        text = req_file.read_text(encoding="utf-8") if req_file.is_file() else ""
        lines = [line for line in requirement_lines(text) if not is_sdk_requirement(line)]
        if not lines:
            return wheels
        key = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
        marker = wheels / f".complete-py{sys.version_info.major}{sys.version_info.minor}-{key}"
        if marker.exists():
            return wheels
        self._say(f"downloading wheels for {', '.join(lines)} into {wheels} (first run only)")
        cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
               "--only-binary=:all:", "--dest", str(wheels), *lines]
        try:
            subprocess.run(cmd, check=True, timeout=PIP_TIMEOUT_S, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            raise RunnerError(PackageErrorCode.WHEELS_MISSING,
                              f"pip download of the example's wheels failed: {exc.stderr.strip()[-2000:]}; "
                              "check access to the package registry") from exc
        except subprocess.TimeoutExpired as exc:
            raise RunnerError(PackageErrorCode.WHEELS_MISSING,
                              f"pip download did not finish in {PIP_TIMEOUT_S:.0f} s") from exc
        marker.touch()
        return wheels

    def sample_image(self) -> Path:
        """A small PNG to try ``/execute`` with: a gray plate with one dark spot."""
        path = self.cache / "sample.png"
        if not path.exists():
            import numpy as np
            from PIL import Image

            pixels = np.full((240, 320, 3), 200, dtype=np.uint8)
            pixels[100:130, 150:190] = 30
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
        return path

    def announce(self, url: str, settings: Settings) -> None:
        """How to call the example, for a pid that serves it now (never one bound to something else)."""
        if self.sample is None or self.example_version is None:
            return
        name, version = self.example_version
        if not self.serving:
            taken = ", ".join(f"{pid} -> {other}" for pid, other in self.taken.items())
            self.out.write(f"  the example {name} {version} serves no pid ({taken}); bind one with: "
                           f"procvision-runner switch {name} {version} --pid {next(iter(self.taken), 'PID')}\n")
            self.out.flush()
            return
        pid = self.serving[0]
        auth = f'-H "Authorization: Bearer $(cat {settings.layout.token_file})" ' if settings.auth_enabled else ""
        self.out.write(f"  run the example ({name} {version} on {pid}):\n"
                       f"    procvision-runner execute --pid {pid} --image {self.sample}{_cli_flags(url, settings)}\n"
                       f"    curl {auth}-F pid={pid} -F image=@{self.sample} {url}/execute\n")
        self.out.flush()


def _cli_flags(url: str, settings: Settings) -> str:
    """The flags ``procvision-runner`` needs to reach this daemon from the current folder (none for
    the defaults ``./dev serve`` uses)."""
    from .endpoint import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_ROOT, url_for

    flags = ""
    if settings.layout.root.resolve() != DEFAULT_ROOT.resolve():
        flags += f" --root {settings.layout.root}"
    if url != url_for(DEFAULT_HOST, DEFAULT_PORT):
        flags += f" --url {url}"
    return flags
