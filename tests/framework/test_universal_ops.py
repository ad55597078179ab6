"""The universal ops, tested once and parametrized over every registered family that has a model."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from glow.accounts.tests.factories import ProfileFactory
from glow.core.registry import Facet, Family, op_table
from tests.support.families import model_families, row_factory

pytestmark = pytest.mark.django_db

FAMILIES = model_families()


def each_family(test):
    return pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])(test)


def requires(family: Family, *ops: str) -> None:
    """A family may switch a universal op off (disabled_ops): its tests then have nothing to run."""
    missing = [name for name in ops if name not in op_table()[family.name]]
    if missing:
        pytest.skip(f"{family.name} does not mount {', '.join(missing)}")


def make(family: Family, organization, **overrides):
    return row_factory(family)(organization=organization, **overrides)


def call(client, family: Family, op: str, body: dict | None = None):
    return client.op(f"{family.name}/{op}", body or {})


def ok(response) -> dict:
    assert response.status_code == 200, response.content
    return response.json()


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert {"detail", "code", "fields"} <= set(body), body
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["code"] == code, body
    return body


def live_ids(family: Family, organization) -> set[str]:
    rows = family.model.objects.filter(
        **{family.organization_field: organization.pk}, archived=False
    )
    return {str(pk) for pk in rows.values_list("pk", flat=True)}


def items(family: Family, body: dict) -> list[dict]:
    return body[family.plural]


def facet_attrs(family: Family) -> dict[Facet, str]:
    """Facets over a direct foreign key of the row: those the generic tests can vary."""
    found = {}
    for facet in family.facets:
        name = facet.field.removesuffix("_id")
        field = next((f for f in family.model._meta.fields if f.name == name), None)
        if field is not None and field.many_to_one:
            found[facet] = name
    return found


def row_of(family: Family, body: dict) -> dict:
    """A row as output: flat, or nested under the family's name in a bundle (attempt/get)."""
    nested = body.get(family.name)
    return nested if isinstance(nested, dict) else body


def ident(family: Family, item: dict) -> str:
    """Output names the row `id`, or `<family>_id` where the seed pages say so."""
    row = row_of(family, item)
    return row["id"] if "id" in row else row[family.id_field]


def has_filter(family: Family, name: str) -> bool:
    return family.filterset is not None and name in family.filterset.base_filters


def counts(section: dict) -> dict[str, int]:
    return {option["id"]: option["count"] for option in section["options"]}


# -- get ------------------------------------------------------------------------------------------


@each_family
def test_get_returns_the_row_and_answers_400_or_404_for_bad_ids(family, admin_client, org_admin):
    requires(family, "get")
    row = make(family, org_admin.organization)
    body = assert_error(
        call(admin_client, family, "get", {family.id_field: str(row.pk), "no_such_field": [1]}),
        400,
        "unknown_field",
    )
    assert "no_such_field" in body["fields"]
    for key in (family.id_field, "id"):
        body = ok(call(admin_client, family, "get", {key: str(row.pk)}))
        assert ident(family, body) == str(row.pk)
        assert row_of(family, body)["title"] == row.title
        assert row_of(family, body)["version"] == row.version

    body = assert_error(call(admin_client, family, "get", {}), 400, "invalid")
    assert family.id_field in body["fields"]
    for bad in ("not-a-uuid", 42, ["x"], {"a": 1}, True):
        body = assert_error(call(admin_client, family, "get", {family.id_field: bad}), 400)
        assert family.id_field in body["fields"], bad
    assert_error(call(admin_client, family, "get", {"id": str(uuid.uuid4())}), 404, "not_found")


@each_family
def test_every_op_that_takes_an_id_answers_404_for_another_organizations_row(
    family, admin_client, org_admin, outsider_client
):
    requires(family, "get")
    row = make(family, org_admin.organization)
    pk, version = str(row.pk), row.version
    bodies = {
        "get": {family.id_field: pk},
        "title": {family.id_field: pk, "title": "Taken over"},
        "context": {family.id_field: pk},
        "problem": {family.id_field: pk},
        "draft": {family.id_field: pk, "version": version, "data": {"title": "Taken over"}},
        "publish": {family.id_field: pk, "version": version, "data": {"title": "Taken over"}},
        "archive": {family.ids_field: [pk]},
        "docs": {"entity_id": pk},
    }
    mounted = set(op_table()[family.name])
    for op, body in bodies.items():
        if op not in mounted:
            continue
        assert_error(call(outsider_client, family, op, body), 404, "not_found")
    title = row.title
    row.refresh_from_db()
    assert (row.title, row.archived, row.version) == (title, False, version)
    # The same id is fine for its own organization: the 404 is about tenancy, not the id.
    assert ident(family, ok(call(admin_client, family, "get", {"id": pk}))) == pk


# -- search ---------------------------------------------------------------------------------------


@each_family
def test_search_lists_the_organizations_rows_with_counts(family, admin_client, org_admin, outsider):
    requires(family, "search")
    theirs = make(family, outsider.organization)
    assert ok(call(admin_client, family, "search"))["total_count"] == 0
    if has_filter(family, "ids"):
        body = ok(call(admin_client, family, "search", {"ids": [str(theirs.pk)]}))
        assert body["total_count"] == 0 and items(family, body) == []

    rows = [make(family, org_admin.organization) for _ in range(3)]
    body = ok(call(admin_client, family, "search"))
    assert body["actor_name"] == org_admin.name
    assert {ident(family, item) for item in items(family, body)} == live_ids(
        family, org_admin.organization
    )
    assert {str(row.pk) for row in rows} <= live_ids(family, org_admin.organization)
    assert body["total_count"] == len(live_ids(family, org_admin.organization))
    for facet in family.facets:
        assert set(body[f"{facet.name}_filter"]) == {"options", "selected"}


@each_family
def test_search_pages_and_names_ill_typed_fields(family, admin_client, org_admin):
    requires(family, "search")
    for _ in range(5):
        make(family, org_admin.organization)
    everything = live_ids(family, org_admin.organization)
    seen = []
    for page in range(3):
        body = ok(call(admin_client, family, "search", {"page_size": 2, "page": page}))
        assert body["total_count"] == len(everything)
        seen.extend(ident(family, item) for item in items(family, body))
    assert len(seen) == len(set(seen)) == len(everything) and set(seen) == everything
    by_offset = ok(call(admin_client, family, "search", {"page_size": 2, "page_offset": 2}))
    assert [ident(family, item) for item in items(family, by_offset)] == seen[2:4]

    for body, field in (
        ({"page_size": "many"}, "page_size"),
        ({"page_size": 0}, "page_size"),
        ({"page": -1}, "page"),
        ({"page": 2**31}, "page"),
        ({"page_offset": 2**63}, "page_offset"),
        ({"is_archived": "perhaps"}, "is_archived"),
    ):
        assert field in assert_error(call(admin_client, family, "search", body), 400)["fields"]
    if has_filter(family, "ids"):
        body = assert_error(call(admin_client, family, "search", {"ids": ["nope"]}), 400)
        assert "ids" in body["fields"]


@each_family
def test_search_hides_archived_rows_unless_asked(family, admin_client, org_admin):
    requires(family, "search")
    live = make(family, org_admin.organization)
    archived = make(family, org_admin.organization)
    family.model.objects.filter(pk=archived.pk).update(archived=True)

    def ids(body: dict) -> set[str]:
        return {
            ident(family, item)
            for item in items(family, ok(call(admin_client, family, "search", body)))
        }

    assert str(live.pk) in ids({}) and str(archived.pk) not in ids({})
    assert str(archived.pk) not in ids({"is_archived": False})
    only_archived = ids({"is_archived": True})
    assert str(archived.pk) in only_archived and str(live.pk) not in only_archived
    assert {str(live.pk), str(archived.pk)} <= ids({"show_archived": True})


@each_family
def test_facet_counts_ignore_their_own_filter_and_apply_the_others(family, admin_client, org_admin):
    requires(family, "search")
    attrs = facet_attrs(family)
    if not attrs:
        pytest.skip(f"{family.name} has no facet over a foreign key")
    org = org_admin.organization
    first = make(family, org, title="Quokka one")
    second = make(family, org, title="Wombat two", **{a: getattr(first, a) for a in attrs.values()})
    third = make(family, org, title="Quokka three")
    attrs = {
        facet: attr
        for facet, attr in attrs.items()
        if None not in (getattr(first, facet.field), getattr(third, facet.field))
        and getattr(first, facet.field) != getattr(third, facet.field)
    }
    if not attrs:
        pytest.skip(f"{family.name}'s factory leaves its facets empty or shared")

    for facet in attrs:
        value, elsewhere = str(getattr(first, facet.field)), str(getattr(third, facet.field))
        body = ok(call(admin_client, family, "search", {facet.param: [value]}))
        assert {ident(family, item) for item in items(family, body)} == {
            str(first.pk),
            str(second.pk),
        }
        own = body[f"{facet.name}_filter"]
        assert counts(own) == {value: 2, elsewhere: 1}, facet.name
        assert own["selected"] == [value]
        for other in attrs:
            if other is not facet:
                section = body[f"{other.name}_filter"]
                assert counts(section) == {str(getattr(first, other.field)): 2}, other.name

        if has_filter(family, "search"):
            body = ok(
                call(admin_client, family, "search", {facet.param: [value], "search": "quokka"})
            )
            assert body["total_count"] == 1
            assert counts(body[f"{facet.name}_filter"]) == {value: 1, elsewhere: 1}


@each_family
def test_search_runs_the_same_queries_for_1_and_11_rows(
    family, admin_client, org_admin, django_assert_max_num_queries
):
    requires(family, "search")
    make(family, org_admin.organization)
    ok(call(admin_client, family, "search"))  # first request of a session books the session
    with CaptureQueriesContext(connection) as one_row:
        body = ok(call(admin_client, family, "search", {"page_size": 50}))
    assert len(items(family, body)) == 1
    for _ in range(10):
        make(family, org_admin.organization)
    with django_assert_max_num_queries(len(one_row)):
        body = ok(call(admin_client, family, "search", {"page_size": 50}))
    assert len(items(family, body)) == 11


# -- archive --------------------------------------------------------------------------------------


@each_family
def test_archive_by_ids_then_unarchive_and_400_without_a_selection(family, admin_client, org_admin):
    requires(family, "archive")
    rows = [make(family, org_admin.organization) for _ in range(3)]
    ids = [str(row.pk) for row in rows[:2]]
    body = ok(call(admin_client, family, "archive", {family.ids_field: ids}))
    assert body["updated_count"] == 2
    assert live_ids(family, org_admin.organization).isdisjoint(ids)
    assert str(rows[2].pk) in live_ids(family, org_admin.organization)
    archived = family.model.objects.get(pk=rows[0].pk)
    assert archived.archived_at is not None and archived.version == rows[0].version + 1
    # Already archived rows are not counted again.
    assert ok(call(admin_client, family, "archive", {"ids": ids}))["updated_count"] == 0
    body = ok(call(admin_client, family, "archive", {"ids": ids[:1], "archived": False}))
    assert body["updated_count"] == 1
    assert family.model.objects.get(pk=rows[0].pk).archived_at is None

    body = assert_error(call(admin_client, family, "archive", {}), 400)
    assert family.ids_field in body["fields"]


@each_family
def test_archive_all_with_filters_minus_excluded_ids_updates_exactly_those_rows(
    family, admin_client, org_admin, outsider
):
    requires(family, "archive")
    if not has_filter(family, "search"):
        pytest.skip(f"{family.name} has no text filter")
    org = org_admin.organization
    one, two, three = (make(family, org, title=f"Quokka {n}") for n in (1, 2, 3))
    other = make(family, org, title="Wombat")
    theirs = make(family, outsider.organization, title="Quokka abroad")

    body = ok(
        call(
            admin_client,
            family,
            "archive",
            {"all": True, "filter_search": "quokka", "excluded_ids": [str(two.pk)]},
        )
    )
    assert body["updated_count"] == 2
    archived = set(family.model.objects.filter(archived=True).values_list("pk", flat=True))
    assert archived == {one.pk, three.pk}
    assert not family.model.objects.get(pk=theirs.pk).archived
    assert not family.model.objects.get(pk=other.pk).archived

    # The unprefixed filter spelling selects the same way.
    body = ok(
        call(
            admin_client,
            family,
            "archive",
            {"all": True, "archived": False, "search": "quokka", "excluded_ids": [str(three.pk)]},
        )
    )
    assert body["updated_count"] == 1
    assert set(family.model.objects.filter(archived=True).values_list("pk", flat=True)) == {
        three.pk
    }


@each_family
def test_archive_all_with_a_facet_filter(family, admin_client, org_admin):
    requires(family, "archive")
    attrs = facet_attrs(family)
    if not attrs:
        pytest.skip(f"{family.name} has no facet over a foreign key")
    facet, attr = next(iter(attrs.items()))
    org = org_admin.organization
    first = make(family, org)
    kept = make(family, org, **{attr: getattr(first, attr)})
    also = make(family, org, **{attr: getattr(first, attr)})
    elsewhere = make(family, org)
    body = {
        "all": True,
        f"filter_{facet.param}": [str(getattr(first, facet.field))],
        "excluded_ids": [str(kept.pk)],
    }
    assert ok(call(admin_client, family, "archive", body))["updated_count"] == 2
    archived = set(family.model.objects.filter(archived=True).values_list("pk", flat=True))
    assert archived == {first.pk, also.pk}
    assert elsewhere.pk not in archived


@each_family
def test_archive_is_refused_to_roles_that_may_not_write(family, org_admin, make_client):
    requires(family, "archive")
    learner = ProfileFactory(role="learner", organization=org_admin.organization)
    if family.can_write(learner):
        pytest.skip(f"learners may write {family.plural}")
    row = make(family, org_admin.organization)
    response = call(make_client(learner), family, "archive", {"all": True})
    assert response.status_code in (403, 404), response.content
    assert_error(response, response.status_code)
    assert not family.model.objects.get(pk=row.pk).archived


# -- drafts, publish, title: optimistic concurrency ------------------------------------------------


def editable(family: Family) -> None:
    if family.write_serializer is None:
        pytest.skip(f"{family.plural} are not edited through drafts")


@each_family
def test_draft_then_publish_applies_the_edit_and_bumps_the_version(
    family, admin_client, org_admin, make_client
):
    requires(family, "draft", "drafts", "publish")
    editable(family)
    row = make(family, org_admin.organization)
    saved = ok(
        call(
            admin_client,
            family,
            "draft",
            {family.id_field: str(row.pk), "version": row.version, "data": {"title": "Drafted"}},
        )
    )
    assert saved[family.id_field] == str(row.pk) and saved["version"] == row.version
    assert family.model.objects.get(pk=row.pk).title == row.title  # not published yet

    merged = ok(
        call(
            admin_client,
            family,
            "draft",
            {"draft_id": saved["draft_id"], "version": row.version, "data": {"description": "New"}},
        )
    )
    assert merged["draft_id"] == saved["draft_id"]
    drafts = ok(call(admin_client, family, "drafts"))
    assert drafts["total_count"] == 1
    assert drafts["drafts"][0]["data"] == {"title": "Drafted", "description": "New"}
    colleague = make_client(ProfileFactory(role="admin", organization=org_admin.organization))
    assert ok(call(colleague, family, "drafts"))["total_count"] == 0
    assert_error(call(colleague, family, "publish", {"draft_id": saved["draft_id"]}), 404)

    published = ok(call(admin_client, family, "publish", {"draft_id": saved["draft_id"]}))
    assert published["title"] == "Drafted" and published["version"] == row.version + 1
    fresh = family.model.objects.get(pk=row.pk)
    assert (fresh.title, fresh.description, fresh.version) == ("Drafted", "New", row.version + 1)
    assert ok(call(admin_client, family, "drafts"))["total_count"] == 0


@each_family
def test_draft_and_publish_refuse_what_the_database_cannot_store(family, admin_client, org_admin):
    """A version beyond its 32-bit column, or U+0000 (which jsonb cannot hold): 400, not 500."""
    requires(family, "draft", "publish")
    editable(family)
    row = make(family, org_admin.organization)
    pk = str(row.pk)
    for op in ("draft", "publish"):
        for body, field in (
            ({family.id_field: pk, "version": 2**31, "data": {"title": "Big"}}, "version"),
            ({family.id_field: pk, "version": row.version, "data": {"title": "a\x00b"}}, "data"),
            ({family.id_field: pk, "version": row.version, "data": {"k\x00": [1]}}, "data"),
        ):
            error = assert_error(call(admin_client, family, op, body), 400, "invalid")
            assert field in error["fields"], (op, body)
    assert family.model.objects.get(pk=row.pk).version == row.version


@each_family
def test_a_stale_version_answers_409_with_the_current_version(family, admin_client, org_admin):
    requires(family, "publish", "draft", "title")
    editable(family)
    row = make(family, org_admin.organization)
    pk, stale = str(row.pk), row.version
    first = ok(
        call(
            admin_client,
            family,
            "publish",
            {family.id_field: pk, "version": stale, "data": {"title": "First"}},
        )
    )
    assert first["version"] == stale + 1

    attempts = {
        "publish": {family.id_field: pk, "version": stale, "data": {"title": "Second"}},
        "draft": {family.id_field: pk, "version": stale, "data": {"title": "Second"}},
        "title": {family.id_field: pk, "version": stale, "title": "Second"},
    }
    for op, body in attempts.items():
        error = assert_error(call(admin_client, family, op, body), 409, "version_conflict")
        assert error["current_version"] == stale + 1, op
    row.refresh_from_db()
    assert (row.title, row.version) == ("First", stale + 1)


@each_family
def test_publishing_a_draft_of_an_outdated_row_is_409_and_keeps_the_draft(
    family, admin_client, org_admin
):
    requires(family, "draft", "drafts", "publish", "title")
    editable(family)
    row = make(family, org_admin.organization)
    draft = ok(
        call(
            admin_client,
            family,
            "draft",
            {family.id_field: str(row.pk), "version": row.version, "data": {"title": "Mine"}},
        )
    )
    ok(call(admin_client, family, "title", {family.id_field: str(row.pk), "title": "Theirs"}))
    error = assert_error(
        call(admin_client, family, "publish", {"draft_id": draft["draft_id"]}), 409
    )
    assert error["current_version"] == row.version + 1
    assert family.model.objects.get(pk=row.pk).title == "Theirs"
    assert ok(call(admin_client, family, "drafts"))["total_count"] == 1


@each_family
def test_title_reads_and_sets(family, admin_client, org_admin):
    requires(family, "title")
    row = make(family, org_admin.organization)
    body = ok(call(admin_client, family, "title", {"id": str(row.pk)}))
    assert body == {family.id_field: str(row.pk), "title": row.title, "version": row.version}
    body = ok(call(admin_client, family, "title", {family.id_field: str(row.pk), "title": " New "}))
    assert body["title"] == "New" and body["version"] == row.version + 1
    assert family.model.objects.get(pk=row.pk).title == "New"
    blank = assert_error(
        call(admin_client, family, "title", {"id": str(row.pk), "title": "  "}), 400
    )
    assert "title" in blank["fields"]


# -- context, problem, refresh, docs --------------------------------------------------------------


@each_family
def test_context_problem_and_refresh(family, admin_client, org_admin):
    requires(family, "context", "problem", "refresh")
    row = make(family, org_admin.organization)
    context = ok(call(admin_client, family, "context", {"id": str(row.pk)}))
    assert context[family.id_field] == str(row.pk) and context["title"] == row.title
    assert row.title in context["context"] or row.description in context["context"]
    problem = ok(call(admin_client, family, "problem", {family.id_field: str(row.pk)}))
    assert problem[family.id_field] == str(row.pk)
    assert problem["ok"] is (not problem["problems"])
    for item in problem["problems"]:
        assert item["code"] and item["message"]
    refresh = ok(call(admin_client, family, "refresh"))
    assert refresh["success"] is True and family.name in refresh["invalidated_tags"]


@each_family
def test_docs_list_every_mounted_op_and_the_row_when_asked(family, admin_client, org_admin):
    requires(family, "docs")
    body = ok(call(admin_client, family, "docs"))
    assert body["name"] == family.name and body["type"] == "artifact"
    assert sorted(op["name"] for op in body["api_operations"]) == op_table()[family.name]
    assert body["artifact"] is None
    row = make(family, org_admin.organization)
    body = ok(call(admin_client, family, "docs", {"entity_id": str(row.pk)}))
    assert ident(family, body["artifact"]) == str(row.pk)
