"""Long-running operations (installs): poll their state, progress stages, result or error."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from ..context import AppContext, get_ctx
from ..schemas import PROBLEM_RESPONSES, OperationOut

router = APIRouter(prefix="/operations", tags=["operations"], responses={401: PROBLEM_RESPONSES[401]})


@router.get("", response_model=list[OperationOut], summary="Recent operations, oldest first")
def list_operations(ctx: AppContext = Depends(get_ctx)) -> list[dict[str, Any]]:
    return [op.to_dict() for op in ctx.operations.list()]


@router.get("/{op_id}", response_model=OperationOut, summary="One operation",
            responses={404: PROBLEM_RESPONSES[404]})
def get_operation(op_id: str, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    return ctx.operations.get(op_id).to_dict()
