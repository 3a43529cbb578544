"""Ordinary Django views, untouched by the move to Switchroom."""

import hashlib

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

DOWNLOAD_PART = b"0123456789abcdef" * 4096  # 64 KiB


def hello(request: HttpRequest) -> HttpResponse:
    """Say who answered, and what arrived."""
    answer = {"served_by": "channels-1", "method": request.method, "path": request.path}
    return JsonResponse({**answer, "query": request.GET.dict()})


def echo(request: HttpRequest) -> HttpResponse:
    """Describe the request body, so a test can check a large upload arrived whole."""
    body = request.body
    digest = hashlib.sha256(body).hexdigest()
    return JsonResponse({"served_by": "channels-1", "length": len(body), "sha256": digest})


def download(request: HttpRequest) -> HttpResponse:
    """A streamed response of ``parts`` × 64 KiB, which Channels sends as several chunk messages."""
    parts = int(request.GET.get("parts", "1"))
    chunks = (DOWNLOAD_PART for _ in range(parts))
    return StreamingHttpResponse(chunks, content_type="application/octet-stream")
