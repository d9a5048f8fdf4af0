"""The flags the runner acts on (timed_out, not_sent, retryable, fatal) are typed fields of
``CallOutcome``; what the answer reports in ``details`` stays as it was."""

from __future__ import annotations

from procvision_algorithm_sdk.errors import ErrorCode
from runner.supervision.dialects import Dialect
from runner.supervision.outcomes import error_outcome, outcome_from_frame


def _error_frame(**extra: object) -> dict[str, object]:
    return {"type": "error", "request_id": "r", "message": "boom", "error_code": "1003",
            "error_name": "recoverable", **extra}


def test_frame_flags_are_typed_and_still_reported() -> None:
    retry = outcome_from_frame(_error_frame(fatal=False, retryable=True), Dialect.PROCVISION, 7, 1.0)
    assert (retry.retryable, retry.fatal, retry.timed_out, retry.not_sent) == (True, False, False, False)
    assert retry.details == {"fatal": False, "retryable": True}
    fatal = outcome_from_frame(_error_frame(fatal=True, retryable=False, error_class="X"), Dialect.PROCVISION, 7, 1.0)
    assert fatal.fatal and not fatal.retryable and fatal.details["error_class"] == "X"
    # Only a literal true counts: a worker that sends "yes" asked for nothing.
    odd = outcome_from_frame(_error_frame(fatal="yes", retryable=1), Dialect.PROCVISION, 7, 1.0)
    assert not odd.fatal and not odd.retryable
    ok = outcome_from_frame({"type": "result", "status": "OK", "data": {}}, Dialect.PROCVISION, 7, 1.0)
    assert ok.ok and not (ok.fatal or ok.retryable or ok.timed_out or ok.not_sent) and ok.details == {}


def test_runner_made_flags_are_typed_and_shown_in_details() -> None:
    timed = error_outcome(ErrorCode.TIMEOUT, "late", Dialect.PROCVISION, 7, 5.0, timed_out=True, phase="execute")
    assert timed.timed_out and not timed.not_sent
    assert timed.details == {"phase": "execute", "timed_out": True}
    unsent = error_outcome(ErrorCode.WORKER_UNAVAILABLE, "down", None, None, 0.0, not_sent=True)
    assert unsent.not_sent and not unsent.timed_out and unsent.details == {"not_sent": True}
    plain = error_outcome(ErrorCode.INVALID_PARAMS, "bad", None, None, 0.0)
    assert not (plain.timed_out or plain.not_sent or plain.retryable or plain.fatal) and plain.details == {}
    assert plain.to_dict()["details"] == {}
