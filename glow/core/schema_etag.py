"""ETag and 304 for the OpenAPI schema: it is fixed per deploy, so the CLI revalidates its copy."""

import hashlib
from functools import wraps

from django.views.decorators.http import etag

# The tag of each representation served by this process: (path, query string, Accept) -> ETag.
_tags: dict[tuple[str, str, str], str] = {}


def _key(request) -> tuple[str, str, str]:
    return request.path, request.META.get("QUERY_STRING", ""), request.headers.get("Accept", "")


def _known_tag(request, *args, **kwargs) -> str | None:
    return _tags.get(_key(request))


def with_etag(view):
    """`view` answers 304 to an If-None-Match of the tag its last 200 carried in this process."""

    @wraps(view)
    def tagged(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if request.method in ("GET", "HEAD") and response.status_code == 200:
            if hasattr(response, "render"):
                response.render()
            tag = hashlib.sha256(response.content).hexdigest()[:32]
            _tags[_key(request)] = tag
            response["ETag"] = f'"{tag}"'
        return response

    return etag(_known_tag)(tagged)
