"""Account endpoints: thin handlers that parse, call a service and serialise."""

from __future__ import annotations

from aiohttp import web

from smeline import keys
from smeline.api import ApiRoutes, json_ok, no_content, parse_body, parse_query, path_int
from smeline.auth.middleware import CSRF_COOKIE, SESSION_COOKIE, principal_of
from smeline.auth.models import User
from smeline.auth.permissions import Permission, Principal
from smeline.auth.schemas import (
    LoginIn,
    LoginOut,
    PasswordChangeIn,
    UserCreatedOut,
    UserCreateIn,
    UserListOut,
    UserListQuery,
    UserOut,
    UserUpdateIn,
)
from smeline.auth.services import AuthService, UserService
from smeline.db import utcnow
from smeline.masking import mask_phone

routes = ApiRoutes(tag="accounts")


def _auth(request: web.Request) -> AuthService:
    return request.app[keys.AUTH]


def _users(request: web.Request) -> UserService:
    return request.app[keys.USERS]


def user_out(user: User, viewer: Principal | None) -> UserOut:
    out = UserOut.model_validate(user)
    if (
        viewer is not None
        and viewer.user_id != user.id
        and not viewer.can(Permission.PHONE_NUMBERS)
    ):
        out.phone = mask_phone(out.phone)
    return out


def _client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


@routes.post(
    "/api/auth/login",
    summary="Log in; returns a bearer token and sets the session cookie",
    body=LoginIn,
    response=LoginOut,
    public=True,
    errors=(401, 429),
)
async def login(request: web.Request) -> web.StreamResponse:
    data = await parse_body(request, LoginIn)
    result = await _auth(request).login(
        data.username,
        data.password,
        ip=_client_ip(request),
        user_agent=request.headers.get("User-Agent"),
        now=utcnow(),
    )
    out = LoginOut(
        user=user_out(result.user, None),
        token=result.token,
        csrf_token=result.csrf_token,
        expires_at=result.expires_at,
    )
    response = json_ok(out)
    public_url = request.app[keys.SETTINGS].public_url or ""
    secure = public_url.startswith("https") or request.secure
    max_age = int((result.expires_at - utcnow()).total_seconds())
    response.set_cookie(
        SESSION_COOKIE,
        result.token,
        httponly=True,
        samesite="Strict",
        secure=secure,
        max_age=max_age,
        path="/",
    )
    # Readable by our own scripts, which echo it in the X-CSRF-Token header.
    response.set_cookie(
        CSRF_COOKIE, result.csrf_token, samesite="Strict", secure=secure, max_age=max_age, path="/"
    )
    return response


@routes.post("/api/auth/logout", summary="End this session", status=204)
async def logout(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    await _auth(request).logout(principal.session_id)
    response = no_content()
    response.del_cookie(SESSION_COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")
    return response


@routes.get("/api/auth/me", summary="Who am I", response=UserOut)
async def me(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    user = await _users(request).get(principal.user_id)
    return json_ok(user_out(user, principal))


@routes.post(
    "/api/auth/password",
    summary="Change my password (required after a one-time password)",
    body=PasswordChangeIn,
    status=204,
    errors=(401, 422),
)
async def change_password(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    data = await parse_body(request, PasswordChangeIn)
    await _auth(request).change_password(
        principal, data.current_password, data.new_password, now=utcnow()
    )
    return no_content()


@routes.get("/api/users", summary="List staff accounts", query=UserListQuery, response=UserListOut)
async def list_users(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    principal.require(Permission.USERS_READ)
    query = parse_query(request, UserListQuery)
    users = await _users(request).list(query)
    return json_ok(UserListOut(items=[user_out(u, principal) for u in users]))


@routes.post(
    "/api/users",
    summary="Create a staff account; returns its one-time password",
    body=UserCreateIn,
    response=UserCreatedOut,
    status=201,
    errors=(409, 422),
)
async def create_user(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    principal.require(Permission.USERS_MANAGE)
    data = await parse_body(request, UserCreateIn)
    user, password = await _users(request).create(data, now=utcnow())
    return json_ok(
        UserCreatedOut(user=user_out(user, principal), one_time_password=password), status=201
    )


@routes.get("/api/users/{user_id}", summary="One staff account", response=UserOut, errors=(404,))
async def get_user(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    principal.require(Permission.USERS_READ)
    user = await _users(request).get(path_int(request, "user_id"))
    return json_ok(user_out(user, principal))


@routes.patch(
    "/api/users/{user_id}",
    summary="Change a staff account (role, placement, contact, active)",
    body=UserUpdateIn,
    response=UserOut,
    errors=(404, 422),
)
async def update_user(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    principal.require(Permission.USERS_MANAGE)
    data = await parse_body(request, UserUpdateIn)
    user = await _users(request).update(path_int(request, "user_id"), data)
    return json_ok(user_out(user, principal))


@routes.post(
    "/api/users/{user_id}/reset-password",
    summary="Issue a new one-time password",
    response=UserCreatedOut,
    errors=(404,),
)
async def reset_password(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    principal.require(Permission.USERS_MANAGE)
    user, password = await _users(request).reset_password(path_int(request, "user_id"))
    return json_ok(UserCreatedOut(user=user_out(user, principal), one_time_password=password))
