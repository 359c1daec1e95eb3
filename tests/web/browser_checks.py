"""What helper B's browser tests check on every page they visit (issue #20): axe-core with no violation of
ANY impact, a screenshot in test-artifacts/, and no sideways scrolling at 320 px (WCAG 1.4.10)."""

from __future__ import annotations

from tests.web.test_browser import check_page


def look(page: object, name: str) -> None:
    """axe (any impact), a screenshot, then the page at 320 px wide must not scroll sideways."""
    check_page(page, name, narrow=True)
