"""Tests of token counting and exact Decimal cost arithmetic."""

import random
import string
from decimal import Decimal

import pytest

from glow.ai import Usage, cost_for, count_tokens
from glow.ai.tokens import token_boundaries


def test_cost_is_exact_per_million_prices():
    usage = Usage(input_tokens=1_234_567, output_tokens=89_012)

    cost = cost_for(
        usage, input_price_per_million=Decimal("2.50"), output_price_per_million=Decimal("10.00")
    )

    # 3.0864175 + 0.89012 = 3.9765375, rounded half up at the sixth decimal.
    assert cost == Decimal("3.976538")
    assert cost.as_tuple().exponent == -6


def test_cost_rounds_half_up():
    one_token = Usage(input_tokens=1)

    assert cost_for(
        one_token, input_price_per_million=Decimal("0.5"), output_price_per_million=Decimal(0)
    ) == Decimal("0.000001")
    assert cost_for(
        one_token, input_price_per_million=Decimal("0.49"), output_price_per_million=Decimal(0)
    ) == Decimal("0.000000")


def test_cost_of_nothing_is_zero_and_sums_add_up():
    free = cost_for(
        Usage(), input_price_per_million=Decimal("3"), output_price_per_million=Decimal("15")
    )
    parts = [
        cost_for(
            Usage(input_tokens=400_000, output_tokens=0),
            input_price_per_million=Decimal("3"),
            output_price_per_million=Decimal("15"),
        )
        for _ in range(3)
    ]

    assert free == Decimal("0.000000")
    assert sum(parts) == Decimal("3.600000")


def test_cost_refuses_float_prices():
    with pytest.raises(TypeError):
        cost_for(Usage(1, 1), input_price_per_million=0.1, output_price_per_million=Decimal(1))


def test_usage_totals_and_adds():
    total = Usage(3, 4) + Usage(10, 20)

    assert total == Usage(13, 24)
    assert total.total_tokens == 37


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("Hello, world!", 4),
        ("I can't go", 5),
        ("internationalization", 3),
        ("12345", 2),
        ("   \n\t ", 0),
        ("日本語", 3),
    ],
)
def test_count_tokens(text, expected):
    assert count_tokens(text) == expected


def test_count_tokens_grows_with_text():
    sentence = "The student disputes the midterm grade because the rubric seemed unclear. "

    assert count_tokens(sentence * 10) == 10 * count_tokens(sentence)


def test_count_tokens_agrees_with_truncation_on_any_text():
    """Billing (count_tokens) and max_tokens (truncate_to_tokens) must count the same pieces."""
    alphabet = string.ascii_letters + string.digits + " _-.,!?'\"\n\téüß日本"
    rng = random.Random(20261202)
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        text += "x" * rng.choice([0, 0, 7, 8, 9, 17, 40])
        boundaries = list(token_boundaries(text))
        assert count_tokens(text) == (boundaries[-1][1] if boundaries else 0), text
