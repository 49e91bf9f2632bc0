"""A bounded fuzz pass over the OpenAPI schema (schemathesis): valid and invalid requests to every operation,
and whatever is sent, no 5xx and no traceback. It runs against a server and home of its own, since it also
adds and deletes pins."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.serve.conftest import start

EXAMPLES = 20  # per operation and mode: bounded, so the suite stays fast


@pytest.fixture(scope="module")
def fuzzed(indexed_home: Path, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("fuzzed") / "home"
    shutil.copytree(indexed_home, home)
    yield from start(home)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_gets_a_server_error(fuzzed, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed_operations = 0
    products = {"/v1/flashlight", "/v1/lens", "/v1/search/objects", "/v1/search/text", "/v1/pins/{pin_id}/related"}
    assert products <= {operation.path for operation in operations}  # every product's routes are fuzzed too
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            response = case.call_and_validate(base_url=fuzzed.url, checks=[not_a_server_error])
            assert b"Traceback" not in response.content and b'File "' not in response.content

        try:
            fuzz()
        except Unsatisfiable:  # no parameter or body to make invalid (negative mode): nothing to send
            assert mode is GenerationMode.NEGATIVE and not operation.path_parameters and not operation.body
            continue
        fuzzed_operations += 1
    assert fuzzed_operations >= 12
