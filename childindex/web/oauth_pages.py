"""The authorization server's sign-in and refusal pages in the pages' GOV.UK layout (auth.pages port)."""

from __future__ import annotations

from typing import Any

from auth.pages import SignInForm
from childindex.web.deps import templates
from childindex.web.session import CSP


class GovukSignInPages:
    """Renders /oauth/authorize and its refusals with the same layout, assets and CSP as every page."""

    csp = CSP

    def __init__(self, authority: str) -> None:
        self.authority = authority

    def _render(self, name: str, **context: Any) -> str:
        base: dict[str, Any] = {
            "authority": self.authority,
            "nav": [],
            "session": None,
            "actor": None,
            "flash": None,
        }
        return templates.env.get_template(name).render(**base, **context)

    def sign_in(self, form: SignInForm) -> str:
        """The sign-in page: error summary, labelled fields with autocomplete, the upstream link."""
        field_errors = {k: v for k, v in form.errors.items() if k != "form"}
        return self._render(
            "signin.html",
            path="/oauth/authorize",
            form=form,
            errors=form.errors,
            field_errors=field_errors,
            values={"username": form.username},
        )

    def message(self, title: str, message: str) -> str:
        """Why sign-in cannot go on, with a way back to the start."""
        return self._render("message.html", path="/oauth/authorize", title=title, message=message, again=True)
