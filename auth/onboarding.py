"""Onboarding a connected system in one step: its OAuth client and its access grant, then rotating its
keys or secret and switching it off. Used by `childindex clients ...` and /api/v1/clients.

Nothing here is a second copy of a rule: the client is registered by auth.registry (client id, keys,
known scopes) and its grant made by auth.grant_admin (reach, the person responsible, dates, and the
second administrator who approves a client's grant before it works). What this module adds is doing
both in one unit of work, the organisation as an ODS code, and rotating a client secret.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PField
from sqlmodel import Session

from auth import grant_admin, registry
from auth.clients import hash_secret, new_secret
from auth.grant_admin import AdminGrant, GrantCreate
from auth.grant_rules import GrantRules, Subject
from auth.models import AccessGrant, ClientAuthMethod, OAuthClient, SubjectKind
from directory import audit
from directory.errors import InvalidInput, NotAllowed
from directory.models import Actor, Role, utcnow

_ODS = re.compile(r"^[A-Z0-9]{3,10}$")
# A client's token carries only what its grant holds; these three are not grant scopes.
_TOKEN_ONLY = frozenset({"openid", "fhirUser", "offline_access"})


class ClientOnboard(registry.ClientRegister):
    """A connected system: its client (keys or secret, scopes) and the grant that lets it in."""

    organisation: str = PField(description="The system's organisation, as its ODS code (e.g. RX1)")
    responsible: Subject = PField(
        description="The contact: the person who answers for the system (a current grant of their own)"
    )
    valid_days: int = PField(default=365, ge=1, le=36500, description="How long its grant lasts")
    reason: str = PField(min_length=1, max_length=500)

    @field_validator("jwks", mode="before")
    @classmethod
    def _jwks_object(cls, v: Any) -> Any:
        """The JWK Set may come as a JSON object or as its text."""
        return json.dumps(v) if isinstance(v, dict) else v

    @field_validator("organisation")
    @classmethod
    def _ods(cls, v: str) -> str:
        code = v.strip().upper()
        if not _ODS.match(code):
            raise ValueError("give the organisation's ODS code: 3 to 10 letters and digits (e.g. RX1)")
        return code


class ClientRotate(BaseModel):
    """New keys (a JWKS or a JWKS URL) for a private_key_jwt client; nothing for a secret client."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    jwks_url: str | None = PField(default=None, max_length=500)
    jwks: str | None = PField(default=None, max_length=20000)
    reason: str = PField(default="keys rotated", min_length=1, max_length=500)

    @field_validator("jwks", mode="before")
    @classmethod
    def _jwks_object(cls, v: Any) -> Any:
        return json.dumps(v) if isinstance(v, dict) else v


class ClientDisable(BaseModel):
    """Why a client is switched off."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = PField(min_length=1, max_length=500)


class GrantSummary(BaseModel):
    """The part of a client's grant an operator needs to see."""

    id: uuid.UUID
    status: str
    organisation: str | None
    responsible: str | None
    scopes: list[str]
    valid_until: datetime


class ClientRead(BaseModel):
    """A connected system as administrators see it (never its secret or key material)."""

    client_id: str
    name: str
    auth_method: str
    jwks_url: str | None
    key_ids: list[str]
    scopes: list[str]
    active: bool
    registered_by: str | None
    created_at: datetime
    grants: list[GrantSummary]

    @classmethod
    def of(cls, client: OAuthClient, grants: list[AccessGrant]) -> ClientRead:
        """The view of a client and its grants."""
        keys = json.loads(client.jwks)["keys"] if client.jwks else []
        return cls(
            client_id=client.client_id,
            name=client.name,
            auth_method=client.auth_method,
            jwks_url=client.jwks_url,
            key_ids=[str(k.get("kid")) for k in keys],
            scopes=client.allowed_scopes.split(),
            active=client.active,
            registered_by=client.registered_by,
            created_at=client.created_at,
            grants=[
                GrantSummary(
                    id=g.id,
                    status=g.status,
                    organisation=g.organisation,
                    responsible=g.responsible,
                    scopes=sorted(g.scope_set()),
                    valid_until=g.valid_until,
                )
                for g in grants
            ],
        )


class ClientRegistered(ClientRead):
    """A new client; a secret client's secret appears here once and is never shown again."""

    secret: str | None = None
    next_step: str


def _require_admin(actor: Actor) -> None:
    if actor.role != Role.DIRECTORY_ADMIN:
        raise NotAllowed("Only a directory administrator registers or changes connected systems.")


def client_grants(session: Session, client_id: str) -> list[AccessGrant]:
    """The access grants of a client (not of a person who happens to share its name)."""
    rows = grant_admin.list_grants(session, subject=client_id)
    return [g for g in rows if g.subject_kind == SubjectKind.CLIENT.value]


def onboard(
    session: Session,
    *,
    actor: Actor,
    admin_grant: AdminGrant,
    data: ClientOnboard,
    default_authority: str,
    rules: GrantRules,
) -> ClientRegistered:
    """Register the client and make its grant (pending a second administrator's approval) in one unit
    of work: either both exist afterwards or neither. Audited (client.register, grant.create)."""
    _require_admin(actor)
    client, secret = registry.register_client(session, actor=actor, data=data)
    grant = grant_admin.create_grant(
        session,
        actor=actor,
        admin_grant=admin_grant,
        data=GrantCreate(
            subject=data.client_id,
            subject_kind=SubjectKind.CLIENT,
            role=Role.SYSTEM,
            organisation=data.organisation,
            scopes=sorted(set(data.scopes) - _TOKEN_ONLY) or list(data.scopes),
            valid_until=utcnow() + timedelta(days=data.valid_days),
            responsible=data.responsible,
            reason=data.reason,
        ),
        default_authority=default_authority,
        rules=rules,
    )
    view = ClientRead.of(client, [grant]).model_dump()
    return ClientRegistered(
        **view,
        secret=secret,
        next_step=(
            f"Its grant {grant.id} waits for a second administrator (not {actor.subject}) to approve it: "
            f"`childindex grants approve {grant.id} --reason ...` or POST /api/v1/grants/{grant.id}/approve."
        ),
    )


def rotate(
    session: Session, *, actor: Actor, client_id: str, data: ClientRotate
) -> tuple[OAuthClient, str | None]:
    """Replace a client's keys (private_key_jwt) or secret (client_secret_basic); returns the new
    secret once. Tokens already issued live out their (short) lifetime. Audited."""
    _require_admin(actor)
    client = registry.get_client(session, client_id)
    if client.auth_method == ClientAuthMethod.PRIVATE_KEY_JWT.value:
        if not data.jwks and not data.jwks_url:
            raise InvalidInput("Give the new public keys (jwks) or a JWKS URL (jwks_url).", field="jwks")
        return registry.update_client(
            session, actor=actor, client_id=client_id, jwks=data.jwks, jwks_url=data.jwks_url
        ), None
    if client.auth_method != ClientAuthMethod.CLIENT_SECRET_BASIC.value:
        raise InvalidInput("This client has neither keys nor a secret to rotate (a public app).")
    if data.jwks or data.jwks_url:
        raise InvalidInput("This client authenticates with a secret: rotate it without keys.", field="jwks")
    secret = new_secret()
    client.secret_hash = hash_secret(secret)
    session.add(client)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="client.rotate",
        target_type="client",
        target_id=client_id,
        detail={"what": "secret", "reason": data.reason},
    )
    return client, secret


def disable(session: Session, *, actor: Actor, client_id: str, data: ClientDisable) -> OAuthClient:
    """Switch a client off: no new tokens, and tokens already issued are refused at their next use
    (the resource server checks the client on every request). Audited."""
    _require_admin(actor)
    client = registry.update_client(session, actor=actor, client_id=client_id, active=False)
    audit.append(
        session,
        actor=actor,
        action="client.disable",
        target_type="client",
        target_id=client_id,
        detail={"reason": data.reason},
    )
    return client
