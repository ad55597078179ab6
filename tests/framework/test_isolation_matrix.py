"""Tenant isolation matrix generated from the registry: every op that takes an id, called with
another organization's (or another learner's) real ids, answers exactly like an unknown id.

The demo is built once for the module. For every family and every op whose request shape has a
field naming a row (`<family>_id`, chat_id, upload_id, group_id, ...), each such field is probed:
Other College's admin, instructor and learner send Demo University's real id in it, the shape's
other id fields filled with their own rows where they have one ("my attempt, your chat"). The
answer must be 404 (learner2 on learner1's work: 403 or 404), or else exactly what the same body
gets with that id replaced by an unknown one (a search filter, a role's 403); no answer may show
a Demo University id, title, message or secret it was not sent, and no Demo University row may
change. Before the probes, the same body sent by Demo University itself must find the rows (the
positive control), so the ids are real. Every probe is rolled back.

To stay fast: an alias (`id`, file_id, filter_*) and an optional list filter are probed by the
admin alone, and an op inherited unchanged that never reads its family (the media downloads) is
probed fully once and by the admin alone in the other families. The totals print at the end.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from io import StringIO
from typing import Any
from unittest import mock

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.signals import request_finished
from django.db import close_old_connections, connection, models, transaction
from django.db.models import Count, Max, Q, Sum
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers as drf
from rest_framework.test import APIClient

from glow.accounts.models import Department, Organization, Profile
from glow.accounts.services import api_key_create
from glow.accounts.tests.factories import ProfileFactory
from glow.core import media, tasks
from glow.core import services as core_services
from glow.core.media_ops import KINDS
from glow.core.ops import OpSpec, resolve
from glow.core.registry import Family, registry
from glow.core.routers import viewset_class
from glow.core.selectors import artifact_queryset

pytestmark = pytest.mark.django_db

# -- which request fields name rows ------------------------------------------------------------

# Row-naming fields that are not `<family>_id`; build_world maps each to a real row.
NAMED_KEYS = {
    "chat_id",
    "parent_message_id",
    "message_id",
    "grade_id",
    "tool_call_id",
    "standard_group_id",
    "standard_id",
    "key_id",
    "key_ids",
    "upload_id",
    "file_id",
    "group_id",
    "run_id",
    "session_id",
    "target_session_id",
    "draft_id",
    "department_ids",
    "cohort_ids",
    "profile_ids",
    "profile_ids_filter",
    "target_profile_id",
    "previous_chat_map",
    "benchmark_id",
    "baseline_test_id",
}
# UUID fields that name no row to reach: they only leave rows out of a bulk selection.
NOT_ROWS = {"excluded_ids"}
# Families whose `id` names another family's row.
ID_OF = {"benchmark": "test", "system": "session"}
# Fields of a learner's own work: the learner-on-learner matrix probes these.
LEARNER_KEYS = {
    "attempt_id",
    "attempt_ids",
    "chat_id",
    "parent_message_id",
    "upload_id",
    "file_id",
    "group_id",
    "run_id",
    "session_id",
    "target_session_id",
    "previous_chat_map",
    "target_profile_id",
    "profile_ids",
    "profile_ids_filter",
}
# Values for fields that name nothing but must make sense for the op to reach its lookup.
HINTS: dict[str, dict[str, Any]] = {
    "generate": {"instructions": ["An isolation probe."]},
    "message": {"message": "Hello."},
    "response": {"question_id": "q1", "option_ids": ["a"]},
    "publish": {"data": {}, "version": 1},
    "test/export": {"view": "invocations"},
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 32
WEBM = b"\x1a\x45\xdf\xa3" + b"\x00" * 32
FILES = {
    "text": ("probe.txt", b"isolation probe\n", "text/plain"),
    "image": ("probe.png", PNG, "image/png"),
    "audio": ("probe.wav", WAV, "audio/wav"),
    "video": ("probe.webm", WEBM, "video/webm"),
}
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?")
STAMP_RE = re.compile(r"\d{8}-\d{6}")


@dataclass(frozen=True)
class Op:
    family: Family
    spec: OpSpec

    @property
    def path(self) -> str:
        return f"{self.family.name}/{self.spec.name}"

    @property
    def shape(self) -> type | None:
        return resolve(self.spec.request, self.family)

    def fields(self) -> dict[str, drf.Field]:
        return _fields_of(self)

    @property
    def aliases(self) -> dict[str, str]:
        return getattr(self.shape, "field_aliases", None) or {}

    @property
    def multipart(self) -> bool:
        handler = getattr(viewset_class(self.family), self.spec.attr)
        return bool(getattr(handler, "kwargs", {}).get("parser_classes"))

    @property
    def kind(self) -> str:
        """For media ops: which kind of upload the op serves (file/download -> file)."""
        head = self.spec.name.split("/")[0]
        return head if head in KINDS else ""


@cache
def _fields_of(op: Op) -> dict[str, drf.Field]:
    shape = op.shape
    return dict(shape().fields) if shape is not None else {}


def is_row_key(op: Op, name: str) -> bool:
    name = name.removeprefix("filter_")  # bulk writes spell their filters both ways
    if name in NAMED_KEYS:
        return True
    if name in ("id", "entity_id"):
        return op.family.model is not None or op.family.name in ID_OF
    if name == "ids":
        return op.family.model is not None
    for suffix in ("_ids", "_id"):
        stem = name.removesuffix(suffix)
        if name.endswith(suffix) and (found := registry.find(stem)) and found.model is not None:
            return True
    return False


def canonical(op: Op, name: str) -> str:
    """The map key a request field reads: `id` -> `persona_id`, file_id -> upload_id:<kind>."""
    name = name.removeprefix("filter_")
    if name in ("id", "entity_id"):
        return f"{ID_OF.get(op.family.name, op.family.name)}_id"
    if name == "ids":
        return f"{op.family.name}_ids"
    if name in ("upload_id", "file_id"):
        return f"upload_id:{op.kind or 'text'}"
    if name == "draft_id":
        return f"draft_id:{op.family.name}"
    if name == "parent_message_id":
        return "message_id"
    if name == "target_session_id":
        return "session_id"
    if name == "benchmark_id":
        return "test_id"
    if name == "profile_ids_filter":
        return "profile_ids"
    return name


def all_ops() -> list[Op]:
    ops = []
    for family in registry.families():
        for spec in viewset_class(family).op_specs():
            ops.append(Op(family, spec))
    return ops


def is_alias(op: Op, name: str) -> bool:
    """Another spelling of a field the shape has (`id`, file_id, filter_cohort_ids)."""
    return name in op.aliases or (
        name.startswith("filter_") and name.removeprefix("filter_") in op.fields()
    )


def probed_fields(op: Op, keys: set[str] | None = None) -> list[str]:
    fields = op.fields()
    names = [name for name in fields if is_row_key(op, name)]
    if keys is not None:
        names = [name for name in names if name in keys or canonical(op, name) in keys]
    return names


def family_blind(op: Op) -> bool:
    """Inherited unchanged with one request shape, never reading self.family (the media
    downloads): the op behaves the same in every family."""
    handler = getattr(viewset_class(op.family), op.spec.attr)
    code = getattr(handler, "__code__", None)
    return isinstance(op.spec.request, type) and code is not None and "family" not in code.co_names


def first_of_kind(ops: list[Op]) -> set[Op]:
    """Of the family-blind ops, the first family's copy gets every role and the positive control."""
    seen, firsts = set(), set()
    for op in ops:
        key = getattr(viewset_class(op.family), op.spec.attr) if family_blind(op) else op
        if key not in seen:
            seen.add(key)
            firsts.add(op)
    return firsts


OPS = all_ops()
FULL = first_of_kind(OPS)
CROSS_ORG_OPS = [op for op in OPS if probed_fields(op)]
LEARNER_OPS = [op for op in OPS if probed_fields(op, LEARNER_KEYS)]

# -- the world: the demo, plus the rows each probe needs --------------------------------------


@dataclass
class Party:
    """Someone sending probes, with the ids of rows they may use themselves."""

    name: str
    profile: Profile
    client: APIClient
    own: dict[str, Any] = field(default_factory=dict)


@dataclass
class Case:
    """One matrix: whose ids (target), who probes them, what answers are allowed."""

    name: str
    target: dict[str, Any]
    parties: list[Party]
    owners: list[Party]  # positive control: who may reach the target rows
    allowed: tuple[int, ...]
    markers: set[str]
    fingerprint: Fingerprint
    before: dict = field(default_factory=dict)
    keys: set[str] | None = None
    # DESIGN 3: inside the organization, attempt/get may say access_denied instead of 404.
    honest_denial: bool = False


@dataclass
class World:
    cross_org: Case
    learner: Case
    media_root: Any


@dataclass
class Stats:
    ops: set[str] = field(default_factory=set)
    calls: int = 0
    leaks: list[str] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    reached: set[str] = field(default_factory=set)


STATS = {"cross_org": Stats(), "learner": Stats()}


def client_for(profile: Profile) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key_create(profile=profile, name="matrix").plaintext)
    return client


def first(queryset):
    names = {f.name for f in queryset.model._meta.concrete_fields}
    return queryset.order_by(*(("created_at", "pk") if "created_at" in names else ("pk",))).first()


def family_rows(actor, organization) -> dict[str, Any]:
    """`<family>_id` for every family with a model: the first row the actor may see."""
    found = {}
    for family in registry.families():
        if family.model is None:
            continue
        queryset = artifact_queryset(actor=actor, family=family)
        row = first(queryset.filter(**{family.organization_field: organization.pk}))
        if row is not None:
            found[f"{family.name}_id"] = row.pk
    return found


def attempt_rows(attempt) -> dict[str, Any]:
    from system.models import Run

    chat = first(attempt.chats.all())
    message = first(chat.messages.all())
    run = first(Run.objects.filter(group_id=attempt.group_id)) if attempt.group_id else None
    rows = {"attempt_id": attempt.pk, "chat_id": chat.pk}
    if message is not None:
        rows["message_id"] = message.pk
    if attempt.group_id:
        rows["group_id"] = attempt.group_id
        rows["session_id"] = attempt.group.session_id
    if run is not None:
        rows["run_id"] = run.pk
    return rows


def store(owner, kind: str, *, family: str = "", artifact_id=None):
    name, content, mime = FILES[kind]
    upload = media.upload_store(
        actor=owner,
        uploaded=SimpleUploadedFile(name, content, content_type=mime),
        family=family,
        artifact_id=artifact_id,
    )
    return upload.pk


def uploads_for(owner, *, family: str = "", artifact_id=None) -> dict[str, Any]:
    found = {
        f"upload_id:{kind}": store(owner, kind, family=family, artifact_id=artifact_id)
        for kind in FILES
    }
    found["upload_id:file"] = found["upload_id:text"]
    return found


def drafts_for(actor, rows: dict[str, Any]) -> dict[str, Any]:
    found = {}
    for family in registry.families():
        mounted = [spec.name for spec in viewset_class(family).op_specs()]
        if family.model is None or "draft" not in mounted or not family.can_write(actor):
            continue
        pk = rows.get(f"{family.name}_id")
        version = family.model.objects.get(pk=pk).version if pk else 0
        draft = core_services.draft_save(
            actor=actor, family=family, version=version, data={}, artifact_id=pk
        )
        found[f"draft_id:{family.name}"] = draft.pk
    return found


def lists_of(rows: dict[str, Any]) -> dict[str, Any]:
    """`<family>_ids` lists from the single ids."""
    return {
        f"{key.removesuffix('_id')}_ids": [value]
        for key, value in rows.items()
        if key.endswith("_id") and ":" not in key
    }


class Fingerprint:
    """Per table: count, versions, archive flags and last changes of the rows a matrix protects
    (those with a foreign-key path to `anchor`). Compiled once; a probe re-reads only the tables
    it wrote to."""

    def __init__(self, anchor: models.Model, prefer: tuple[str, ...] = ()) -> None:
        self.statements = {}
        for model in apps.get_models():
            path = _path_to(model, type(anchor), prefer, depth=0) if model._meta.managed else None
            if path is None:
                continue
            names = {f.name for f in model._meta.concrete_fields}
            aggregates = {"n": Count("pk")}
            if "version" in names:
                aggregates["v"] = Sum("version")
            if "archived" in names:
                # PostgreSQL has no SUM over booleans: count the archived rows instead.
                aggregates["a"] = Count("pk", filter=Q(archived=True))
            for name in ("updated_at", "status", "revoked_at", "grade"):
                if name in names:
                    field = model._meta.get_field(name)
                    # PostgreSQL has no MAX over UUIDs (a foreign key like grade): count instead.
                    opaque = field.is_relation or isinstance(field, models.UUIDField)
                    aggregates[name] = Count(name, distinct=True) if opaque else Max(name)
            query = model._default_manager.filter(**{path: anchor.pk}).order_by()
            query = query.annotate(_one=models.Value(1)).values("_one").annotate(**aggregates)
            self.statements[model._meta.db_table] = query.query.sql_with_params()

    def __call__(self, tables: set[str] | None = None) -> dict[str, list]:
        result = {}
        with connection.cursor() as cursor:
            for table, (sql, params) in self.statements.items():
                if tables is None or table in tables:
                    cursor.execute(sql, params)
                    result[table] = cursor.fetchall()
        return result


def _path_to(model, anchor, prefer: tuple[str, ...], depth: int) -> str | None:
    """The ORM path from a table's rows to the anchor's id (up to 3 hops), `prefer`red FKs first."""
    if model is anchor:
        return "pk"
    fks = [f for f in model._meta.concrete_fields if isinstance(f, models.ForeignKey)]
    fks.sort(key=lambda f: f.name not in prefer)
    for fk in fks:
        if fk.related_model is anchor:
            return f"{fk.name}_id"
    if depth >= 3:
        return None
    for fk in fks:
        if fk.related_model is model or fk.related_model._meta.label == "auth.User":
            continue
        inner = _path_to(fk.related_model, anchor, prefer, depth + 1)
        if inner is not None:
            return f"{fk.name}__{inner}"
    return None


WRITE_RE = re.compile(r'^\s*(?:INSERT INTO|UPDATE|DELETE FROM)\s+"?(\w+)"?', re.IGNORECASE)


def build_world(media_root) -> World:
    from attempts import lifecycle, messaging
    from attempts.models import Attempt, AttemptStatus, Message
    from glow.catalog.models import Home, StandardGroup
    from tests_app.models import Invocation, SecretKey, TestGrade, ToolCall

    demo = Organization.objects.get(name="Demo University")
    other = Organization.objects.get(name="Other College")
    people = {p.user.username: p for p in Profile.objects.select_related("user", "organization")}
    admin, learner1, learner2 = people["admin"], people["learner1"], people["learner2"]
    other_instructor = ProfileFactory(role="instructor", organization=other)
    other_instructor.departments.set(Department.objects.filter(organization=other))

    # Demo University's ids by request field (the admin sees every row of the organization).
    present = family_rows(admin, demo)
    for family in registry.families():
        if family.model is not None and family.id_field not in present:
            # The demo has none: the family's test factory makes one (tests/support/families.py).
            assert "factory" in family.extra, f"{family.name}: no demo row and no test factory"
            family.extra["factory"](organization=demo)
    target = family_rows(admin, demo)
    done = (
        Attempt.objects.filter(profile=learner1, status=AttemptStatus.COMPLETED)
        .order_by("created_at")
        .first()
    )
    target.update(attempt_rows(done))
    target["attempt_id"] = done.pk
    invocation = first(Invocation.objects.filter(organization=demo).exclude(key_ids=[]))
    target["invocation_id"] = invocation.pk
    target["test_id"] = invocation.test_id
    target["baseline_test_id"] = invocation.test_id
    target["key_id"] = uuid.UUID(str(invocation.key_ids[0]))
    assert SecretKey.objects.filter(pk=target["key_id"], organization=demo).exists()
    grade = first(TestGrade.objects.filter(organization=demo))
    target["grade_id"] = grade.pk
    target["tool_call_id"] = first(ToolCall.objects.filter(invocation__organization=demo)).pk
    target["standard_group_id"] = first(StandardGroup.objects.filter(rubric__organization=demo)).pk
    target["standard_id"] = first(done.simulation.rubric.groups.first().standards.all()).pk
    target["department_ids"] = [first(Department.objects.filter(organization=demo)).pk]
    target["cohort_ids"] = list(demo.cohorts.values_list("pk", flat=True)[:1])
    target["profile_ids"] = [learner1.pk]
    target["target_profile_id"] = str(learner1.pk)
    target.update(uploads_for(learner1, family="attempt", artifact_id=done.pk))
    export_client = client_for(learner1)
    export = export_client.post(
        "/api/v5/artifacts/attempt/export", {"attempt_id": str(done.pk)}, format="json"
    )
    assert export.status_code == 200, export.content
    target["upload_id:file"] = uuid.UUID(export.json()["upload_id"])
    target.update(drafts_for(admin, target))
    target = {**lists_of(target), **target}
    target["previous_chat_map"] = target["chat_id"]

    # Other College: its own rows, so probes mix "mine" with "theirs".
    other_admin, other_learner = people["other_admin"], people["other_learner"]
    home = Home.objects.get(organization=other)
    mine = lifecycle.attempt_start(actor=other_learner, home_id=home.pk)
    chat = first(mine.chats.all())
    messaging.attempt_message(
        actor=other_learner, attempt_id=mine.pk, chat_id=chat.pk, message="Hi, I need more time."
    )
    their_test = other_test(other_admin)
    parties = []
    for name, profile in (
        ("other_admin", other_admin),
        ("other_instructor", other_instructor),
        ("other_learner", other_learner),
    ):
        own = family_rows(profile, other)
        if other_learner == profile or profile.is_staff_role:
            own.update(attempt_rows(mine))
        own.update(uploads_for(profile))
        if profile.is_staff_role:
            own.update(drafts_for(profile, own))
            own.update(their_test)
        own = {**lists_of(own), **own}
        parties.append(Party(name, profile, client_for(profile), own))

    # What no answer to another organization may show: any id or title of Demo University's
    # rows, its learners' words, its secret.
    markers = {str(value) for value in _flat(target.values())}
    for family in registry.families():
        if family.model is not None:
            rows = family.model.objects.filter(**{family.organization_field: demo.pk})
            for pk, title in rows.values_list("pk", "title"):
                markers |= {str(pk), title} if len(title) >= 12 else {str(pk)}
    demo_messages = Message.objects.filter(chat__attempt__organization=demo)
    markers |= {str(pk) for pk in demo_messages.values_list("chat_id", flat=True)}
    markers |= {str(pk) for pk in demo_messages.values_list("pk", flat=True)}
    markers |= set(demo_messages.exclude(content="").values_list("content", flat=True))
    markers.add("demo-token-for-decrypt")
    owners = [Party("admin", admin, client_for(admin)), Party("learner1", learner1, export_client)]
    cross_org = Case(
        name="cross_org",
        target=target,
        parties=parties,
        owners=owners,
        allowed=(404,),
        markers=markers,
        fingerprint=Fingerprint(demo),
    )

    # learner2 on learner1's work, inside the organization.
    theirs = {key: value for key, value in target.items() if key.split(":")[0] in LEARNER_KEYS}
    theirs.update(
        {
            "attempt_ids": [done.pk],
            "message_id": target["message_id"],
            "upload_id:file": target["upload_id:file"],
        }
    )
    own2 = family_rows(learner2, demo)
    open_attempt = (
        Attempt.objects.filter(profile=learner2).exclude(status=AttemptStatus.COMPLETED).first()
    )
    own2.update(attempt_rows(open_attempt))
    own2.update(uploads_for(learner2, family="attempt", artifact_id=open_attempt.pk))
    own2 = {**lists_of(own2), **own2}
    learner_markers = {str(value) for value in _flat(theirs.values())}
    their_messages = Message.objects.filter(chat__attempt__profile=learner1)
    learner_markers |= {
        str(pk) for pk in Attempt.objects.filter(profile=learner1).values_list("pk", flat=True)
    }
    learner_markers |= {str(pk) for pk in their_messages.values_list("chat_id", flat=True)}
    learner_markers |= {str(pk) for pk in their_messages.values_list("pk", flat=True)}
    learner_markers |= set(their_messages.exclude(content="").values_list("content", flat=True))
    learner = Case(
        name="learner",
        target={**target, **theirs},
        parties=[Party("learner2", learner2, client_for(learner2), own2)],
        owners=owners,
        allowed=(403, 404),
        markers=learner_markers,
        fingerprint=Fingerprint(learner1, prefer=("profile", "owner", "author")),
        keys=set(theirs),
        honest_denial=True,
    )
    for case in (cross_org, learner):
        case.before = case.fingerprint()
    return World(cross_org=cross_org, learner=learner, media_root=media_root)


def other_test(admin) -> dict[str, Any]:
    """A test of Other College with a secret, a grade and a tool call: "my grade, your tool
    call" is probed too."""
    from glow.catalog.tests.factories import AgentFactory, AIModelFactory, EvalFactory
    from system.ledger import session_touch
    from tests_app import lifecycle
    from tests_app.tests.factories import TestGradeFactory, ToolCallFactory

    department = Department.objects.filter(organization=admin.organization).first()
    evaluation = EvalFactory(organization=admin.organization, department=department)
    test, _ = lifecycle.test_start(
        actor=admin,
        session=session_touch(actor=admin, client_kind="api", auth="api_key"),
        eval_id=evaluation.pk,
        model_ids=[AIModelFactory(organization=admin.organization).pk],
        scenario_ids=list(evaluation.scenarios.values_list("pk", flat=True)),
        agent_ids=[AgentFactory(organization=admin.organization, department=department).pk],
        secrets=[{"label": "Lab token", "value": "lab-token"}],
        dispatch=False,
    )
    invocation = test.invocations.get()
    return {
        "test_id": test.pk,
        "baseline_test_id": test.pk,
        "invocation_id": invocation.pk,
        "key_id": uuid.UUID(str(invocation.key_ids[0])),
        "key_ids": [uuid.UUID(str(invocation.key_ids[0]))],
        "grade_id": TestGradeFactory(invocation=invocation).pk,
        "tool_call_id": ToolCallFactory(invocation=invocation).pk,
        "standard_group_id": evaluation.rubric.groups.get().pk,
        "standard_id": evaluation.rubric.groups.get().standards.first().pk,
    }


def _flat(values) -> Iterator[Any]:
    for value in values:
        if isinstance(value, list | tuple):
            yield from value
        else:
            yield value


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory, request):
    """The demo and the probes' rows, built once and rolled back when the module ends."""
    media_root = tmp_path_factory.mktemp("matrix-media")
    fast = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with (
        django_db_blocker.unblock(),
        override_settings(MEDIA_ROOT=media_root, PASSWORD_HASHERS=fast, GLOW_TASK_MODE="inline"),
    ):
        atomic = transaction.atomic()
        # Marked like a TestCase's wrapper: inline tasks of the code inside run at its own commit.
        atomic._from_testcase = True
        atomic.__enter__()
        try:
            call_command("glow_demo", stdout=StringIO())
            yield build_world(media_root)
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            report(request.config)


def report(config) -> None:
    lines = []
    for name, stats in STATS.items():
        if not stats.ops or name == "self_check":
            continue
        copies = len(stats.ops - {op.path for op in FULL})
        lines.append(
            f"isolation matrix [{name}]: {len(stats.ops)} ops covered, {stats.calls} calls, "
            f"{len(stats.leaks)} leaks; positive control passed on {len(stats.reached)} ops "
            f"(+{copies} family-blind copies); answers {dict(sorted(stats.statuses.items()))}"
        )
        lines.extend(f"  LEAK {leak}" for leak in stats.leaks)
    capture = config.pluginmanager.getplugin("capturemanager")
    terminal = config.pluginmanager.getplugin("terminalreporter")
    if not lines or terminal is None:
        return
    with capture.global_and_fixture_disabled():
        terminal.write_line("")
        for line in lines:
            terminal.write_line(line)


@pytest.fixture
def probe_settings(settings, world):
    settings.GLOW_THROTTLE_RATES = {}  # thousands of probes from four keys
    settings.MEDIA_ROOT = world.media_root
    return settings


# -- sending probes ------------------------------------------------------------------------------


@contextmanager
def rolled_back() -> Iterator[None]:
    """Each probe sees the same rows: its writes are undone before the next one."""
    atomic = transaction.atomic()
    atomic._from_testcase = True
    atomic.__enter__()
    try:
        yield
    finally:
        transaction.set_rollback(True)
        atomic.__exit__(None, None, None)


def hints_of(op: Op) -> dict[str, Any]:
    return {**HINTS.get(op.spec.name, {}), **HINTS.get(op.path, {})}


def dummy(name: str, field: drf.Field, op: Op) -> Any:
    """A schema-valid value for a field that names no row."""
    hint = hints_of(op)
    if name in hint:
        return hint[name]
    if isinstance(field, drf.ListSerializer):
        return [dummy(name, field.child, op)] * max(1, field.min_length or 1)
    if isinstance(field, drf.Serializer):
        return {n: dummy(n, f, op) for n, f in field.fields.items() if f.required}
    if isinstance(field, drf.UUIDField):
        return str(uuid.uuid4())
    if isinstance(field, drf.ChoiceField):
        return next(iter(field.choices))
    if isinstance(field, drf.BooleanField):
        return False
    if isinstance(field, drf.IntegerField):
        low = field.min_value if field.min_value is not None else 1
        return max(low, 1) if field.max_value is None else min(max(low, 1), field.max_value)
    if isinstance(field, drf.DecimalField):
        return "1"
    if isinstance(field, drf.FloatField):
        return 1.0
    if isinstance(field, drf.DateTimeField | drf.DateField) or "Date" in type(field).__name__:
        return "2026-01-02"
    if isinstance(field, drf.ListField):
        return [dummy(name, field.child, op)] * max(1, field.min_length or 1)
    if isinstance(field, drf.DictField | drf.JSONField):
        return {}
    if isinstance(field, drf.CharField):
        return "x" * max(1, field.min_length or 1)
    raise LookupError(f"{op.path}: no dummy value for {name} ({type(field).__name__})")


def value(op: Op, name: str, ids: dict[str, Any], own: dict[str, Any] | None = None) -> Any:
    """A row field's value from `ids`; lists and the chat map are built from single ids."""
    key = canonical(op, name)
    if key == "previous_chat_map":
        if "chat_id" not in ids:
            return None
        # "Copy the grade of your chat into my attempt's chat."
        mine = (own or {}).get("chat_id") or ids["chat_id"]
        return {str(mine): str(ids["chat_id"])}
    if key not in ids:
        return None
    found = ids[key]
    if isinstance(found, list):
        return [str(item) for item in found]
    return str(found)


@dataclass
class Probe:
    """The fields one probe sends: the probed row field, the others it needs, fixed dummies."""

    op: Op
    probed: str
    row_fields: list[str]
    dummies: dict[str, Any]

    def partner(self) -> str | None:
        """The probed field's alias twin (id <-> persona_id): left out, or it would win."""
        aliases = self.op.aliases
        return aliases.get(self.probed) or next(
            (alias for alias, canon in aliases.items() if canon == self.probed), None
        )

    def body(self, target: dict[str, Any], own: dict[str, Any] | None) -> dict:
        """As Demo University (own None: every row field is the target's) or as a prober."""
        body = dict(self.dummies)
        for name in self.row_fields:
            mine = value(self.op, name, own) if own is not None else None
            same_row = canonical(self.op, name) == canonical(self.op, self.probed)
            body[name] = mine if mine is not None and not same_row else value(self.op, name, target)
        body[self.probed] = value(self.op, self.probed, target, own)
        return {name: given for name, given in body.items() if given is not None}


def candidates(op: Op, probed: str) -> list[Probe]:
    """The smallest body first (required fields only), then one with every row field."""
    fields = op.fields()
    hints = hints_of(op)
    dummies = {
        name: dummy(name, f, op)
        for name, f in fields.items()
        if not isinstance(f, drf.FileField)
        and not is_row_key(op, name)
        and (f.required or name in hints)
    }
    row = [name for name in fields if is_row_key(op, name) and name != probed]
    probe = Probe(op, probed, [], dummies)
    # Another spelling of the probed field would name a row too and hide what is probed.
    skip = {probe.partner()} | {
        name for name in row if canonical(op, name) == canonical(op, probed)
    }
    required = [name for name in row if fields[name].required and name not in skip]
    every = [name for name in row if name not in skip]
    found = [Probe(op, probed, required, dummies)]
    if every != required:
        found.append(Probe(op, probed, every, dummies))
    return found


def swaps_of(given: Any) -> dict[str, str]:
    """Each target id in a probed value, and the unknown id its control twin sends instead."""
    items = given.values() if isinstance(given, dict) else [given]
    return {str(real): str(uuid.uuid4()) for real in _flat(items)}


def swapped(body: dict, probed: str, swaps: dict[str, str]) -> dict:
    given = json.dumps(body[probed])
    for real, stand_in in swaps.items():
        given = given.replace(real, stand_in)
    return {**body, probed: json.loads(given)}


def send(op: Op, client: APIClient, body: dict, method: str = "post"):
    url = f"/api/v5/artifacts/{op.path}"
    if method == "get":
        return client.get(url, body)
    if op.multipart:
        name, content, mime = FILES["audio" if op.spec.name.startswith("audio") else "text"]
        form = {key: val for key, val in body.items() if not isinstance(val, list | dict)}
        form["file"] = SimpleUploadedFile(name, content, content_type=mime)
        return client.post(url, form, format="multipart")
    return client.post(url, body, format="json")


def text_of(response) -> str:
    if getattr(response, "streaming", False):
        # As Django's test client does: closing fires request_finished, whose
        # close_old_connections would close the connection under the probe's transaction.
        request_finished.disconnect(close_old_connections)
        try:
            response.close()
        finally:
            request_finished.connect(close_old_connections)
        return f"<stream {response.get('Content-Type', '')}>"
    return response.content.decode("utf-8", "replace")


def normalized(text: str, swaps: dict[str, str]) -> str:
    for index, (real, stand_in) in enumerate(swaps.items()):
        text = text.replace(real, f"<id{index}>").replace(stand_in, f"<id{index}>")
    return STAMP_RE.sub("<stamp>", TIME_RE.sub("<time>", UUID_RE.sub("<uuid>", text)))


def methods(op: Op) -> list[str]:
    return [method for method in ("post", "get") if method in op.spec.methods]


def refused_shape(op: Op, response, answer: str) -> bool:
    """A 400 from the request shape itself: the body never reached a lookup."""
    if response.status_code != 400:
        return False
    try:
        data = json.loads(answer)
    except ValueError:
        return False
    fields = set(data.get("fields") or {})
    return data.get("code") == "invalid" and fields <= {*op.fields(), "non_field_errors"}


REACHING: dict[tuple[str, str], Probe] = {}


def reaching_probe(op: Op, case: Case, probed: str) -> Probe | str:
    """Positive control: the body with which Demo University's own people find the rows (or
    why none does). A 403 may come before any lookup, so it counts only if nothing does better."""
    stats = STATS.setdefault(case.name, Stats())
    if (op.path, probed) in REACHING:
        stats.reached.add(op.path)
        return REACHING[op.path, probed]

    def found(probe: Probe) -> Probe:
        stats.reached.add(op.path)
        REACHING[op.path, probed] = probe
        return probe

    tried, refused_by_role = [], None
    for probe in candidates(op, probed):
        for owner in case.owners:
            # The answer shows the rows were found; the work it would queue (a test's runs,
            # a generation) is not needed for that.
            with rolled_back(), mock.patch.object(tasks, "_on_commit_inline", lambda func: None):
                response = send(op, owner.client, probe.body(case.target, None), methods(op)[0])
                answer = text_of(response)
            stats.calls += 1
            status = response.status_code
            tried.append(f"{owner.name} {sorted(probe.row_fields)}: {status}")
            if status == 403:
                refused_by_role = refused_by_role or probe
            elif status != 404 and not refused_shape(op, response, answer):
                return found(probe)
    if refused_by_role is not None:
        return found(refused_by_role)
    return (
        f"{op.path} [{probed}] positive control: Demo University cannot reach its own rows "
        f"(are the ids real? does the op need a HINTS entry?): {'; '.join(tried)}"
    )


@dataclass
class Call:
    where: str
    body: dict
    status: int
    answer: str
    problems: list[str] = field(default_factory=list)


def probe_once(op: Op, case: Case, party: Party, body: dict, method: str, before) -> Call:
    """One rolled-back call; rows of the target must be as they were."""
    where = f"{op.path} [{method.upper()} {', '.join(sorted(body))}] as {party.name}"
    with rolled_back(), CaptureQueriesContext(connection) as queries:
        response = send(op, party.client, body, method)
        answer = text_of(response)
        written = {
            match.group(1)
            for query in queries.captured_queries
            if (match := WRITE_RE.match(query["sql"]))
        }
        after = {**before, **case.fingerprint(written)} if written else before
    stats = STATS.setdefault(case.name, Stats())
    stats.calls += 1
    stats.statuses[response.status_code] += 1
    call = Call(where, body, response.status_code, answer)
    if response.status_code >= 500:
        call.problems.append(f"{where}: server error {response.status_code} {answer[:300]!r}")
    sent = json.dumps(body)
    seen = sorted(m for m in case.markers if m in answer and m not in sent)
    if seen:
        call.problems.append(f"{where}: the answer shows {seen[:3]} ({response.status_code})")
    if after != before:
        changed = sorted(label for label in before if before[label] != after.get(label))
        call.problems.append(f"{where}: changed {changed}")
    return call


def run_case(op: Op, case: Case) -> list[str]:
    """Every probe of one op; answers the leaks (and failed positive controls) found."""
    stats = STATS.setdefault(case.name, Stats())
    stats.ops.add(op.path)
    # Every probe is rolled back: the rows are as they were when the world was built.
    before = case.before
    leaks = []
    full = op in FULL
    fields = op.fields()
    for probed in probed_fields(op, case.keys):
        alias = is_alias(op, probed)
        if full and not alias:
            probe = reaching_probe(op, case, probed)
            if isinstance(probe, str):
                leaks.append(probe)
                continue
        elif alias and not full:
            continue
        else:
            probe = candidates(op, probed)[0]
        # An alias reaches the same lookup for every role, a family-blind op in every family, and
        # an optional list filter narrows the prober's own rows (the admin's are the most).
        narrowing = (
            isinstance(fields[probed], drf.ListField)
            and not fields[probed].required
            and canonical(op, probed) != f"{op.family.name}_ids"
        )
        one = alias or not full or narrowing
        for party in case.parties[:1] if one else case.parties:
            body = probe.body(case.target, party.own)
            swaps = swaps_of(body[probed])
            for method in methods(op):
                call = probe_once(op, case, party, body, method, before)
                leaks.extend(call.problems)
                if call.status in case.allowed or (
                    case.honest_denial and call.status == 200 and _honest_denial(call.answer)
                ):
                    continue
                twin = probe_once(op, case, party, swapped(body, probed, swaps), method, before)
                leaks.extend(twin.problems)
                if twin.status != call.status or normalized(call.answer, swaps) != normalized(
                    twin.answer, swaps
                ):
                    leaks.append(
                        f"{call.where}: {call.status} {call.answer[:300]!r}, but an unknown id "
                        f"gets {twin.status} {twin.answer[:300]!r}"
                    )
    for party in case.parties:
        leaks.extend(bulk_probe(op, case, party, before))
    stats.leaks.extend(leaks)
    return leaks


def bulk_probe(op: Op, case: Case, party: Party, before) -> list[str]:
    """`all: true` with the target's ids as filters selects nothing and changes nothing."""
    fields = op.fields()
    if not isinstance(fields.get("all"), drf.BooleanField):
        return []
    body = {"all": True}
    for name, f in fields.items():
        if name in ("ids", "excluded_ids", op.family.ids_field) or not is_row_key(op, name):
            continue
        if isinstance(f, drf.ListField):
            body[name] = value(op, name, case.target)
    body = {name: given for name, given in body.items() if given is not None}
    call = probe_once(op, case, party, body, "post", before)
    problems = list(call.problems)
    if call.status == 200:
        count = json.loads(call.answer).get("updated_count")
        if count != 0:
            problems.append(f"{call.where}: updated_count {count}, expected 0")
    elif call.status not in (403,):
        problems.append(f"{call.where}: {call.status} {call.answer[:300]!r}")
    return problems


def _honest_denial(answer: str) -> bool:
    """DESIGN 3: inside the organization, attempt/get says access_denied rather than 404."""
    try:
        data = json.loads(answer)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("access_denied") is True


def run_family(family: str, ops: list[Op], case: Case) -> None:
    leaks = [leak for op in ops if op.family.name == family for leak in run_case(op, case)]
    assert not leaks, f"{len(leaks)} leak(s):\n" + "\n".join(leaks)


CROSS_ORG_FAMILIES = sorted({op.family.name for op in CROSS_ORG_OPS})
LEARNER_FAMILIES = sorted({op.family.name for op in LEARNER_OPS})


@pytest.mark.parametrize("family", CROSS_ORG_FAMILIES)
def test_another_organization_gets_404_for_every_id(family, world, probe_settings):
    run_family(family, CROSS_ORG_OPS, world.cross_org)


@pytest.mark.parametrize("family", LEARNER_FAMILIES)
def test_a_learner_cannot_reach_another_learners_work(family, world, probe_settings):
    run_family(family, LEARNER_OPS, world.learner)


# -- the matrix checks itself, and the audit of archives, exports and decrypts ----------------


def test_every_id_field_of_every_op_is_probed():
    """A request field naming rows under a new name must join NAMED_KEYS (or NOT_ROWS)."""
    unknown = set()
    for op in OPS:
        for name, f in op.fields().items():
            inner = f.child if isinstance(f, drf.ListField | drf.DictField) else f
            names_row = is_row_key(op, name) or name in NOT_ROWS
            if isinstance(inner, drf.UUIDField) and not names_row:
                unknown.add(f"{op.path}: {name}")
    assert not unknown, sorted(unknown)


def test_the_matrix_finds_a_leak_and_names_the_op_and_role(world, probe_settings, monkeypatch):
    """With the organization filter gone from the access choke point, persona/get leaks."""
    from glow.core import selectors

    def unscoped(*, actor, family, include_archived=True):
        return family.scope(family.model.objects.all(), actor)

    monkeypatch.setattr(selectors, "artifact_queryset", unscoped)
    op = next(op for op in CROSS_ORG_OPS if op.path == "persona/get")
    leaks = run_case(op, replace(world.cross_org, name="self_check"))
    assert any("persona/get" in leak and "as other_admin" in leak for leak in leaks), leaks
    assert any("the answer shows" in leak for leak in leaks), leaks


def test_the_fingerprint_sees_a_changed_row(world, probe_settings):
    from glow.catalog.models import Persona

    case = world.cross_org
    with rolled_back():
        Persona.objects.filter(pk=case.target["persona_id"]).update(archived=True)
        assert case.fingerprint({Persona._meta.db_table}) != {
            Persona._meta.db_table: case.before[Persona._meta.db_table]
        }
    assert case.fingerprint() == case.before


def new_events(since: int):
    from system.models import TimelineEvent

    return list(TimelineEvent.objects.filter(pk__gt=since).order_by("pk"))


def last_event_id() -> int:
    from system.models import TimelineEvent

    return TimelineEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


ARCHIVE_OPS = [op for op in OPS if op.spec.name == "archive"]
EXPORT_OPS = [op for op in OPS if op.spec.name in ("export", "decrypt")]


@pytest.mark.parametrize("op", ARCHIVE_OPS, ids=lambda op: op.path)
def test_every_archive_call_writes_one_timeline_event(op, world, probe_settings):
    from system.models import Session

    case = world.cross_org
    admin = case.owners[0]
    row = str(case.target[f"{op.family.name}_id"])
    with rolled_back():
        since = last_event_id()
        response = send(op, admin.client, {op.family.ids_field: [row]})
        assert response.status_code == 200, response.content
        (event,) = new_events(since)
        assert event.event_type == f"{op.family.name}.archived"
        assert (event.actor, event.entity_id, event.extra_1) == (admin.profile, op.family.name, "1")
        assert event.extra_2 == row
        assert event.session == Session.objects.get(profile=admin.profile, client_kind="api")

        since = last_event_id()
        response = send(op, admin.client, {"all": True, "archived": False})
        (event,) = new_events(since)
        assert event.event_type == f"{op.family.name}.unarchived"
        assert event.extra_1 == str(response.json()["updated_count"]) and event.extra_2 == "all"

        since = last_event_id()
        for party in case.parties:
            refused = send(op, party.client, {op.family.ids_field: [row]})
            assert refused.status_code in (403, 404), refused.content
        assert new_events(since) == []


@pytest.mark.parametrize("op", EXPORT_OPS, ids=lambda op: op.path)
def test_every_export_and_decrypt_is_audited_with_actor_and_target(op, world, probe_settings):
    """FERPA (DESIGN 8): whoever reads data out, and what they read, is on the timeline."""
    case = world.cross_org
    tried = []
    for probe in candidates(op, probed_fields(op)[0]):
        for owner in case.owners:
            with rolled_back():
                since = last_event_id()
                response = send(op, owner.client, probe.body(case.target, None))
                events = new_events(since)
            tried.append(response.status_code)
            if response.status_code != 200:
                continue
            audited = [e for e in events if op.spec.name in e.event_type]
            assert audited, f"{op.path}: no audit row among {[e.event_type for e in events]}"
            assert all(e.actor == owner.profile and e.entity_id for e in audited)
            assert all(e.session_id is not None for e in audited)
            return
    pytest.fail(f"{op.path}: Demo University could not call it ({tried})")
