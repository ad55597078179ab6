"""OpenAPI security schemes for API keys: the docs page offers X-Api-Key and Bearer."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "glow.accounts.auth.ApiKeyAuthentication"
    name = ["ApiKeyHeader", "ApiKeyBearer"]

    def get_security_requirement(self, auto_schema):
        # Either header works: a list means OR in OpenAPI.
        return [{"ApiKeyHeader": []}, {"ApiKeyBearer": []}]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            {
                "type": "http",
                "scheme": "bearer",
                "description": "The same API key as a bearer token.",
            },
        ]
