"""``procvision-cli keygen``: make an elliptic-curve key pair for signing packages."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

DEFAULT_KEY = "procvision-signing.key"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("keygen", help="make a key pair for signing packages",
                       description="Write a new EC private key (PEM, mode 0600) and its public key (KEY.pub). "
                                   "Give the .pub file to the stations that must trust your packages.")
    p.add_argument("key", nargs="?", default=DEFAULT_KEY, help=f"private key file to write (default {DEFAULT_KEY})")
    p.add_argument("--public", help="public key file to write (default: KEY.pub)")
    p.add_argument("--curve", default="secp256r1", choices=("secp256r1", "secp384r1", "secp521r1"))
    p.set_defaults(handler=command)


def command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..signing.errors import SigningUnavailable, require_signing_libraries
    from ..signing.keys import generate_key_pair

    try:
        require_signing_libraries()
        pair = generate_key_pair(Path(args.key).expanduser(), Path(args.public).expanduser() if args.public else None,
                                 args.curve)
    except SigningUnavailable as exc:
        err.write(f"error: {exc}\n")
        return 1
    except (FileExistsError, OSError, ValueError) as exc:
        err.write(f"error: {exc}\n")
        return 1
    err.write(f"private key {pair.private_key} (keep it secret), public key {pair.public_key}\n")
    out.write(f"sha256:{pair.fingerprint}\n")
    return 0
