"""The ops attempts adds to the rubric family (catalog knows nothing of attempts)."""

from __future__ import annotations

from rest_framework.response import Response

from attempts import calibration
from attempts import serializers as shapes
from glow.core.errors import ApplicationError
from glow.core.ops import STAFF, op
from glow.core.registry import registry
from glow.core.selectors import artifact_access


def calibration_for(*, actor, rubric_id, simulation_id=None, kappa_threshold=None, min_n=None):
    """The calibration report of a rubric the actor may see (another organization's: 404); the
    op and the staff page admit staff only."""
    rubric = artifact_access(actor=actor, family=registry.get("rubric"), pk=rubric_id)
    simulation = None
    if simulation_id is not None:
        simulation = artifact_access(
            actor=actor, family=registry.get("simulation"), pk=simulation_id
        )
        if simulation.rubric_id != rubric.pk:
            raise ApplicationError(
                "That simulation grades with another rubric.",
                fields={"simulation_id": ["Not graded with this rubric."]},
            )
    return calibration.rubric_calibration(
        rubric=rubric, simulation=simulation, kappa_threshold=kappa_threshold, min_n=min_n
    )


class RubricCalibrationOps:
    @op(
        "calibration",
        request=shapes.RubricCalibrationRequest,
        response=shapes.RubricCalibrationResponse,
        roles=STAFF,
    )
    def calibration(self, request):
        """Judge-vs-human agreement per criterion and overall: n, exact and adjacent agreement,
        quadratic-weighted kappa with a bootstrap 95% interval, confusion matrix, calibrated."""
        data = self.parse()
        report = calibration_for(
            actor=self.actor,
            rubric_id=data["rubric_id"],
            simulation_id=data.get("simulation_id"),
            kappa_threshold=data.get("kappa_threshold"),
            min_n=data.get("min_n"),
        )
        return Response(shapes.RubricCalibrationResponse(report).data)


def register() -> None:
    registry.get("rubric").extra.setdefault("op_mixins", []).append(RubricCalibrationOps)
