"""Answering a subject access request: one builder for the `childindex sar export` command and the
`/api/v1/children/{id}/subject-access` route. Everything held about a child (the domain gathers it,
audited) as a FHIR Bundle and as a readable HTML document with the authority's name."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlmodel import Session

from directory.models import Actor
from directory.service import subject_access as gathering
from interop import subject_access as fhir

_TEMPLATES = Environment(
    loader=FileSystemLoader(str(Path(__file__).parent / "web" / "templates")),
    autoescape=select_autoescape(default=True),
)


@dataclass(frozen=True)
class Export:
    """A subject access export: the FHIR Bundle (JSON) and the readable document (HTML)."""

    child_id: uuid.UUID
    bundle: dict[str, Any]
    html: str


def build(session: Session, *, actor: Actor, child_id: uuid.UUID, authority: str, now: datetime) -> Export:
    """Everything held about a child, as a Bundle and a document (audited by the domain's gather)."""
    sar = gathering.gather(session, actor=actor, child_id=child_id)
    bundle = fhir.bundle(sar, authority=authority, now=now)
    html = _TEMPLATES.get_template("subject_access.html").render(
        sar=sar, authority=authority, now=now, people=sar.practitioners
    )
    return Export(child_id=sar.child.id, bundle=bundle, html=html)


def write(export: Export, out: Path) -> list[Path]:
    """Write the export into a folder: subject-access-<id>.json and .html."""
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"subject-access-{export.child_id}"
    json_path, html_path = stem.with_suffix(".json"), stem.with_suffix(".html")
    json_path.write_text(json.dumps(export.bundle, indent=2, default=str), encoding="utf-8")
    html_path.write_text(export.html, encoding="utf-8")
    return [json_path, html_path]
