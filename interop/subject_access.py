"""Subject access as FHIR: everything held about a child as a Bundle of type collection, made with
the same mappers as /fhir (Patient, RelatedPerson, EpisodeOfCare, Flag, CareTeam, Consent,
AuditEvent). Pure: the rows come from directory.service.subject_access."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from directory.models import (
    AddressRead,
    CafRead,
    ChildCard,
    ConsentRead,
    Contact,
    IdentifierRead,
    LeadProfessionalRead,
    NameRead,
    Organisation,
    Practitioner,
    RelatedPersonRead,
)
from directory.service.subject_access import SubjectAccess
from interop import systems as S
from interop.mapping.audit_event import audit_event
from interop.mapping.care_plan import PlanActivity, care_plan
from interop.mapping.care_team import TeamMember, care_team
from interop.mapping.consent import consent
from interop.mapping.episode_of_care import episode_of_care
from interop.mapping.flag import caf_flag
from interop.mapping.patient import PatientExtras, patient
from interop.mapping.related_person import related_person
from interop.picture import episode_row

SAR_PROFILE = f"{S.BASE}/StructureDefinition/subject-access-export"


def _contact(people: dict[uuid.UUID, tuple[Practitioner, Organisation]], pid: uuid.UUID) -> Contact:
    p, org = people[pid]
    return Contact(name=p.name, role=p.role, organisation=org.name, phone=p.phone, email=p.email)


def _patient(sar: SubjectAccess) -> dict[str, Any]:
    """The Patient with every name and identifier, and every address (old ones with their end)."""
    child = sar.child
    current = next((a for a in sar.addresses if a.until is None), None)
    card = ChildCard(
        id=child.id,
        status=child.status,
        names=[NameRead.model_validate(n) for n in sar.names],
        date_of_birth=child.date_of_birth,
        expected_delivery_date=child.expected_delivery_date,
        age_years=None,
        sex=child.sex,
        identifiers=[IdentifierRead.model_validate(i) for i in sar.identifiers],
        shielded=child.shielded,
        address=AddressRead.model_validate(current) if current else None,
    )
    res = patient(card, PatientExtras(version=child.version, updated_at=child.updated_at))
    for a in sar.addresses:
        if a.until is None:
            continue
        old: dict[str, Any] = {
            "use": "old",
            "line": [x for x in (a.line1, a.line2) if x],
            "postalCode": a.postcode,
        }
        if a.town:
            old["city"] = a.town
        old["period"] = {k: v.isoformat() for k, v in (("start", a.since), ("end", a.until)) if v}
        res.setdefault("address", []).append(old)
    return res


def _episodes(sar: SubjectAccess) -> list[dict[str, Any]]:
    return [episode_of_care(episode_row(inv, svc, org, p)) for inv, svc, org, p in sar.involvements]


def _cafs(sar: SubjectAccess) -> list[dict[str, Any]]:
    out = []
    for caf in sar.cafs:
        holder_id = caf.lead_practitioner_id or caf.initiator_id
        read = CafRead(
            id=caf.id,
            status=caf.status,
            holder=_contact(sar.practitioners, holder_id) if holder_id in sar.practitioners else None,
            signalled_at=caf.signalled_at,
            signal_expires_at=caf.signal_expires_at,
            started_at=caf.started_at,
            completed_at=caf.completed_at,
            closed_at=caf.closed_at,
            outcome=caf.outcome,
        )
        out.append(
            caf_flag(sar.child.id, read, holder_id=holder_id, version=caf.version, updated=caf.updated_at)
        )
    return out


def _lead_history(sar: SubjectAccess) -> list[dict[str, Any]]:
    """Each Lead Professional spell as a Flag (the /fhir surface shows only the current one)."""
    out = []
    for spell in sar.lead_history:
        lead = LeadProfessionalRead(
            practitioner_id=spell.practitioner_id,
            contact=_contact(sar.practitioners, spell.practitioner_id),
            since=spell.started_at,
            reason=spell.reason,
        )
        period = {"start": lead.since.isoformat()}
        if spell.ended_at:
            period["end"] = spell.ended_at.isoformat()
        out.append(
            {
                "resourceType": "Flag",
                "id": f"lp-{spell.id.hex}",
                "status": "inactive" if spell.ended_at else "active",
                "category": [{"coding": [{"system": S.FLAG_CATEGORY, "code": "admin"}]}],
                "code": {
                    "coding": [{"system": S.FLAG_CODE, "code": "lead-professional-in-place"}],
                    "text": f"Lead Professional: {lead.contact.name}, {lead.contact.organisation} "
                    f"({spell.reason})",
                },
                "subject": {"reference": f"Patient/{sar.child.id}"},
                "period": period,
                "author": {
                    "reference": f"Practitioner/{spell.practitioner_id}",
                    "display": lead.contact.name,
                },
            }
        )
    return out


def _tacs(sar: SubjectAccess) -> list[dict[str, Any]]:
    out = []
    leads = {c.id: c.lead_practitioner_id for c in sar.cafs}
    for tac, members in sar.tacs:
        team = [
            TeamMember(
                practitioner_id=m.practitioner_id,
                name=sar.practitioners[m.practitioner_id][0].name,
                role=m.role,
                organisation=sar.practitioners[m.practitioner_id][1].name,
            )
            for m in members
        ]
        out.append(care_team(tac, team, lead_practitioner_id=leads.get(tac.assessment_id)))
        if tac.id in sar.plans:  # the TAC's plan (issue #18 item 6)
            actions, reviews = sar.plans[tac.id]
            rows = [
                PlanActivity(
                    id=a.id,
                    title=a.title,
                    area=a.area,
                    status=a.status,
                    due_date=a.due_date,
                    owner="practitioner" if a.owner_practitioner_id else "family",
                    owner_id=a.owner_practitioner_id,
                    owner_name=sar.practitioners[a.owner_practitioner_id][0].name
                    if a.owner_practitioner_id
                    else None,
                )
                for a in actions
            ]
            out.append(care_plan(tac, rows, reviews))
    return out


def _versions(sar: SubjectAccess) -> list[dict[str, Any]]:
    """The record's versions (when kept) as Basic resources carrying each snapshot."""
    return [
        {
            "resourceType": "Basic",
            "id": f"version-{i}",
            "code": {"coding": [{"system": S.FLAG_CODE, "code": "child-version"}]},
            "subject": {"reference": f"Patient/{sar.child.id}"},
            "extension": [
                {"url": f"{S.BASE}/StructureDefinition/snapshot", "valueString": json.dumps(v, default=str)}
            ],
        }
        for i, v in enumerate(sar.versions, start=1)
    ]


def bundle(sar: SubjectAccess, *, authority: str, now: datetime) -> dict[str, Any]:
    """Everything held about the child as a FHIR Bundle (type collection)."""
    child_id = sar.child.id
    resources: list[dict[str, Any]] = [_patient(sar)]
    resources += [related_person(RelatedPersonRead.model_validate(p), child_id) for p in sar.related_people]
    resources += _episodes(sar) + _cafs(sar) + _lead_history(sar) + _tacs(sar)
    resources += [
        consent(
            ConsentRead.of(c),
            child_id,
        )
        for c in sar.consents
    ]
    resources += [audit_event(e) for e in sar.accesses]
    resources += _versions(sar)
    return {
        "resourceType": "Bundle",
        "id": uuid.uuid4().hex,
        "meta": {
            "profile": [SAR_PROFILE],
            "lastUpdated": now.isoformat(),
            "tag": [{"system": f"{S.BASE}/Id/authority", "code": "authority", "display": authority}],
        },
        "identifier": {"system": f"{S.BASE}/Id/subject-access", "value": f"{child_id}-{now:%Y%m%dT%H%M%SZ}"},
        "type": "collection",
        "timestamp": now.isoformat(),
        "entry": [
            {"fullUrl": f"{S.BASE}/fhir/{r['resourceType']}/{r['id']}", "resource": r} for r in resources
        ],
    }
