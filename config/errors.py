"""Django's own error answers, as JSON for the API (/v1/, /metrics) in the shape of every other
error of the API (console.exception_handlers), and as pages elsewhere."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from console.exception_handlers import error_body

API_PREFIXES = ("/v1/", "/metrics")


def _api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


def _json(status: int, description: str) -> JsonResponse:
    return JsonResponse(error_body(status=status, description=description), status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _api(request):
        return _json(400, "Bad request.")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _api(request):
        return _json(403, "You do not have permission to perform this action.")
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _api(request):
        return _json(404, "Not found.")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _api(request):
        return _json(500, "Internal server error.")
    return defaults.server_error(request)
