"""Sign in (authorization code + PKCE against our own /oauth server) and sign out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import urlencode, urlparse

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from auth.registry import ensure_public_client
from childindex.settings import current_settings
from childindex.web.comeback import safe_return
from childindex.web.deps import check_csrf, render, web_session
from childindex.web.session import Sealer, TokenClient, session_from_tokens
from directory.http.deps import actor_of
from directory.models import Role

router = APIRouter(include_in_schema=False)
WEB_SCOPES = ("directory.search", "directory.write", "grants.admin", "audit.read")
FLOW_SECONDS = 600


def _web(request: Request) -> tuple[Sealer, TokenClient, str]:
    web = request.app.state.web
    return web.flow_sealer, web.tokens, web.redirect_uri


def _home_for(role: Role) -> str:
    if role == Role.AUDITOR:
        return "/audit"
    if role == Role.LOCAL_DELIVERY_TEAM:
        return "/worklist"
    return "/search"


@router.get("/", name="web_home", response_class=HTMLResponse)
def web_home(request: Request) -> Response:
    """The start page: sign in, or go on to the page this person's role starts from."""
    if web_session(request) is not None:
        actor = actor_of(request)  # a lapsed grant is refused here, with its reason
        return RedirectResponse(_home_for(actor.role), status_code=303)
    reason = getattr(request.state, "web_signed_out_reason", None)
    upstream = bool(request.app.state.auth.cfg.upstream_issuer)
    return render(request, "start.html", reason=reason, upstream=upstream)


@router.get("/signin/start", name="web_signin_start")
def web_signin_start(request: Request) -> Response:
    """Begin sign-in: register the pages' client if needed, then go to the authorization endpoint."""
    sealer, _, redirect_uri = _web(request)
    issuer = urlparse(redirect_uri)
    if request.url.netloc != issuer.netloc:
        # The sign-in cookie must be set on the host the authorization server returns to.
        return RedirectResponse(f"{issuer.scheme}://{issuer.netloc}/signin/start", status_code=303)
    settings = current_settings(request)
    with Session(request.app.state.engine) as session:
        ensure_public_client(
            session,
            client_id=settings.web_client_id,
            name=f"childindex pages ({settings.authority_name})",
            redirect_uri=redirect_uri,
            scopes=WEB_SCOPES,
        )
        session.commit()
    verifier = secrets.token_urlsafe(48)
    flow = {"state": secrets.token_urlsafe(24), "verifier": verifier, "exp": time.time() + FLOW_SECONDS}
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    query = {
        "response_type": "code",
        "client_id": settings.web_client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(WEB_SCOPES),
        "state": flow["state"],
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if request.query_params.get("idp") == "upstream":
        query["idp"] = "upstream"
    response = RedirectResponse(f"/oauth/authorize?{urlencode(query)}", status_code=303)
    cookies = request.app.state.web.cookies
    response.headers.append(
        "set-cookie",
        cookies.header(
            cookies.flow_name, sealer.seal(json.dumps(flow).encode()), max_age=FLOW_SECONDS
        ).decode(),
    )
    return response


def _problem_page(request: Request, title: str, message: str, status_code: int) -> Response:
    return render(request, "message.html", title=title, message=message, status_code=status_code, again=True)


@router.get("/signin/callback", name="web_signin_callback")
async def web_signin_callback(request: Request) -> Response:
    """Where the authorization server returns: check state and issuer, swap the code for tokens."""
    sealer, tokens, redirect_uri = _web(request)
    cookies = request.app.state.web.cookies
    raw = sealer.open(request.cookies.get(cookies.flow_name))
    flow = json.loads(raw) if raw else None
    params = request.query_params
    if (
        flow is None
        or flow.get("exp", 0) < time.time()
        or not hmac.compare_digest(str(flow.get("state", "")).encode(), params.get("state", "").encode())
    ):
        return _problem_page(
            request,
            "Sign-in expired",
            "Your sign-in took too long or was started elsewhere. Start again.",
            400,
        )
    if params.get("iss") and params.get("iss") != request.app.state.auth.cfg.issuer:
        return _problem_page(
            request, "Sign-in refused", "The sign-in answer came from an unexpected server.", 400
        )
    if params.get("error"):
        return _problem_page(
            request,
            "Sign-in was not completed",
            params.get("error_description") or "The sign-in was refused.",
            403,
        )
    answer = await tokens.exchange(
        request.app, code=params.get("code", ""), verifier=flow["verifier"], redirect_uri=redirect_uri
    )
    if answer.status_code != 200:
        detail = answer.json().get("error_description", "The sign-in could not be completed.")
        return _problem_page(request, "You cannot use the directory yet", detail, 403)
    request.state.web_session = signed_in = session_from_tokens(answer.json())
    comeback = request.app.state.web.comeback
    held = comeback.read(request.cookies)
    # Back to the page asked for (a relative path on this site, checked again here), and only for the
    # person whose session ended there (or who was not signed in at all when they asked).
    same = held.get("subject") in (None, signed_in.subject)
    back = safe_return(held.get("back")) if same else None
    response = RedirectResponse(back or "/", status_code=303)
    response.headers.append("set-cookie", cookies.header(cookies.flow_name, "", max_age=0).decode())
    if same and held.get("form"):  # the half-filled form waits for its page (childindex/web/deps.py)
        keep = {"subject": held.get("subject"), "form": held["form"]}
        response.headers.append("set-cookie", comeback.header(keep))
    elif held:
        response.headers.append("set-cookie", comeback.header(None))
    return response


@router.post("/signout", name="web_signout")
async def web_signout(request: Request) -> Response:
    """Sign out: revoke the tokens at the authorization server and forget the session."""
    form = dict(await request.form())
    session = web_session(request)
    if session is not None and check_csrf(request, form):
        _, tokens, _ = _web(request)
        if session.refresh_token:
            await tokens.revoke(request.app, session.refresh_token)
        await tokens.revoke(request.app, session.access_token)
        request.state.web_session = None
    elif session is not None:
        return render(
            request,
            "message.html",
            title="Sign out again",
            message="That sign-out form had expired. Use the sign-out button once more.",
            status_code=400,
        )
    return render(request, "signed_out.html", why="self")


@router.get("/accessibility", name="web_accessibility", response_class=HTMLResponse)
def web_accessibility(request: Request) -> Response:
    """The accessibility statement."""
    return render(request, "accessibility.html")
