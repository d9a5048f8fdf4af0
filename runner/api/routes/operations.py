"""Long-running operations (installs): poll their state, progress stages, result or error."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from ..context import AppContext, get_ctx
from ..schemas import PROBLEM_RESPONSES, OperationOut

router = APIRouter(prefix="/operations", tags=["operations"], responses={401: PROBLEM_RESPONSES[401]})


@router.get("", response_model=list[OperationOut],
            summary="Recent operations (kept across restarts), oldest first; filters: kind, state")
def list_operations(ctx: AppContext = Depends(get_ctx),
                    kind: str | None = Query(default=None, max_length=50, description="e.g. install"),
                    state: Literal["pending", "running", "succeeded", "failed"] | None = Query(default=None),
                    ) -> list[dict[str, Any]]:
    return [op.to_dict() for op in ctx.operations.list(kind=kind, state=state)]


@router.get("/{op_id}", response_model=OperationOut, summary="One operation",
            responses={404: PROBLEM_RESPONSES[404]})
def get_operation(op_id: str, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    return ctx.operations.get(op_id).to_dict()
