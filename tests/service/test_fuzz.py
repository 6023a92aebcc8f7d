"""Property test: schemathesis drives every operation of the OpenAPI document against the app
in-process (real models, a real SQLite series store), with generated valid and invalid input
and a fixed seed. No answer may be a 5xx or break the documented schema.

A longer run: FUZZ_EXAMPLES=500 pytest tests/service/test_fuzz.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from service.main import create_app
from tests.service.conftest import ADMIN, Store, with_series_store

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))


@pytest.fixture(scope="module")
def fuzz_app(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    application = create_app(store.settings(max_body_bytes=200_000))
    db = tmp_path_factory.mktemp("fuzz") / "series.db"
    with with_series_store(application, f"sqlite:///{db}"):
        yield application


def test_no_server_errors_and_no_schema_violations(fuzz_app: FastAPI) -> None:
    api = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 11
    failures: list[str] = []
    for operation in operations:
        excluded = [positive_data_acceptance]

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,  # the same cases every run
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            # Every check but "schema-valid data is accepted": ISO timestamps, the model's
            # look-back and frequency are rules JSON Schema cannot state, so valid-looking
            # requests are rightly refused with 422.
            case.call_and_validate(headers=ADMIN, excluded_checks=excluded)  # noqa: B023

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # every operation runs; report all
            failures.append(f"{operation.label}: {exc}"[:2000])
    assert not failures, "\n\n".join(failures)
