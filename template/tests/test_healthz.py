"""Liveness: ``GET /healthz`` answers 200 while the process serves, and bad input is a 4xx."""

import httpx


def test_healthz_answers_ok(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_ignores_unknown_query_parameters(client: httpx.Client) -> None:
    response = client.get("/healthz", params={"x": "\u2603" * 100, "profile": "1"})
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_bad_requests_get_a_4xx_not_a_500(client: httpx.Client) -> None:
    assert client.post("/healthz", content=b"\xff\x00garbage").status_code == 405
    assert client.get("/no/such/path").status_code == 404
    assert client.get("/%ff%fe%00").status_code == 404
    assert client.delete("/metrics").status_code == 405
    assert client.put("/readyz", json={"a": 1}).status_code == 405
