"""Session middleware with real frameworks against a real running store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from flask import Flask, jsonify, request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from hakeeper.sessions.middleware import SessionMiddleware, WSGISessionMiddleware, wsgi_session
from tests.sessions.cluster import StoreCluster

pytestmark = pytest.mark.slow

SECRET = b"0123456789abcdef0123456789abcdef"


def cart_app(store: str, max_age: int = 1800) -> Starlette:
    async def add(request: Request) -> JSONResponse:
        cart = request.session.setdefault("cart", [])
        cart.append(request.path_params["item"])
        request.session["cart"] = cart
        return JSONResponse(cart)

    async def show(request: Request) -> JSONResponse:
        return JSONResponse(request.session.get("cart", []))

    async def logout(request: Request) -> JSONResponse:
        request.session.clear()
        return JSONResponse([])

    app = Starlette(
        routes=[
            Route("/add/{item}", add, methods=["POST"]),
            Route("/cart", show),
            Route("/logout", logout, methods=["POST"]),
        ]
    )
    app.add_middleware(SessionMiddleware, store=store, secret=SECRET, max_age=max_age)
    return app


def flask_app(store: str) -> Flask:
    app = Flask(__name__)

    @app.post("/add/<item>")
    def add(item: str) -> Any:
        session = wsgi_session(request.environ)
        session["cart"] = [*session.get("cart", []), item]
        return jsonify(session["cart"])

    @app.get("/cart")
    def show() -> Any:
        return jsonify(wsgi_session(request.environ).get("cart", []))

    app.wsgi_app = WSGISessionMiddleware(app.wsgi_app, store=store, secret=SECRET)  # type: ignore[method-assign]
    return app


def test_asgi_session_persists_across_requests(store_address: str) -> None:
    with TestClient(cart_app(store_address)) as client:
        client.post("/add/apple")
        assert client.post("/add/pear").json() == ["apple", "pear"]
        assert client.get("/cart").json() == ["apple", "pear"]


def test_asgi_cookie_is_signed_and_sliding(store_address: str) -> None:
    with TestClient(cart_app(store_address, max_age=600)) as client:
        response = client.post("/add/apple")
        set_cookie = response.headers["set-cookie"]
        assert "Max-Age=600" in set_cookie
        assert "HttpOnly" in set_cookie
        again = client.get("/cart")
        assert "Max-Age=600" in again.headers["set-cookie"]


def test_asgi_tampered_cookie_starts_an_empty_session(store_address: str) -> None:
    with TestClient(cart_app(store_address)) as client:
        client.post("/add/apple")
        value = client.cookies["hksession"]
        session_id, _, signature = value.partition(".")
        client.cookies.set("hksession", f"{session_id}x.{signature}")
        assert client.get("/cart").json() == []


def test_asgi_emptied_session_is_deleted_and_cookie_expired(store_address: str) -> None:
    with TestClient(cart_app(store_address)) as client:
        client.post("/add/apple")
        response = client.post("/logout")
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert client.get("/cart").json() == []


def test_wsgi_flask_session_persists_across_requests(store_address: str) -> None:
    client = flask_app(store_address).test_client()
    client.post("/add/apple")
    assert client.post("/add/pear").get_json() == ["apple", "pear"]
    assert client.get("/cart").get_json() == ["apple", "pear"]


def test_cart_survives_failover_of_the_node_that_served_it(store_cluster: StoreCluster) -> None:
    asyncio.run(store_cluster.promote_first())
    primary, _, third = store_cluster.addresses
    with TestClient(cart_app(primary)) as client:
        client.post("/add/apple")
        client.post("/add/pear")
        cookie = client.cookies["hksession"]
    store_cluster.kill(primary)
    asyncio.run(store_cluster.fail_over(primary))
    with TestClient(cart_app(third)) as client:
        client.cookies.set("hksession", cookie)
        assert client.get("/cart").json() == ["apple", "pear"]
        assert client.post("/add/plum").json() == ["apple", "pear", "plum"]
