"""A model drafting a row is asked for text no longer than the row's column takes."""

import pytest

from glow.catalog import generators as g
from glow.catalog import models as m


@pytest.mark.parametrize(
    ("schema", "model"),
    [
        (g.PERSONA, m.Persona),
        (g.SCENARIO, m.Scenario),
        (g.RUBRIC, m.Rubric),
        (g.RUBRIC["properties"]["groups"]["items"], m.StandardGroup),
        (g.STANDARD, m.Standard),
        (g.AGENT, m.Agent),
        (g.TOOL, m.Tool),
        (g.FIELD, m.InputField),
    ],
)
def test_every_text_property_of_a_column_is_bounded_by_that_column(schema, model):
    columns = {field.name: field for field in model._meta.concrete_fields}
    bounded = 0
    for name, prop in schema["properties"].items():
        column = columns.get(name)
        if prop.get("type") == "string" and "enum" not in prop and column and column.max_length:
            assert prop["maxLength"] == column.max_length, name
            bounded += 1
    assert bounded, "each of these rows has a bounded text column the model fills"
