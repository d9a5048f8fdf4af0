"""The trust store over the API: list, add and remove the keys and CA certificates packages are signed with."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from runner.trust.modes import resolve_mode

from ..context import AppContext, get_ctx
from ..schemas import PROBLEM_RESPONSES

router = APIRouter(prefix="/trust", tags=["trust"], responses={401: PROBLEM_RESPONSES[401]})


class TrustEntryOut(BaseModel):
    """One key or CA certificate of ``<root>/trust/``; ``problem`` says why an entry is not used."""

    name: str
    kind: str = Field(description="key, ca, or unknown (an unusable file)")
    fingerprint: str = Field(description="hex SHA-256: of the key's PEM, or of the certificate's DER")
    path: str
    subject: str | None = None
    not_after: str | None = None
    problem: str | None = None


class TrustStoreOut(BaseModel):
    trust_mode: str = Field(description="The setting: auto, require, warn or off")
    mode_in_force: str = Field(description="What auto resolves to now: require once a key is trusted, else warn")
    entries: list[TrustEntryOut]


class TrustAdd(BaseModel):
    """A PEM public key (EC) or CA certificate to trust."""

    model_config = ConfigDict(extra="forbid")
    pem: str = Field(min_length=1, max_length=256 * 1024, description="PEM text of the public key or CA certificate")
    name: str | None = Field(default=None, max_length=64, description="Entry name (default: <kind>-<fingerprint>)")


@router.get("", response_model=TrustStoreOut, summary="Trusted keys and CA certificates, and the trust mode")
def list_trust(ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    store = ctx.service.installer.trust.store
    return {"trust_mode": ctx.settings.trust_mode, "mode_in_force": resolve_mode(ctx.settings.trust_mode, store).name,
            "entries": [e.to_dict() for e in store.entries()]}


@router.post("", response_model=TrustEntryOut, summary="Trust a public key or CA certificate",
             responses={422: PROBLEM_RESPONSES[422]})
def add_trust(body: TrustAdd, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    return ctx.service.installer.trust.store.add(body.pem.encode("utf-8"), body.name).to_dict()


@router.delete("/{ident}", response_model=TrustEntryOut, summary="Stop trusting a key or CA certificate",
               responses={404: PROBLEM_RESPONSES[404], 422: PROBLEM_RESPONSES[422]})
def remove_trust(ident: str, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    return ctx.service.installer.trust.store.remove(ident).to_dict()
