"""``procvision-cli sign`` and ``procvision-cli verify``: sign a package zip, check a signed one.

Works on any package zip, including one built by the public SDK's packager: the signature
(``package.sig``) is added beside ``manifest.json`` and covers every other file of the zip.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from .project import UsageError


def add_signing_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--key`` (or ``--sign-key``), ``--cert`` and ``--chain`` for commands that sign."""
    p.add_argument(f"--{prefix}key", dest="sign_key", required=not prefix, metavar="KEY",
                   help="private key PEM to sign with (procvision-cli keygen makes one)")
    p.add_argument(f"--{prefix}cert", dest="sign_cert", metavar="CERT",
                   help="certificate mode: the signing certificate PEM issued for KEY by your CA")
    p.add_argument(f"--{prefix}chain", dest="sign_chain", action="append", default=[], metavar="PEM",
                   help="certificate mode: intermediate/CA certificates up to the CA (repeatable)")


def signing_key(args: argparse.Namespace) -> Any:
    """The SigningKey the options name; UsageError for a missing file."""
    from ..signing.sign import SigningKey

    paths = [args.sign_key, args.sign_cert, *args.sign_chain]
    missing = [p for p in paths if p and not Path(p).expanduser().is_file()]
    if missing:
        raise UsageError(f"file not found: {', '.join(missing)}")
    if args.sign_chain and not args.sign_cert:
        raise UsageError("--chain needs --cert")
    cert: Path | None = Path(args.sign_cert).expanduser() if args.sign_cert else None
    return SigningKey(Path(args.sign_key).expanduser(), cert, tuple(Path(c).expanduser() for c in args.sign_chain))


def sign_package(zip_path: Path, args: argparse.Namespace, err: TextIO, output: Path | None = None) -> int:
    """Sign ``zip_path`` with the key the options name; 0 on success, 1 with a message otherwise."""
    from ..signing.errors import SigningUnavailable, require_signing_libraries
    from ..signing.sign import sign_zip

    key = signing_key(args)
    try:
        require_signing_libraries()
        written = sign_zip(zip_path, key, output)
    except SigningUnavailable as exc:
        err.write(f"error: {exc}\n")
        return 1
    except (OSError, ValueError, TypeError) as exc:
        # model-signing and cryptography report a wrong key, password or certificate as ValueError/TypeError.
        err.write(f"error: cannot sign {zip_path}: {exc}\n")
        return 1
    err.write(f"signed {written}\n")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sign", help="sign a package zip (adds package.sig beside manifest.json)",
                       description="Sign a package zip in the OpenSSF model-signing format, offline.")
    p.add_argument("zip", help="package zip (from procvision-cli package, ours or the public one)")
    add_signing_options(p)
    p.add_argument("-o", "--output", help="write the signed zip here (default: sign in place)")
    p.set_defaults(handler=sign_command)

    p = sub.add_parser("verify", help="check a signed package zip against public keys or CA certificates",
                       description="Verify a package's signature as the runner does before installing it.")
    p.add_argument("zip")
    p.add_argument("--key", action="append", default=[], metavar="PUB", help="trusted public key PEM (repeatable)")
    p.add_argument("--ca", action="append", default=[], metavar="CERT", help="trusted CA certificate PEM (repeatable)")
    p.set_defaults(handler=verify_command)


def _zip(path: str) -> Path:
    zip_path = Path(path).expanduser()
    if not zip_path.is_file():
        raise UsageError(f"zip not found: {zip_path}")
    return zip_path


def sign_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    zip_path = _zip(args.zip)
    output = Path(args.output).expanduser() if args.output else None
    code = sign_package(zip_path, args, err, output)
    if code == 0:
        out.write(f"{output or zip_path}\n")
    return code


def verify_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..signing.errors import SignatureError, SigningUnavailable
    from ..signing.verify import verify_zip

    zip_path = _zip(args.zip)
    if not args.key and not args.ca:
        raise UsageError("give at least one --key PUB or --ca CERT to verify against")
    missing = [p for p in [*args.key, *args.ca] if not Path(p).expanduser().is_file()]
    if missing:
        raise UsageError(f"file not found: {', '.join(missing)}")
    try:
        signer = verify_zip(zip_path, [Path(k).expanduser() for k in args.key], [Path(c).expanduser() for c in args.ca])
    except SigningUnavailable as exc:
        err.write(f"error: {exc}\n")
        return 1
    except SignatureError as exc:
        err.write(f"FAIL {exc.reason}: {exc.message}\n")
        return 1
    except (OSError, ValueError) as exc:
        err.write(f"error: cannot read {zip_path}: {exc}\n")
        return 1
    out.write(f"OK signed by {signer.describe()}\n")
    return 0
