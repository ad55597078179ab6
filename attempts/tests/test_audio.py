"""Spoken chats: audio sessions, frames heard as messages and answered aloud, media access, export."""

from __future__ import annotations

import io
import json
import wave
import zipfile
from array import array

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from attempts import exports, messaging
from attempts.models import AudioSession, AudioSessionStatus, Message, Role
from glow.ai.speech import LocalSpeechProvider, Pcm, write_wav
from glow.catalog.models import Modality
from glow.catalog.tests.factories import HomeFactory, ScenarioFactory, SimulationFactory
from glow.core import media
from glow.core.media_ops import KINDS
from glow.core.models import Upload, UploadKind
from system.models import Event, Run, RunStatus
from system.tests.factories import sign_in

pytestmark = pytest.mark.django_db

SENTENCE = "please explain how recursion works"
DOWNLOAD_OPS = [
    f"attempt/{kind}{sep}{verb}"
    for kind in KINDS
    for verb in ("download", "preview")
    for sep in ("/", "_")
]


@pytest.fixture(scope="module")
def spoken() -> bytes:
    """The sentence as a WAV, from the same offline voice the server answers with."""
    return LocalSpeechProvider().synthesize(SENTENCE).audio


def silence(seconds: float = 0.5) -> bytes:
    return write_wav(Pcm(array("h", [0] * int(16_000 * seconds)), 16_000))


def ok(response, status=200):
    assert response.status_code == status, response.content
    return response.json()


def refused(response, status, code=None):
    assert response.status_code == status, response.content
    if code:
        assert response.json()["code"] == code, response.json()
    return response.json()


@pytest.fixture
def audio_home(world):
    """A home entry whose simulation's first scenario is spoken."""
    scenario = ScenarioFactory(
        organization=world.organization, department=world.department, modality=Modality.AUDIO
    )
    text = ScenarioFactory(organization=world.organization, department=world.department)
    simulation = SimulationFactory(
        organization=world.organization,
        department=world.department,
        rubric=world.rubric,
        scenarios=[scenario, text],
    )
    return HomeFactory(
        organization=world.organization,
        department=world.department,
        simulation=simulation,
        cohort=world.cohort,
    )


@pytest.fixture
def talker(world, make_client):
    return make_client(world.learner)


def begin(client, home) -> dict:
    return ok(client.op("attempt/start", {"home_id": str(home.pk)}))


def upload(client, data: bytes, *, attempt_id=None, name="frame.wav", mime="audio/wav") -> str:
    body = {"file": SimpleUploadedFile(name, data, content_type=mime)}
    if attempt_id:
        body["attempt_id"] = attempt_id
    response = client.post("/api/v5/artifacts/attempt/audio_upload", body, format="multipart")
    return ok(response, 201)["upload_id"]


def frame(client, chat_id, upload_id):
    return client.op("attempt/audio/frame", {"chat_id": chat_id, "upload_id": upload_id})


def event_types(run_id) -> list[str]:
    return list(
        Event.objects.filter(run_id=run_id).order_by("seq").values_list("event_type", flat=True)
    )


def test_a_spoken_frame_becomes_the_learners_message_and_a_spoken_reply(talker, audio_home, spoken):
    started = begin(talker, audio_home)
    chat_id = started["chat_ids"][0]
    bundle = ok(talker.op("attempt/get", {"attempt_id": started["attempt_id"]}))
    assert [chat["audio_mode"] for chat in bundle["chats"]] == [True, False]

    session = ok(talker.op("attempt/audio/start", {"chat_id": chat_id}))
    assert session["chat_id"] == chat_id and session["attempt_id"] == started["attempt_id"]
    assert session["group_id"] == started["group_id"]
    again = ok(talker.op("attempt/audio/start", {"chat_id": chat_id}))
    assert again["run_id"] == session["run_id"]  # idempotent: the open session

    recording = upload(talker, spoken, attempt_id=started["attempt_id"])
    pushed = ok(frame(talker, chat_id, recording))
    assert pushed == {
        "accepted": True,
        "audio_session_id": session["audio_session_id"],
        "frames_received": 1,
    }

    messages = ok(talker.op("attempt/get", {"attempt_id": started["attempt_id"]}))["messages"]
    said, reply = messages
    assert said["role"] == "user" and said["audio_upload_id"] == recording
    assert set(said["content"].split()) & set(SENTENCE.split())
    assert reply["role"] == "assistant" and reply["content"].strip()
    answer = Upload.objects.get(pk=reply["audio_upload_id"])
    assert (answer.family, str(answer.artifact_id)) == ("attempt", started["attempt_id"])
    with answer.file.open("rb") as handle:
        answer_bytes = handle.read()
    with wave.open(io.BytesIO(answer_bytes)) as wav:
        assert wav.getnframes() > 0
    # Players seek: a range of the reply answers 206 with exactly those bytes.
    ranged = talker.op(
        "attempt/audio_download", {"upload_id": str(answer.pk)}, HTTP_RANGE="bytes=10-109"
    )
    assert ranged.status_code == 206
    assert ranged["Content-Range"] == f"bytes 10-109/{len(answer_bytes)}"
    assert b"".join(ranged.streaming_content) == answer_bytes[10:110]
    tail = talker.get(f"/api/v5/media/{answer.pk}", HTTP_RANGE="bytes=-4")
    assert tail.status_code == 206 and b"".join(tail.streaming_content) == answer_bytes[-4:]

    # Announced on the session's run, so on the attempt's group channel.
    assert event_types(session["run_id"]) == [
        "AudioSessionStartedEvent",
        "AudioTranscriptEvent",
        "AudioReplyEvent",
    ]
    group_events = Event.objects.filter(group_id=started["group_id"])
    assert group_events.filter(event_type="ChatMessageEvent").count() == 1
    announced = group_events.get(event_type="AudioReplyEvent").payload
    assert announced["upload_id"] == str(answer.pk)
    assert announced["url"] == f"/api/v5/media/{answer.pk}"
    assert announced["message_id"] == reply["id"]
    heard = group_events.get(event_type="AudioTranscriptEvent").payload
    assert heard["text"] == said["content"] and heard["upload_id"] == recording
    # Each speech call is a run in the books.
    kinds = dict(Run.objects.filter(group_id=started["group_id"]).values_list("kind", "status"))
    assert kinds["transcription"] == kinds["speech"] == RunStatus.SUCCEEDED
    assert kinds["persona_reply"] == RunStatus.SUCCEEDED

    refused(frame(talker, chat_id, recording), 409, "frame_already_sent")
    stopped = ok(talker.op("attempt/audio/stop", {"chat_id": chat_id}))
    assert stopped["stopped"] is True and stopped["frames_received"] == 1
    assert Run.objects.get(pk=session["run_id"]).status == RunStatus.SUCCEEDED


def test_frames_need_an_open_session_and_are_refused_after_stop(talker, audio_home):
    started = begin(talker, audio_home)
    chat_id = started["chat_ids"][0]
    recording = upload(talker, silence(), attempt_id=started["attempt_id"])

    refused(frame(talker, chat_id, recording), 409, "audio_session_not_active")
    ok(talker.op("attempt/audio/start", {"chat_id": chat_id}))
    assert ok(talker.op("attempt/audio/stop", {"chat_id": chat_id}))["stopped"] is True
    refused(frame(talker, chat_id, recording), 409, "audio_session_not_active")
    assert ok(talker.op("attempt/audio/stop", {"chat_id": chat_id}))["stopped"] is False
    assert not Message.objects.exists()
    assert AudioSession.objects.get().frames_received == 0

    # A new session may open after the old one stopped; a pending chat cannot be spoken to.
    reopened = ok(talker.op("attempt/audio/start", {"chat_id": chat_id}))
    assert AudioSession.objects.get(pk=reopened["audio_session_id"]).status == "active"
    refused(talker.op("attempt/audio/start", {"chat_id": started["chat_ids"][1]}), 422)


def test_silence_is_announced_as_nothing_heard_and_sends_no_message(talker, audio_home):
    started = begin(talker, audio_home)
    chat_id = started["chat_ids"][0]
    session = ok(talker.op("attempt/audio/start", {"chat_id": chat_id}))

    ok(frame(talker, chat_id, upload(talker, silence(), attempt_id=started["attempt_id"])))

    heard = Event.objects.get(run_id=session["run_id"], event_type="AudioTranscriptEvent")
    assert heard.payload["text"] == ""
    assert not Message.objects.exists()


def test_a_recording_the_voice_cannot_read_is_announced_as_an_error(talker, audio_home):
    started = begin(talker, audio_home)
    chat_id = started["chat_ids"][0]
    session = ok(talker.op("attempt/audio/start", {"chat_id": chat_id}))
    webm = upload(
        talker,
        b"\x1a\x45\xdf\xa3" + b"\0" * 64,
        attempt_id=started["attempt_id"],
        name="frame.webm",
        mime="audio/webm",
    )

    ok(frame(talker, chat_id, webm))

    failed = Event.objects.get(run_id=session["run_id"], event_type="AudioErrorEvent")
    assert failed.payload["stage"] == "transcription" and failed.payload["upload_id"] == webm
    assert Run.objects.get(kind="transcription").status == RunStatus.FAILED
    assert not Message.objects.exists()


def test_another_organizations_upload_is_404_on_frame_and_every_download(
    talker, audio_home, outsider_client
):
    started = begin(talker, audio_home)
    chat_id = started["chat_ids"][0]
    ok(talker.op("attempt/audio/start", {"chat_id": chat_id}))
    theirs = upload(outsider_client, silence())
    mine = upload(talker, silence(), attempt_id=started["attempt_id"])

    refused(frame(talker, chat_id, theirs), 404, "not_found")
    for path in DOWNLOAD_OPS:
        refused(talker.op(path, {"upload_id": theirs}), 404)
        refused(outsider_client.op(path, {"upload_id": mine}), 404)
        readable = path.split("/", 1)[1].startswith(("file", "audio"))  # a WAV is no image
        assert talker.op(path, {"upload_id": mine}).status_code == (200 if readable else 400)
    assert talker.op("attempt/audio_download", {"file_id": mine}).status_code == 200
    assert talker.get(f"/api/v5/media/{theirs}").status_code == 404
    assert outsider_client.get(f"/api/v5/media/{mine}").status_code == 404
    # Nor may the other organization drive this chat.
    for path in ("attempt/audio/start", "attempt/audio/stop"):
        refused(outsider_client.op(path, {"chat_id": chat_id}), 404)
    refused(frame(outsider_client, chat_id, theirs), 404)
    assert AudioSession.objects.get().status == AudioSessionStatus.ACTIVE
    assert not Message.objects.exists()


def test_a_learner_cannot_push_another_learners_or_a_foreign_recording(
    world, talker, audio_home, make_client
):
    started = begin(talker, audio_home)
    chat_id = started["chat_ids"][0]
    ok(talker.op("attempt/audio/start", {"chat_id": chat_id}))
    peer = make_client(world.learner2)
    peers_attempt = begin(peer, audio_home)

    loose = upload(peer, silence())
    attached = upload(peer, silence(), attempt_id=peers_attempt["attempt_id"])
    refused(frame(talker, chat_id, loose), 404)
    refused(frame(talker, chat_id, attached), 404)
    # Someone else's chat is not theirs to speak in, even with their own recording.
    own = upload(peer, silence(), attempt_id=peers_attempt["attempt_id"])
    refused(frame(peer, chat_id, own), 404)
    # The learner's own recording of another attempt, or a picture, is refused too.
    other_attempt = begin(talker, audio_home)
    elsewhere = upload(talker, silence(), attempt_id=other_attempt["attempt_id"])
    refused(frame(talker, chat_id, elsewhere), 400, "upload_elsewhere")
    png = SimpleUploadedFile("a.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 32, content_type="image/png")
    picture = ok(
        talker.post(
            "/api/v5/artifacts/attempt/upload",
            {"file": png, "attempt_id": started["attempt_id"]},
            format="multipart",
        ),
        201,
    )["upload_id"]
    refused(frame(talker, chat_id, picture), 400, "wrong_media_kind")
    assert AudioSession.objects.get(chat_id=chat_id).frames_received == 0


def test_an_unattached_recording_joins_the_attempt_once_sent(
    world, talker, audio_home, make_client
):
    started = begin(talker, audio_home)
    chat_id = started["chat_ids"][0]
    ok(talker.op("attempt/audio/start", {"chat_id": chat_id}))
    loose = upload(talker, silence())
    teacher = make_client(world.instructor)
    refused(teacher.op("attempt/audio_download", {"upload_id": loose}), 404)

    ok(frame(talker, chat_id, loose))

    # Part of the transcript now: staff who read the attempt hear it.
    assert teacher.op("attempt/audio_download", {"upload_id": loose}).status_code == 200


# -- transcript page and export: spoken messages made without the voices, to stay fast ----------


def spoken_turn(world, attempt, *, text="What is a base case?") -> tuple[Message, Message]:
    chat = attempt.chats.get(position=0)
    result = messaging.attempt_message(
        actor=world.learner,
        attempt_id=attempt.pk,
        chat_id=chat.pk,
        message=text,
        assistant_content="The case that stops the recursion.",
    )
    for message, name in ((result.user_message, "said"), (result.assistant_message, "reply")):
        stored = media.upload_save_bytes(
            organization_id=world.organization.pk,
            owner=world.learner,
            data=silence(0.05),
            file_name=f"{name}.wav",
            mime_type="audio/wav",
            family="attempt",
            artifact_id=attempt.pk,
        )
        Message.objects.filter(pk=message.pk).update(audio_upload=stored)
        message.audio_upload = stored
    return result.user_message, result.assistant_message


def test_the_staff_transcript_plays_the_recordings(client, world, start, audio_home):
    attempt = start(world.learner, audio_home)
    said, reply = spoken_turn(world, attempt)
    sign_in(client, world.instructor)

    html = client.get(f"/staff/attempts/{attempt.pk}/").content.decode()

    for message in (said, reply):
        assert (
            f'<audio controls preload="none" src="/api/v5/media/{message.audio_upload_id}"' in html
        )
    # The page's session is enough to fetch them (SessionAuthentication), inside its CSP.
    played = client.get(f"/api/v5/media/{reply.audio_upload_id}", HTTP_RANGE="bytes=0-3")
    assert played.status_code == 206 and b"".join(played.streaming_content) == b"RIFF"
    assert (
        "media-src 'self'"
        in client.get(f"/staff/attempts/{attempt.pk}/")["Content-Security-Policy"]
    )
    sign_in(client, world.stranger)
    assert client.get(f"/api/v5/media/{reply.audio_upload_id}").status_code == 404


def test_the_export_zip_holds_the_audio_its_transcript_names(world, start, audio_home, make_client):
    attempt = start(world.learner, audio_home)
    said, reply = spoken_turn(world, attempt)
    client = make_client(world.learner)

    exported = ok(client.op("attempt/export", {"attempt_id": str(attempt.pk)}))
    zipped = client.op("attempt/file/download", {"file_id": exported["file_id"]})
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content)))

    lines = [
        json.loads(line)
        for line in archive.read(f"transcripts/{attempt.pk}.jsonl").decode().splitlines()
    ]
    named = {line["role"]: line["audio_file"] for line in lines}
    assert set(named) == {Role.USER, Role.ASSISTANT}
    for message in (said, reply):
        path = f"audio/{message.audio_upload_id}.wav"
        assert path in named.values()
        assert archive.read(path) == silence(0.05)
    markdown = archive.read(f"transcripts/{attempt.pk}.md").decode()
    assert f"[recording](../audio/{reply.audio_upload_id}.wav)" in markdown
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["counts"]["audio_files"] == 2 and manifest["missing_audio_upload_ids"] == []


def test_export_query_count_does_not_grow_with_recordings(world, start, audio_home):
    attempt = start(world.learner, audio_home)

    def export_queries() -> int:
        selection = type(attempt).objects.filter(pk=attempt.pk)
        with CaptureQueriesContext(connection) as captured:
            exports.attempt_export(actor=world.admin, attempts=selection, view="dashboard")
        return len(captured)

    spoken_turn(world, attempt)
    export_queries()  # warm: the admin's session in the books
    one = export_queries()
    for index in range(9):
        spoken_turn(world, attempt, text=f"And case {index}?")
    assert export_queries() == one
    latest = Upload.objects.filter(kind=UploadKind.EXPORT).order_by("-created_at").first()
    names = zipfile.ZipFile(latest.file.open("rb")).namelist()
    assert len([name for name in names if name.startswith("audio/")]) == 20
