"""Generation on an OpenAI-compatible server (vLLM, llama.cpp's server, Ollama, TGI,
`transformers serve`), behind the same scheduler as local generation.

Each job streams `/chat/completions` (chat mode) or `/completions` (complete mode) with
`max_tokens`, `seed`, and `temperature` and `top_p` where the member gave them. `num_return_sequences` becomes that many
streams rather than the API's `n`, which several servers refuse (`transformers serve`,
Ollama): the sequences arrive as separate streams, each with its own sequence index (and
seed + index when seeded, so they differ). Cancel closes the streams. A server that is down,
too slow between chunks, or gone mid-stream ends the job with a typed error whose message
a chat user understands; nothing waits without end.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ..specs.generation import ROLE, GenerationRequest, GenerationResult, Sampling
from .config import EngineConfig, ModelInfo
from .errors import EngineError, InvalidInput, ModelUnavailable, WorkerCrashed
from .request import Request, failure
from .scheduler import ExecutorInfo, JobEvents

log = logging.getLogger(__name__)

DOWN = "The text generation server is not reachable right now. Please try again later."
SLOW = "The text generation server is too slow to answer right now. Please try again later."
LOST = "The text generation server stopped while answering. Please try again."
REFUSED = "The text generation server refused this request (HTTP {status}); the bot's log says why."


class OpenAIGenerationExecutor:
    """The scheduler's Executor for generation units, on an OpenAI-compatible HTTP server."""

    task = GenerationRequest.task  # the one task it runs (backends.RoutingExecutor sends it those units)
    role = ROLE.name  # OPENAI_MODEL is this role's default model

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.info = ExecutorInfo(device=f"openai: {config.openai_base_url}", generation_batching="server")
        self._session: aiohttp.ClientSession | None = None
        self._jobs: dict[int, asyncio.Task] = {}

    async def start(self) -> None:
        # No read timeout for the whole stream (a long answer is fine), but one between chunks.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.config.openai_timeout, sock_read=self.config.openai_timeout
        )
        headers = {"Authorization": f"Bearer {self.config.openai_api_key}"} if self.config.openai_api_key else {}
        self._session = aiohttp.ClientSession(timeout=timeout, headers=headers)
        self.info.state = "running"
        # Held by the server, so its size is unknown here.
        self.info.models = (ModelInfo(self.config.openai_model, (self.role,), "server", 0.0),)

    async def close(self) -> None:
        for task in self._jobs.values():
            task.cancel()
        if self._session is not None:
            await self._session.close()
        self.info.state = "stopped"

    async def run(self, task: str, jobs: list[tuple[int, Request]], events: JobEvents) -> None:
        await asyncio.gather(*(self._job(job_id, request, events) for job_id, request in jobs))

    def cancel(self, job_id: int) -> None:
        if (task := self._jobs.get(job_id)) is not None:
            task.cancel()  # closes its streams; the scheduler has already answered the caller

    async def _job(self, job_id: int, request: GenerationRequest, events: JobEvents) -> None:
        task = asyncio.create_task(self._generate(job_id, request, events), name=f"openai-{job_id}")
        self._jobs[job_id] = task
        try:
            events.done(job_id, await task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # we are being cancelled ourselves (shutdown), not the job
        except EngineError as error:
            events.done(job_id, failure(error))
        finally:
            self._jobs.pop(job_id, None)

    async def _generate(self, job_id: int, request: GenerationRequest, events: JobEvents) -> GenerationResult:
        if request.continue_answer is not None:  # the chat API has no standard way to go on with an assistant message
            raise InvalidInput(
                "Continue is not available with this bot's text generation server. Regenerate, or ask again."
            )
        sequences = await asyncio.gather(
            *(self._stream(job_id, index, request, events) for index in range(request.num_return_sequences))
        )
        texts, new_tokens, reasons = zip(*sequences)
        return GenerationResult(
            prompt=request.prompt,
            texts=list(texts),
            new_tokens=list(new_tokens),
            finish_reasons=list(reasons),
            mode=request.mode,
            model=request.model or self.config.openai_model,
            # Every earlier turn is sent; the API does not say whether the server left any out to fit.
            turns_seen=len(request.history),
            sampling=Sampling(request.temperature, request.top_p, None, None),  # None: the server's
        )

    def body(self, request: GenerationRequest, index: int) -> dict[str, Any]:
        """The JSON of sequence `index`'s streaming request."""
        body: dict[str, Any] = {
            "model": request.model or self.config.openai_model,
            "stream": True,
            "max_tokens": request.max_new_tokens,
        }
        # Not given: the server's own default (its model's generation_config, for most). 0 is greedy.
        body.update({name: value for name in ("temperature", "top_p") if (value := getattr(request, name)) is not None})
        if request.seed is not None:
            body["seed"] = request.seed + index
        if request.mode == "chat":  # the server applies the chat template (and trims to its context, or refuses)
            body["messages"] = [
                *([{"role": "system", "content": request.system}] if request.system else []),
                *({"role": speaker, "content": text} for speaker, text in request.history),
                {"role": "user", "content": request.prompt},
            ]
        else:
            body["prompt"] = request.prompt
        return body

    async def _stream(
        self, job_id: int, index: int, request: GenerationRequest, events: JobEvents
    ) -> tuple[str, int, str]:
        """One sequence: its text, its token count and why it stopped."""
        chat = request.mode == "chat"
        body = self.body(request, index)
        url = f"{self.config.openai_base_url}/{'chat/completions' if chat else 'completions'}"
        text, tokens = "", 0
        try:
            async with self._session.post(url, json=body) as response:
                if response.status >= 400:
                    # The server's detail may name paths or keys: the operator's log gets it, the user a short line.
                    log.warning(
                        "The generation server answered %s to %s: %s",
                        response.status,
                        url,
                        (await response.text())[:500],
                    )
                    raise (EngineError if response.status < 500 else ModelUnavailable)(
                        REFUSED.format(status=response.status)
                    )
                async for event in _events(response):
                    if not (choices := event.get("choices")):
                        continue
                    choice = choices[0]
                    delta = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                    if delta:
                        text += delta
                        tokens += 1  # about a token per event, where the server sends no usage
                        events.chunk(job_id, index, delta)
                    if choice.get("finish_reason"):
                        tokens = (event.get("usage") or {}).get("completion_tokens", tokens)
                        return text, tokens, "stop" if choice["finish_reason"] == "stop" else "length"
        except (aiohttp.ServerTimeoutError, TimeoutError):
            raise ModelUnavailable(SLOW) from None
        except aiohttp.ClientConnectorError:
            raise ModelUnavailable(DOWN) from None
        except aiohttp.ClientError as error:  # disconnected or a broken stream: it died while answering
            log.warning("The generation stream broke: %r", error)
            raise WorkerCrashed(LOST) from None
        raise WorkerCrashed(LOST)  # the stream ended without a finish reason


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """Each server-sent event's JSON, until `[DONE]`."""
    async for raw in response.content:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        data = line.removeprefix("data:").strip()
        if data == "[DONE]":
            return
        yield json.loads(data)
