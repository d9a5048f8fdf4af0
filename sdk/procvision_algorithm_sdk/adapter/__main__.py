"""Entry point: ``python -m procvision_algorithm_sdk.adapter [--entry module:Class]`` and the
``procvision-adapter`` console script."""

import os
import sys


def main() -> None:
    """Guard stdio, then serve the protocol until told to stop (exits with the adapter's code)."""
    from .stdio import protect_stdio, strict_requested

    # Before the algorithm (or anything it imports) can write: from here on print() and fd-1
    # writes land on stderr and only the adapter can reach the protocol stream.
    streams = protect_stdio(strict=strict_requested(os.environ))

    from .server import main as serve

    sys.exit(serve(sys.argv[1:], streams))


if __name__ == "__main__":
    main()
