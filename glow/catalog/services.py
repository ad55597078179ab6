"""Catalog writes that are not the generic artifact ops: pointing a Model at a model server."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from glow.accounts.models import Organization
from glow.catalog.models import AIModel, Provider


@transaction.atomic
def model_configure(
    *,
    title: str,
    base_url: str,
    provider_model: str,
    structured_output: str = "",
    api_key_env: str = "",
    input_price_per_million: Decimal = Decimal("0"),
    output_price_per_million: Decimal = Decimal("0"),
    description: str = "",
) -> list[AIModel]:
    """Create or update, in every organization, the OpenAI-compatible Model called `title`."""
    rows = []
    for organization in Organization.objects.order_by("pk"):
        row, _ = AIModel.objects.update_or_create(
            organization=organization,
            title=title,
            archived=False,
            defaults={
                "provider": Provider.OPENAI,
                "provider_model": provider_model,
                "base_url": base_url,
                "structured_output": structured_output,
                "api_key_env": api_key_env,
                "input_price_per_million": input_price_per_million,
                "output_price_per_million": output_price_per_million,
                "description": description,
            },
        )
        rows.append(row)
    return rows
