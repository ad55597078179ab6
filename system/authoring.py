"""Staff authoring pages: personas and rubrics edited as rows (traits; groups and criteria), not
JSON, published and archived through the same services, permission and version check as the API.

The row lists work without script: Add, Remove, Move up and Move down are submit buttons the
server applies to the posted rows and renders again (nothing is saved until Publish). A form
carries the version it was opened at and the values it showed; publishing over a newer version
answers "someone changed it" with what changed, and keeps what was typed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import transaction
from django.http import QueryDict
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from rest_framework.exceptions import ValidationError as InputError

from glow.accounts.models import Department
from glow.core.errors import ApplicationError, ConflictError, PermissionDenied
from glow.core.registry import registry
from glow.core.routers import op_allows
from glow.core.selectors import artifact_access, artifact_queryset
from glow.core.services import (
    artifact_archive,
    artifact_archive_audit,
    artifact_create,
    artifact_update,
    conflict,
)
from system.staff import staff_page

AUTHORED = ("persona", "scenario", "rubric")
MAX_ROWS = 30


def _move(rows: list, op: str, index: int) -> list:
    rows = list(rows)
    if op == "remove" and 0 <= index < len(rows):
        rows.pop(index)
    elif op == "up" and 0 < index < len(rows):
        rows[index - 1], rows[index] = rows[index], rows[index - 1]
    elif op == "down" and 0 <= index < len(rows) - 1:
        rows[index], rows[index + 1] = rows[index + 1], rows[index]
    return rows


def _op(post) -> tuple[str, str, int]:
    """("add"|"remove"|"up"|"down", row kind, index) from the pressed row button, if any."""
    parts = (post.get("row") or "").split(":")
    if len(parts) == 3 and parts[2].lstrip("-").isdigit():
        return parts[0], parts[1], int(parts[2])
    return "", "", -1


# -- persona ----------------------------------------------------------------------------------


def persona_values(row) -> dict:
    return {
        "title": row.title,
        "description": row.description,
        "traits": list(row.traits or []),
        "intensity": row.intensity,
        "voice": row.voice,
        "department": str(row.department_id) if row.department_id else "",
    }


def persona_posted(post) -> dict:
    traits = [t.strip() for t in post.getlist("traits")]
    op, kind, index = _op(post)
    if kind == "trait":
        traits = [*traits, ""] if op == "add" else _move(traits, op, index)
    if not traits:
        traits = [""]  # one empty row to type into
    return {
        "title": post.get("title", "").strip(),
        "description": post.get("description", "").strip(),
        "traits": traits[:MAX_ROWS],
        "intensity": post.get("intensity") or 5,
        "voice": post.get("voice", "").strip(),
        "department": post.get("department") or "",
    }


def persona_data(values: dict) -> dict:
    return {
        "title": values["title"],
        "description": values["description"],
        "traits": [t for t in values["traits"] if t],
        "intensity": values["intensity"],
        "voice": values["voice"],
        "department": values["department"] or None,
    }


# -- rubric -----------------------------------------------------------------------------------


def rubric_values(row) -> dict:
    return {
        "title": row.title,
        "description": row.description,
        "department": str(row.department_id) if row.department_id else "",
        "groups": [
            {
                "name": group["name"],
                "standards": [
                    {"name": s["name"], "description": s["description"], "points": s["points"]}
                    for s in group["standards"]
                ],
            }
            for group in row.structure()
        ],
    }


def rubric_posted(post) -> dict:
    groups = [{"name": name.strip(), "standards": []} for name in post.getlist("group-name")]
    rows = zip(
        post.getlist("std-group"),
        post.getlist("std-name"),
        post.getlist("std-description"),
        post.getlist("std-points"),
        strict=False,
    )
    for group_index, name, description, points in rows:
        if group_index.isdigit() and int(group_index) < len(groups):
            groups[int(group_index)]["standards"].append(
                {"name": name.strip(), "description": description.strip(), "points": points}
            )
    op, kind, index = _op(post)
    if kind == "group":
        if op == "add":
            groups.append({"name": "", "standards": [{"name": "", "description": "", "points": 1}]})
        else:
            groups = _move(groups, op, index)
    elif kind.startswith("std") and kind[3:].isdigit() and int(kind[3:]) < len(groups):
        group = groups[int(kind[3:])]
        if op == "add":
            group["standards"].append({"name": "", "description": "", "points": 1})
        else:
            group["standards"] = _move(group["standards"], op, index)
    if not groups and not post:
        groups = [{"name": "", "standards": [{"name": "", "description": "", "points": 1}]}]
    return {
        "title": post.get("title", "").strip(),
        "description": post.get("description", "").strip(),
        "department": post.get("department") or "",
        "groups": groups[:MAX_ROWS],
    }


def rubric_data(values: dict) -> dict:
    return {
        "title": values["title"],
        "description": values["description"],
        "department": values["department"] or None,
        "groups": [
            {
                "name": group["name"],
                "standards": [
                    {
                        "name": s["name"],
                        "description": s["description"],
                        "points": s["points"] or 0,
                    }
                    for s in group["standards"]
                    if s["name"]
                ],
            }
            for group in values["groups"]
            if group["name"]
        ],
    }


# -- scenario ---------------------------------------------------------------------------------

OPTION_IDS = "abcdefghijklmnopqrstuvwxyz"


def _question_rows(questions) -> list[dict]:
    """Questions as rows: the text, options one per line with "*" before the correct ones."""
    rows = []
    for question in questions or []:
        correct = set(question.get("correct_option_ids") or [])
        lines = [
            ("* " if option.get("id") in correct else "") + option.get("text", "")
            for option in question.get("options") or []
        ]
        rows.append(
            {
                "id": question.get("id", ""),
                "text": question.get("text", ""),
                "options": "\n".join(lines),
            }
        )
    return rows


def scenario_values(row) -> dict:
    return {
        "title": row.title,
        "description": row.description,
        "context": row.context,
        "persona": str(row.persona_id) if row.persona_id else "",
        "department": str(row.department_id) if row.department_id else "",
        "questions": _question_rows(row.questions),
    }


def scenario_posted(post) -> dict:
    questions = [
        {"id": qid, "text": text.strip(), "options": options.strip()}
        for qid, text, options in zip(
            post.getlist("q-id"), post.getlist("q-text"), post.getlist("q-options"), strict=False
        )
    ]
    op, kind, index = _op(post)
    if kind == "question":
        if op == "add":
            taken = {q["id"] for q in questions}
            number = next(n for n in range(1, MAX_ROWS + 2) if f"q{n}" not in taken)
            questions.append({"id": f"q{number}", "text": "", "options": ""})
        else:
            questions = _move(questions, op, index)
    return {
        "title": post.get("title", "").strip(),
        "description": post.get("description", "").strip(),
        "context": post.get("context", "").strip(),
        "persona": post.get("persona") or "",
        "department": post.get("department") or "",
        "questions": questions[:MAX_ROWS],
    }


def scenario_data(values: dict) -> dict:
    questions = []
    for row in values["questions"]:
        if not row["text"]:
            continue
        lines = [line.strip() for line in row["options"].splitlines() if line.strip()]
        options, correct = [], []
        for position, line in enumerate(lines[: len(OPTION_IDS)]):
            option_id = OPTION_IDS[position]
            if line.startswith("*"):
                correct.append(option_id)
                line = line.lstrip("* ").strip()
            options.append({"id": option_id, "text": line})
        questions.append(
            {
                "id": row["id"],
                "text": row["text"],
                "options": options,
                "correct_option_ids": correct,
            }
        )
    return {
        "title": values["title"],
        "description": values["description"],
        "context": values["context"],
        "persona": values["persona"] or None,
        "department": values["department"] or None,
        "questions": questions,
    }


@dataclass(frozen=True)
class Authored:
    values: callable
    posted: callable
    data: callable
    template: str


AUTHORING = {
    "persona": Authored(persona_values, persona_posted, persona_data, "staff/author_persona.html"),
    "scenario": Authored(
        scenario_values, scenario_posted, scenario_data, "staff/author_scenario.html"
    ),
    "rubric": Authored(rubric_values, rubric_posted, rubric_data, "staff/author_rubric.html"),
}


def changes(base: dict, current: dict) -> list[tuple[str, str, str]]:
    """(field, value the form started from, value saved now) for every field that differs."""
    return [
        (name, _show(base.get(name)), _show(current.get(name)))
        for name in current
        if base.get(name) != current.get(name)
    ]


def _show(value) -> str:
    if isinstance(value, list):
        return "; ".join(
            _show(item) if not isinstance(item, dict) else item.get("name", "") for item in value
        )
    return "" if value is None else str(value)


def _errors(exc: InputError) -> list[str]:
    detail = exc.detail
    if isinstance(detail, dict):
        return [
            f"{name}: {json.dumps(errors, ensure_ascii=False)}" for name, errors in detail.items()
        ]
    return [str(detail)]


@staff_page
def catalog_list(request):
    families = []
    for name in AUTHORED:
        family = registry.get(name)
        rows = list(
            artifact_queryset(actor=request.actor, family=family).order_by("archived", "title")[
                :200
            ]
        )
        families.append((family, rows))
    return render(
        request,
        "staff/catalog.html",
        {
            "families": families,
            "may_write": all(op_allows(n, "publish", request.actor) for n in AUTHORED),
            "actor": request.actor,
        },
    )


@staff_page
def author(request, family_name: str, pk=None):
    family = registry.get(family_name)
    spec = AUTHORING[family_name]
    actor = request.actor
    row = artifact_access(actor=actor, family=family, pk=pk) if pk else None
    if family_name == "rubric" and row is not None:
        row = family.model.objects.for_api().get(pk=row.pk)
    saved = spec.values(row) if row else None
    values = saved or spec.posted(QueryDict())
    version = row.version if row else 0
    base = saved
    errors: list[str] = []
    stale: list = []
    notice = request.GET.get("done")
    if request.method == "POST":
        values = spec.posted(request.POST)
        version = int(request.POST.get("version") or 0)
        try:
            base = json.loads(request.POST.get("base") or "null")
        except ValueError:
            base = None
        # A row button only rearranges the form; nothing is saved with it.
        action = None if request.POST.get("row") else request.POST.get("action")
        try:
            if action == "publish":
                if row is None:
                    created = artifact_create(actor=actor, family=family, data=spec.data(values))
                    return redirect(_url(family_name, created.pk, "published"))
                artifact_update(
                    actor=actor, family=family, pk=row.pk, version=version, data=spec.data(values)
                )
                return redirect(_url(family_name, row.pk, "published"))
            if action in ("archive", "unarchive") and row is not None:
                _archive(
                    actor=actor, family=family, row=row, version=version, on=action == "archive"
                )
                return redirect(_url(family_name, row.pk, f"{action}d"))
        except ConflictError:
            row.refresh_from_db()
            if family_name == "rubric":
                row = family.model.objects.for_api().get(pk=row.pk)
            stale = changes(base or {}, spec.values(row))
            errors.append(
                f"Someone changed this {family.label} since you opened it (now version "
                f"{row.version}). Your edits are kept below; publish again to replace theirs."
            )
            version = row.version
            base = spec.values(row)
        except InputError as exc:
            errors.extend(_errors(exc))
        except (ApplicationError, PermissionDenied) as exc:
            errors.append(exc.detail)
    return render(
        request,
        spec.template,
        {
            "family": family,
            "row": row,
            "values": values,
            "version": version,
            "base": json.dumps(base) if base is not None else "",
            "errors": errors,
            "stale": stale,
            "notice": notice,
            "may_write": op_allows(family, "publish", actor),
            "departments": Department.objects.filter(organization_id=actor.organization_id),
            "personas": artifact_queryset(
                actor=actor, family=registry.get("persona"), include_archived=False
            ).order_by("title")
            if family_name == "scenario"
            else [],
            "try_url": _try_url(family_name, row),
            "actor": actor,
        },
    )


@transaction.atomic
def _archive(*, actor, family, row, version: int, on: bool) -> None:
    """Archive or restore one row, refusing a stale form like publish does."""
    if not op_allows(family, "archive", actor):
        raise PermissionDenied(f"Your role may not change {family.plural}.")
    selection = family.model.objects.filter(pk=row.pk, version=version)
    if not selection.exists():
        raise conflict(family=family, pk=row.pk)
    count = artifact_archive(selection=selection, archived=on)
    artifact_archive_audit(actor=actor, family=family, archived=on, count=count, ids=[row.pk])


def _try_url(family_name: str, row) -> str | None:
    """Where "Try it" posts, when an app (attempts) contributes the page for this family."""
    if row is None:
        return None
    try:
        return reverse(f"staff-{family_name}-try", kwargs={"pk": row.pk})
    except NoReverseMatch:
        return None


def _url(family_name: str, pk, done: str) -> str:
    return f"{reverse('staff-author', kwargs={'family_name': family_name, 'pk': pk})}?done={done}"
