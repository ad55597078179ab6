"""Thin viewsets of the test, invocation and benchmark families: parse, call one service, serialize."""

from __future__ import annotations

from rest_framework.response import Response

from glow.core import serializers as shapes
from glow.core.exports import ExportResponse, export_body
from glow.core.ops import STAFF, op
from glow.core.viewsets import ArtifactViewSet
from system.ledger import session_for_request
from tests_app import (
    compare,
    exports,
    grading,
    invocations,
    keys,
    lifecycle,
    selectors,
    summaries,
)
from tests_app import serializers as s


class SessionMixin:
    @property
    def session(self):
        return session_for_request(request=self.request._request, actor=self.actor)


class TestViewSet(SessionMixin, ArtifactViewSet):
    @op("start", request=s.TestStartRequest, response=s.TestStartResponse, roles=STAFF)
    def start(self, request):
        """Create the test and one invocation per model x scenario x agent cell, then run them."""
        data = self.parse()
        test, _created = lifecycle.test_start(
            actor=self.actor,
            session=self.session,
            idempotency_key=request.headers.get("Idempotency-Key", "").strip()[:200],
            **data,
        )
        return Response(summaries.test_start_summary(test))

    @op("stop", request=s.TestRef, response=s.TestStopResponse, roles=STAFF)
    def stop(self, request):
        """Halt queued and running invocations; finished ones are kept; the test stays open."""
        data = self.parse()
        return Response(
            lifecycle.test_stop(actor=self.actor, session=self.session, test_id=data["pk"])
        )

    @op("grade", request=s.TestGradeRequest, response=s.GradeOut, roles=STAFF)
    def grade(self, request):
        """Grade one invocation: full: true gives the rubric's total points, or pass score."""
        data = self.parse()
        grade = grading.test_grade(actor=self.actor, **data)
        return Response(s.GradeOut(grade).data)

    @op("feedback", request=s.TestFeedbackRequest, response=s.FeedbackOut, roles=STAFF)
    def feedback(self, request):
        """Comment and score one standard group on one tool call under a grade (upserted)."""
        data = self.parse()
        return Response(s.FeedbackOut(grading.test_feedback(actor=self.actor, **data)).data)

    @op("decrypt", request=s.TestDecryptRequest, response=s.TestDecryptResponse, roles=STAFF)
    def decrypt(self, request):
        """Decrypt a key the invocation holds (403 otherwise); X-Bypass-Cache: 1 skips the cache."""
        data = self.parse()
        bypass = request.headers.get("X-Bypass-Cache", "").strip().lower() in {"1", "true", "yes"}
        return Response(
            keys.test_decrypt(actor=self.actor, session=self.session, bypass_cache=bypass, **data)
        )

    @op("complete", request=s.TestCompleteRequest, response=s.TestCompleteResponse, roles=STAFF)
    def complete(self, request):
        """Finalize the test: afterwards it and its invocations refuse writes. Idempotent."""
        data = self.parse()
        test = lifecycle.test_complete(
            actor=self.actor,
            session=self.session,
            test_id=data["pk"],
            message=data.get("message", ""),
        )
        return Response(summaries.test_completion_summary(test))

    @op("export", request=s.TestExportRequest, response=ExportResponse, needs_model=True)
    def export(self, request):
        """A ZIP of the test (view test) or its invocations with transcripts (view invocations)."""
        data = self.parse()
        upload = exports.test_export(
            actor=self.actor,
            session=self.session,
            test_id=data["pk"],
            view=data["view"],
            invocation_id=data.get("invocation_id"),
        )
        return Response(export_body(upload))

    @op("refresh", request=shapes.EmptyRequest, response=shapes.RefreshResponse, roles=STAFF)
    def refresh(self, request):
        """Re-copy each test's department from its eval where the eval moved (staff)."""
        return super().refresh(request)

    def refresh_views(self) -> list[str]:
        """Tests copy their eval's department: refresh re-copies it where the eval moved."""
        lifecycle.test_departments_refresh(actor=self.actor)
        return ["test.department"]

    @op("title", request=shapes.title_request, response=shapes.title_response, needs_model=True)
    def title(self, request):
        """Read or set a row's title (a completed test refuses a new one)."""
        return super().title(request)

    def retitle_write(self, **change):
        return lifecycle.test_retitle(**change)


class InvocationViewSet(ArtifactViewSet):
    disabled_ops = frozenset({"draft", "drafts", "publish", "title", "archive"})

    @op("get", request=s.InvocationRef, response=s.InvocationDetailOut, needs_model=True)
    def get_op(self, request):
        """One invocation with its transcript, tool calls and grade."""
        data = self.parse()
        return Response(self.output(self.access(data["pk"]), shape=s.InvocationDetailOut))

    @op("create", request=s.InvocationCreateRequest, response=s.InvocationOut, roles=STAFF)
    def create(self, request):
        """Add one cell to an open test and queue it."""
        invocation = invocations.invocation_create(actor=self.actor, **self.parse())
        return Response(self.output(invocation))

    @op("run", request=s.InvocationRef, response=s.InvocationOut, roles=STAFF)
    def run(self, request):
        """Queue a finished invocation to run again from the start."""
        data = self.parse()
        return Response(
            self.output(invocations.invocation_run(actor=self.actor, invocation_id=data["pk"]))
        )

    @op(
        "terminate",
        request=s.InvocationRef,
        response=s.InvocationTerminateResponse,
        roles=STAFF,
    )
    def terminate(self, request):
        """Halt one queued or running invocation."""
        data = self.parse()
        return Response(
            invocations.invocation_terminate(actor=self.actor, invocation_id=data["pk"])
        )

    @op("trace", request=s.InvocationRef, response=s.InvocationTraceResponse)
    def trace(self, request):
        """The ordered messages, tool calls, lifecycle events and model runs of one invocation."""
        data = self.parse()
        trace = selectors.invocation_trace(actor=self.actor, invocation_id=data["pk"])
        return Response(s.InvocationTraceResponse(trace).data)

    @op("complete", request=s.InvocationRef, response=s.InvocationOut, roles=STAFF)
    def complete(self, request):
        """Finalize one finished invocation."""
        data = self.parse()
        return Response(
            self.output(invocations.invocation_complete(actor=self.actor, invocation_id=data["pk"]))
        )


class BenchmarkViewSet(ArtifactViewSet):
    @op("get", request=s.BenchmarkRequest, response=s.BenchmarkResponse)
    def get_op(self, request):
        """The model x scenario x agent grid of a test with per-cell scores and per-axis means."""
        data = self.parse()
        grid = selectors.benchmark_grid(actor=self.actor, test_id=data["pk"])
        return Response(s.BenchmarkResponse(grid).data)

    @op(
        "compare",
        request=s.BenchmarkCompareRequest,
        response=s.BenchmarkCompareResponse,
        roles=STAFF,
    )
    def compare(self, request):
        """Two agents or two models over the same cells (mean paired difference, paired
        bootstrap 95% interval, sign and Wilcoxon p), or a test against its baseline test
        (regressions and improvements per cell and standard group beyond noise)."""
        data = self.parse()
        result = compare.benchmark_compare(
            actor=self.actor,
            test_id=data["test_id"],
            agent_ids=data.get("agent_ids"),
            model_ids=data.get("model_ids"),
            baseline_test_id=data.get("baseline_test_id"),
        )
        return Response(s.BenchmarkCompareResponse(result).data)
