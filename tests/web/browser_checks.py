"""What helper B's browser tests check on every page they visit (issue #20): axe-core with no violation of
ANY impact, a screenshot in test-artifacts/, and no sideways scrolling at 320 px (WCAG 1.4.10)."""

from __future__ import annotations

from tests.web.test_browser import ARTIFACTS, AXE, AXE_TAGS


def look(page: object, name: str) -> None:
    """axe (any impact), a screenshot, then the page at 320 px wide must not scroll sideways."""
    page.add_script_tag(path=str(AXE))  # type: ignore[attr-defined]
    result = page.evaluate(  # type: ignore[attr-defined]
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
    )
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
    assert not bad, f"{name}: {bad}"
    size = page.viewport_size  # type: ignore[attr-defined]
    page.set_viewport_size({"width": 320, "height": 640})  # type: ignore[attr-defined]
    try:
        width = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
        page.screenshot(path=str(ARTIFACTS / f"{name}-320.png"), full_page=True)  # type: ignore[attr-defined]
        assert width <= 320, f"{name}: {width} px wide at a 320 px viewport"
    finally:
        if size:
            page.set_viewport_size(size)  # type: ignore[attr-defined]
