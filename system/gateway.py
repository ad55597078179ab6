"""The AI gateway: the one path every model and speech call takes, each booked as a Run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from decimal import Decimal

from django.conf import settings

from glow.ai import (
    CompletionRequest,
    CompletionResult,
    ProviderError,
    Usage,
    cost_for,
    get_provider,
)
from glow.ai.speech import Speech, Transcription, speech_cost
from system.ledger import run_finish, run_mark_running, run_record_usage
from system.models import Run, RunStatus

# Cancellation is read from the database between chunks, but not more often than this.
CANCEL_POLL_SECONDS = 0.15


def provider_for(run: Run, *, kind: str = "chat"):
    """The run's chat (or speech) provider: local, or OpenAI at the run's model's endpoint with its
    key (the settings' when the model names none)."""
    model = run.model
    if run.provider != "openai":
        return get_provider(
            run.provider or "local", kind=kind, stream_delay=settings.GLOW_LOCAL_STREAM_DELAY
        )
    key_env = (model.api_key_env if model else "") or settings.GLOW_OPENAI_API_KEY_ENV
    connection = {
        "base_url": (model.base_url if model else "") or settings.GLOW_OPENAI_BASE_URL,
        "api_key": os.environ.get(key_env, ""),
        "timeout": settings.GLOW_OPENAI_TIMEOUT,
        "max_retries": settings.GLOW_OPENAI_MAX_RETRIES,
    }
    if kind == "speech":
        return get_provider(
            "openai",
            kind=kind,
            transcription_model=settings.GLOW_SPEECH_TRANSCRIPTION_MODEL,
            speech_model=settings.GLOW_SPEECH_MODEL,
            **connection,
        )
    return get_provider(
        "openai",
        structured_output=model.structured_output if model else None,
        max_in_flight=settings.GLOW_PROVIDER_MAX_IN_FLIGHT,
        **connection,
    )


def model_cost(*, model, usage: Usage) -> Decimal:
    """The exact cost of a call's usage at the catalog model's prices; no model: free."""
    if model is None:
        input_price, output_price = Decimal("0"), Decimal("0")
    else:
        input_price, output_price = model.input_price_per_million, model.output_price_per_million
    return cost_for(
        usage, input_price_per_million=input_price, output_price_per_million=output_price
    )


def _cancel_checker(run: Run) -> Callable[[], bool]:
    last = {"at": 0.0, "value": False}

    def should_cancel() -> bool:
        now = time.monotonic()
        if not last["value"] and now - last["at"] >= CANCEL_POLL_SECONDS:
            last["at"] = now
            last["value"] = Run.objects.filter(pk=run.pk, cancel_requested=True).exists()
        return last["value"]

    return should_cancel


def model_call(
    *,
    run: Run,
    request: CompletionRequest,
    stream: bool = False,
    on_delta: Callable[[str], None] | None = None,
    finish: bool = True,
) -> CompletionResult:
    """The one way to call a model: the run gets the tokens, cost, latency, status and any error.

    latency_ms is the call's own, request sent to last byte; a streamed call also records
    first_token_ms, request sent to its first delta. With finish=False the run stays open for
    more calls (a generation that makes several). Any error marks the run failed (keeping its
    message) and is raised again.
    """
    run_mark_running(run=run)
    provider = provider_for(run)
    if not request.model or request.model == "glow-local":
        request.model = run.provider_model or request.model
    Run.objects.filter(pk=run.pk).update(messages=request.messages[-50:])
    sent = time.perf_counter()
    first_token_ms = None
    try:
        if stream:
            chunks = provider.stream(request, should_cancel=_cancel_checker(run))
            for delta in chunks:
                if first_token_ms is None:
                    first_token_ms = round((time.perf_counter() - sent) * 1000)
                if on_delta is not None:
                    on_delta(delta)
            result = chunks.result
        else:
            result = provider.complete(request)
    except ProviderError as exc:
        run_finish(run=run, status=RunStatus.FAILED, error=str(exc), latency_ms=_since(sent))
        raise
    except Exception as exc:
        # Whatever broke (a delta consumer, a provider bug), the run must not stay "running".
        run_finish(
            run=run,
            status=RunStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            latency_ms=_since(sent),
        )
        raise
    latency_ms = _since(sent)
    cost = model_cost(model=run.model, usage=result.usage)
    run_record_usage(
        run=run,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        cost=cost,
    )
    if finish:
        status = RunStatus.CANCELLED if result.finish_reason == "cancelled" else RunStatus.SUCCEEDED
        run_finish(
            run=run,
            status=status,
            output=result.text,
            latency_ms=latency_ms,
            first_token_ms=first_token_ms,
        )
    else:
        Run.objects.filter(pk=run.pk).update(output=result.text, first_token_ms=first_token_ms)
    return result


def _since(sent: float) -> int:
    return round((time.perf_counter() - sent) * 1000)


def _speech_price_per_minute(run: Run) -> Decimal:
    # The local engines run on our own CPU: nothing to bill.
    if run.provider != "openai":
        return Decimal("0")
    return Decimal(str(settings.GLOW_SPEECH_PRICE_PER_MINUTE))


def speech_call(
    *,
    run: Run,
    audio: bytes | None = None,
    text: str | None = None,
    voice: str = "",
    mime_type: str = "audio/wav",
    language: str = "en",
    speed: float | None = None,
    finish: bool = True,
) -> Transcription | Speech:
    """The one way to call a speech model: transcribe `audio`, or speak `text`, as a Run.

    The run gets the seconds of audio (params["audio_seconds"], added up over calls), any
    tokens the server reports, the per-minute cost, latency and status. `params["speech_model"]`
    overrides the configured model. A provider error marks the run failed and is raised again.
    """
    if (audio is None) == (text is None):
        raise ValueError("speech_call takes either audio to transcribe or text to speak")
    run_mark_running(run=run)
    provider = provider_for(run, kind="speech")
    model = str(run.params.get("speech_model") or "")
    try:
        if audio is not None:
            result = provider.transcribe(audio, mime_type=mime_type, language=language, model=model)
            seconds, output = result.usage_seconds, result.text
        else:
            Run.objects.filter(pk=run.pk).update(messages=[{"role": "user", "content": text}])
            result = provider.synthesize(text, voice=voice, speed=speed, model=model)
            seconds, output = result.duration_seconds, ""
    except ProviderError as exc:
        run_finish(run=run, status=RunStatus.FAILED, error=str(exc))
        raise
    except Exception as exc:
        # Whatever broke, the run must not stay "running".
        run_finish(run=run, status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    run_record_usage(
        run=run,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        cost=speech_cost(seconds, price_per_minute=_speech_price_per_minute(run)),
    )
    audio_seconds = round(float(run.params.get("audio_seconds") or 0) + seconds, 3)
    run.params = {**run.params, "audio_seconds": audio_seconds}
    Run.objects.filter(pk=run.pk).update(params=run.params)
    if finish:
        run_finish(run=run, status=RunStatus.SUCCEEDED, output=output)
    elif output:
        Run.objects.filter(pk=run.pk).update(output=output)
    return result
