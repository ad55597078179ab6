"""The one export pipeline (glow.core.exports): members, the stored Upload and its audit together."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest

from glow.core.exports import csv_member, export_body, export_store, json_member, jsonl_member
from glow.core.models import Upload, UploadKind

pytestmark = pytest.mark.django_db


def _write(archive) -> int:
    rows = csv_member(archive, "rows.csv", ["id", "name"], iter([[1, "Ada"], [2, "Grace, B."]]))
    jsonl_member(archive, "rows.jsonl", ({"id": n} for n in (1, 2)))
    json_member(archive, "manifest.json", {"rows": rows})
    return rows


def test_an_export_is_stored_with_its_members_and_audited(org_admin):
    audited = []
    upload = export_store(actor=org_admin, file_name="x.zip", write=_write, audit=audited.append)
    assert audited == [upload]
    assert (upload.kind, upload.row_count, upload.mime_type) == (
        UploadKind.EXPORT,
        2,
        "application/zip",
    )
    with upload.file.open("rb") as handle, zipfile.ZipFile(handle) as archive:
        table = list(csv.reader(io.StringIO(archive.read("rows.csv").decode())))
        lines = archive.read("rows.jsonl").decode().splitlines()
        manifest = json.loads(archive.read("manifest.json"))
    assert table == [["id", "name"], ["1", "Ada"], ["2", "Grace, B."]]
    assert [json.loads(line) for line in lines] == [{"id": 1}, {"id": 2}]
    assert manifest == {"rows": 2}
    assert export_body(upload, message_count=3) == {
        "file_id": upload.pk,
        "upload_id": upload.pk,
        "file_name": "x.zip",
        "row_count": 2,
        "message_count": 3,
    }


def test_a_failed_audit_stores_no_export(org_admin):
    def refuse(upload):
        raise RuntimeError("audit down")

    with pytest.raises(RuntimeError):
        export_store(actor=org_admin, file_name="x.zip", write=_write, audit=refuse)
    assert not Upload.objects.filter(kind=UploadKind.EXPORT).exists()
