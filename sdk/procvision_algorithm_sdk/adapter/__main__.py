"""Entry point: ``python -m procvision_algorithm_sdk.adapter [--entry module:Class]``."""

import sys

if __name__ == "__main__":
    from .stdio import protect_stdio

    # Before the algorithm (or anything it imports) can write: from here on print() and fd-1
    # writes land on stderr and only the adapter can reach the protocol stream.
    _streams = protect_stdio()

    from .server import main

    sys.exit(main(sys.argv[1:], _streams))
