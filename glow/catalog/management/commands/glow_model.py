"""`manage.py glow_model TITLE --base-url URL`: point a catalog Model at an OpenAI-compatible server.

Run Glow with GLOW_AI_MODEL=TITLE and persona replies, hints, grades and generation use it.
"""

from decimal import Decimal

from django.core.management.base import BaseCommand

from glow.catalog.models import StructuredOutput
from glow.catalog.services import model_configure


class Command(BaseCommand):
    help = "Create or update, in every organization, a Model served by an OpenAI-compatible server."

    def add_arguments(self, parser):
        parser.add_argument("title", help="The Model's title (what GLOW_AI_MODEL names).")
        parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080/v1")
        parser.add_argument("--provider-model", required=True, help="The server's model name.")
        parser.add_argument(
            "--structured-output",
            default="",
            choices=[value for value, _ in StructuredOutput.choices],
            help="How to ask for JSON; default: negotiate with the server.",
        )
        parser.add_argument("--api-key-env", default="", help="Env var holding the API key.")
        parser.add_argument("--input-price", type=Decimal, default=Decimal("0"))
        parser.add_argument("--output-price", type=Decimal, default=Decimal("0"))
        parser.add_argument("--description", default="")

    def handle(self, *args, **options):
        rows = model_configure(
            title=options["title"],
            base_url=options["base_url"],
            provider_model=options["provider_model"],
            structured_output=options["structured_output"],
            api_key_env=options["api_key_env"],
            input_price_per_million=options["input_price"],
            output_price_per_million=options["output_price"],
            description=options["description"],
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Model {options['title']!r} -> {options['base_url']} in {len(rows)} "
                f"organization(s). Serve with GLOW_AI_MODEL={options['title']!r}."
            )
        )
