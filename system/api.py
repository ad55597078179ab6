"""The `system` namespace (seed 003): sessions, groups, activity, export and refresh over the books."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.response import Response

from glow.core import serializers as shapes
from glow.core.exports import ExportResponse, export_body
from glow.core.ops import STAFF, op
from glow.core.viewsets import ArtifactViewSet
from system import exports, ledger, selectors
from system import serializers as s
from system.models import Session


class SystemRefreshResponse(shapes.RefreshResponse):
    session_count = serializers.IntegerField(help_text="Sessions whose counters were recomputed.")


class SystemViewSet(ArtifactViewSet):
    """Thin: every figure comes from system.selectors, shared with the staff pages."""

    def shape_context(self) -> dict:
        return {"request": self.request, "actor": self.actor}

    def current_session(self) -> Session | None:
        return getattr(self.request._request, "glow_session", None)

    @op("session", request=s.SessionRequest, response=s.SessionDetailOut)
    def session(self, request):
        """One session: its owner, counters, groups and chronological timeline (event_types
        narrows the timeline)."""
        data = self.parse()
        detail = selectors.session_detail(
            actor=self.actor,
            session_id=data.get("session_id") or data.get("id"),
            event_types=data.get("event_types"),
            current=self.current_session(),
        )
        return Response(s.SessionDetailOut(detail, context=self.shape_context()).data)

    @op("sessions", request=s.SessionsRequest, response=s.SessionsResponse)
    def sessions(self, request):
        """Sessions the actor may see, newest first (sort_order), with their counters."""
        page = selectors.session_list(actor=self.actor, params=self.parse())
        return Response(
            {
                "actor_name": self.actor.name,
                "sessions": s.SessionRowOut(page.rows, many=True).data,
                "total_count": page.total_count,
                "page_size": page.page.size,
                "page_offset": page.page.offset,
            }
        )

    @op("group", request=s.GroupRequest, response=s.GroupDetailResponse)
    def group(self, request):
        """One group's runs (model, tokens, cost, latency, status); include_detail adds their
        messages, output and events."""
        data = self.parse()
        group = selectors.group_access(actor=self.actor, group_id=data["group_id"])
        runs = selectors.group_runs(group=group, include_detail=data["include_detail"])
        shape = s.GroupDetailResponse if data["include_detail"] else s.GroupResponse
        return Response(shape({"group": group, "runs": runs}, context=self.shape_context()).data)

    @op("activity", request=s.ActivityRequest, response=s.ActivityResponse)
    def activity(self, request):
        """Sessions, attempts, runs, tokens and cost over a date range (default: 30 days), per
        person and per day."""
        data = self.parse()
        activity = selectors.activity_summary(
            actor=self.actor,
            start_date=data.get("start_date"),
            end_date=data.get("end_date"),
            profile_ids=data.get("profile_ids"),
        )
        return Response(s.ActivityResponse(activity, context=self.shape_context()).data)

    @op("export", request=s.ExportRequest, response=ExportResponse)
    def export(self, request):
        """A ZIP of one session's groups, runs, timeline and attempts (read it with file/download);
        audited on the timeline."""
        data = self.parse()
        session = selectors.session_access(actor=self.actor, session_id=data["target_session_id"])
        upload = exports.session_export(
            actor=self.actor, session=session, audit_session=self.current_session()
        )
        return Response(export_body(upload))

    @op(
        "refresh",
        request=s.RefreshRequest,
        response=SystemRefreshResponse,
        roles=STAFF,
    )
    def refresh(self, request):
        """Recompute the sessions' and groups' counters from their runs, repairing drift (staff)."""
        data = self.parse()
        sessions = selectors.sessions_to_refresh(
            actor=self.actor, session_id=data.get("session_id")
        )
        count = ledger.session_counters_refresh(sessions=sessions)
        return Response(
            {
                "success": True,
                "refreshed_views": ["system.group_counters", "system.session_counters"],
                "invalidated_tags": ["system", "sessions"],
                "session_count": count,
            }
        )
