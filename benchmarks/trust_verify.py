"""What verifying a package signature costs, against the install time of the example package.

Run from the repository root::

    .venv/bin/python -m benchmarks.trust_verify [--repeat 5]

In one run: builds the example package (``example-algorithm/``: numpy + the SDK wheel), signs each
version with a fresh EC P-256 key, and measures

1. install: ``Installer.install`` of signed versions under ``trust_mode require`` on one root (warm uv
   cache: the steady state of a station), wall time from zip to registered;
2. verify: the signature check alone, as the installer runs it (``runner.trust.verify.verify_package``
   on the extracted tree: hash every file, check the envelope), on the same package;
3. import: the one-off cost of importing model-signing in a fresh interpreter (the daemon pays it in a
   background thread at start, so installs do not).

Prints the medians and the ratio verify / install. Target: at most 5 %. A benchmark prints; it never
asserts.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from benchmarks.install import example_package
from procvision_algorithm_sdk.signing.keys import generate_key_pair
from procvision_algorithm_sdk.signing.sign import SigningKey, sign_zip
from runner.config import Settings
from runner.package.installer import Installer
from runner.package.layout import locate
from runner.store.registry import Registry
from runner.trust.gate import SIGNATURE_FILE
from runner.trust.store import TrustStore
from runner.trust.verify import verify_package

IMPORT_TIMEOUT_S = 120.0


def import_time() -> float:
    """Seconds a fresh interpreter needs to import the verifier."""
    code = ("import time; t = time.perf_counter(); import model_signing.verifying, model_signing.hashing; "
            "print(time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=IMPORT_TIMEOUT_S,
                          check=True)
    return float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="installs (and verifications) to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pv-bench-trust-") as tmp:
        work = Path(tmp)
        key = generate_key_pair(work / "bench.key")
        settings = Settings(root=work / "root", uv_cache_dir=work / "uv-cache", trust_mode="require")
        installer = Installer(settings, Registry(settings.layout))
        TrustStore(settings.layout).add(key.public_key.read_bytes())
        packages = []
        for i in range(args.repeat + 1):
            zip_path = example_package(work / f"pkg{i}", f"1.0.{i}")
            packages.append(sign_zip(zip_path, SigningKey(key.private_key)))
        size = packages[0].stat().st_size
        # Warm-up install (cold uv cache, first import of model-signing): not counted.
        installer.install(packages[0])
        installs = []
        for package in packages[1:]:
            start = time.perf_counter()
            installer.install(package)
            installs.append(time.perf_counter() - start)
        tree = work / "extracted"
        with zipfile.ZipFile(packages[-1]) as zf:
            zf.extractall(tree)
            signature = locate(zf.namelist()).member(SIGNATURE_FILE)
        store = TrustStore(settings.layout)
        verifies = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            verify_package(tree, signature, store)
            verifies.append(time.perf_counter() - start)
        one_off = import_time()
    install_s, verify_s = statistics.median(installs), statistics.median(verifies)
    print(f"example package: {size / 1e6:.1f} MB zip, {args.repeat} signed installs under trust_mode require")
    print(f"install (warm, signed, require): median {install_s * 1000:8.1f} ms")
    print(f"verify (hash + envelope):        median {verify_s * 1000:8.1f} ms")
    print(f"ratio verify / install:          {verify_s / install_s * 100:8.2f} %   (target <= 5 %)")
    print(f"model-signing import (once per process, in the background at daemon start): {one_off * 1000:.0f} ms")


if __name__ == "__main__":
    main()
