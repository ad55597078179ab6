"""Uploads and downloads: limits refuse and store nothing, tenancy answers 404, ranges answer 206."""

from __future__ import annotations

import io
import wave

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from glow.core.media_ops import KINDS
from glow.core.models import Upload

pytestmark = pytest.mark.django_db


def wav_bytes(seconds: float = 0.2) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(range(256)) * int(8000 * seconds * 2 / 256))
    return buffer.getvalue()


def upload(
    client, data: bytes, name="take.wav", content_type="audio/wav", op="persona/audio_upload"
):
    file = SimpleUploadedFile(name, data, content_type=content_type)
    return client.post(f"/api/v5/artifacts/{op}", {"file": file}, format="multipart")


def test_audio_upload_stores_bytes_and_downloads_them_back(admin_client):
    data = wav_bytes()
    response = upload(admin_client, data)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["file_size"] == len(data)
    assert body["mime_type"] == "audio/wav"
    assert body["upload_id"] == body["file_id"]

    for path in ("persona/audio/download", "persona/audio_download", "persona/file/download"):
        download = admin_client.op(path, {"upload_id": body["upload_id"]})
        assert download.status_code == 200, path
        assert b"".join(download.streaming_content) == data
        assert download["Content-Type"] == "audio/wav"
        assert download["Content-Length"] == str(len(data))


def test_range_request_answers_206_with_exactly_those_bytes(admin_client):
    data = wav_bytes()
    upload_id = upload(admin_client, data).json()["upload_id"]
    response = admin_client.get(f"/api/v5/media/{upload_id}", HTTP_RANGE="bytes=10-19")
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == data[10:20]
    assert response["Content-Range"] == f"bytes 10-19/{len(data)}"

    tail = admin_client.op(
        "persona/audio_download", {"upload_id": upload_id}, HTTP_RANGE="bytes=-4"
    )
    assert tail.status_code == 206
    assert b"".join(tail.streaming_content) == data[-4:]

    beyond = admin_client.get(f"/api/v5/media/{upload_id}", HTTP_RANGE=f"bytes={len(data) + 5}-")
    assert beyond.status_code == 416


def test_oversized_upload_answers_413_and_stores_nothing(admin_client, settings):
    settings.GLOW_UPLOAD_MAX_BYTES = 1000
    response = upload(admin_client, wav_bytes(1.0))
    assert response.status_code == 413
    assert response.json()["code"] == "file_too_large"
    assert Upload.objects.count() == 0


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("notes.exe", b"MZ\x90\x00binary", "application/x-msdownload"),
        ("fake.wav", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "audio/wav"),
        ("picture.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png"),
        # Served back as application/json, it would not parse.
        ("data.json", b"\x8a\x00 not json", "application/json"),
        ("data.json", b'{"a": 1', "application/json"),
    ],
)
def test_wrong_type_answers_400_and_stores_nothing(admin_client, name, data, content_type):
    response = upload(admin_client, data, name=name, content_type=content_type)
    assert response.status_code == 400
    assert response.json()["code"] == "unsupported_media_type"
    assert "file" in response.json()["fields"]
    assert Upload.objects.count() == 0


def test_a_json_upload_comes_back_byte_for_byte_as_json(admin_client):
    data = '{"w\u00f6rter": [1, 2.5, null]}\n'.encode()
    response = upload(
        admin_client, data, name="data.json", content_type="application/json", op="persona/upload"
    )
    assert response.status_code == 201, response.json()
    served = admin_client.get(f"/api/v5/media/{response.json()['upload_id']}")
    assert b"".join(served.streaming_content) == data
    assert served["Content-Type"] == "application/json"


def test_missing_file_answers_400_naming_the_field(admin_client):
    response = admin_client.post("/api/v5/artifacts/persona/audio_upload", {}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()["fields"]


def test_another_organizations_upload_is_404_on_every_download_op(admin_client, outsider_client):
    upload_id = upload(admin_client, wav_bytes()).json()["upload_id"]
    for kind in KINDS:
        for verb in ("download", "preview"):
            for path in (f"persona/{kind}/{verb}", f"persona/{kind}_{verb}"):
                response = outsider_client.op(path, {"upload_id": upload_id})
                assert response.status_code == 404, path
    assert outsider_client.get(f"/api/v5/media/{upload_id}").status_code == 404


def test_an_upload_without_a_row_is_private_to_its_owner(admin_client, learner, make_client):
    upload_id = upload(admin_client, wav_bytes()).json()["upload_id"]
    colleague = make_client(learner)
    assert colleague.op("persona/file/download", {"upload_id": upload_id}).status_code == 404


def test_kind_specific_download_refuses_another_kind(admin_client):
    upload_id = upload(admin_client, wav_bytes()).json()["upload_id"]
    response = admin_client.op("persona/image_download", {"upload_id": upload_id})
    assert response.status_code == 400
    assert response.json()["code"] == "wrong_media_kind"
