"""The OpenAPI document tells the truth: the error body on every error response, auth on every
protected route, examples the served model accepts, and /docs without a CDN."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.service.conftest import READ

PROBES = ("/v1/health", "/v1/ready")


def test_every_error_response_documents_the_error_body(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert set(schema["components"]["schemas"]["ErrorBody"]["properties"]) == {"detail", "field"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if path not in PROBES:
                assert {"401", "403"} <= set(responses), (method, path)
            for code, response in responses.items():
                if int(code) < 400 or (path, code) == ("/v1/ready", "503"):
                    continue
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorBody", (method, path, code)


def test_the_examples_are_accepted_by_the_served_model(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/models/{name}/forecast", "/v1/models/{name}/forecast/batch"):
        operation = paths[path]["post"]
        (name,) = [p["example"] for p in operation["parameters"] if p["name"] == "name"]
        example = operation["requestBody"]["content"]["application/json"]["example"]
        response = client.post(path.replace("{name}", name), headers=READ, json=example)
        assert response.status_code == 200, (path, response.text)


def test_docs_load_their_assets_locally_without_a_key(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "/docs-assets/swagger-ui-bundle.js" in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert client.get(f"/docs-assets/{asset}").status_code == 200
