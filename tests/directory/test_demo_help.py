"""What `childindex demo` prints: a sign-in address that works and children to try, each showing what
a newcomer should see (an open CAF, a shield, services involved without a CAF, nobody recorded)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from childindex.cli import demo_help
from childindex.demo.seed import seed
from tests.directory.seed_fixtures import ACTOR, sqlite_engine


def test_the_demo_names_children_to_try_and_the_page_to_sign_in_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sqlite_engine(tmp_path)
    seed(engine, children=600, seed=2024, actor=ACTOR, batch=300)
    lines = demo_help.children_to_try(engine)
    text = "\n".join(lines)
    assert len(lines) in (3, 4), text  # (the seed may give every child a service: then no fourth)
    assert "a CAF in progress, Lead Professional" in lines[0]
    assert "shielded" in lines[1]
    assert "no CAF" in lines[2] and all("no service recorded" in line for line in lines[3:])
    assert all(", born " in line for line in lines)
    printed = Console(record=True, width=200)
    monkeypatch.setattr(demo_help, "console", printed)
    demo_help.print_demo_help(engine, "127.0.0.1", 8000)
    out = printed.export_text()
    assert 'open http://127.0.0.1:8000/ and choose "Sign in"' in out
    assert "/oauth/authorize" not in out
    assert lines[0].strip() in out
