"""The one place where error codes become process exit codes.

    0            success
    1            unexpected failure (a bug, or a response the CLI does not understand); a validation
                 report that failed without an error code
    2            usage error (bad flags; argparse's own code)
    3            the daemon cannot be reached (not running, wrong --url, timeout)
    4            not ready (``status`` while /readyz answers 503)
    5            the algorithm answered ERROR without an error code
    10 + n       runner error 20nn (2001 invalid_zip -> 11 ... 2017 disk_full -> 27, 2018 insecure_setup -> 28); also
                 ``validate`` when the report's failed check carries such a code
    30 + n       runtime error 10nn (1000 unknown_error -> 30 ... 1018 memory_limit_exceeded -> 48)
    100 + n      package trust error 203n (2030 unsigned -> 100 ... 2035 signer_not_trusted -> 105)
    110 + n      frame slot error 205n (2050 slot_not_found -> 110 ... 2054 slot_invalid -> 114)
"""

from __future__ import annotations

OK = 0
FAILURE = 1
USAGE = 2
UNREACHABLE = 3
NOT_READY = 4
ALGORITHM_ERROR = 5


def exit_code_for(code: str | None) -> int:
    """Exit code of a numeric error code (``"2012"`` -> 22); FAILURE for codes outside the ranges."""
    try:
        number = int(str(code))
    except (TypeError, ValueError):
        return FAILURE
    if 2030 <= number <= 2039:
        return 100 + (number - 2030)
    if 2050 <= number <= 2059:
        return 110 + (number - 2050)
    if 2001 <= number <= 2099:
        return min(10 + (number - 2000), 29)
    if 1000 <= number <= 1099:
        return min(30 + (number - 1000), 99)
    return FAILURE
