"""The OpenAPI schema carries an ETag and answers 304 to a matching If-None-Match."""

import pytest

pytestmark = pytest.mark.django_db

SCHEMA = "/api/v5/schema?format=json"


def test_the_schema_answers_304_to_its_own_etag(client):
    first = client.get(SCHEMA)
    assert first.status_code == 200
    etag = first["ETag"]
    assert etag.startswith('"') and len(etag) > 10
    again = client.get(SCHEMA, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == etag
    stale = client.get(SCHEMA, HTTP_IF_NONE_MATCH='"an-older-deploy"')
    assert stale.status_code == 200 and stale["ETag"] == etag


def test_each_representation_has_its_own_etag(client):
    as_json = client.get(SCHEMA)["ETag"]
    as_yaml = client.get("/api/v5/schema")
    assert as_yaml.status_code == 200 and as_yaml["ETag"] != as_json
    # The JSON's tag does not validate the YAML.
    assert client.get("/api/v5/schema", HTTP_IF_NONE_MATCH=as_json).status_code == 200
