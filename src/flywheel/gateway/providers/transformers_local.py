"""`transformers`: a local Hugging Face causal LM served in-process — a model folder, or a LoRA adapter folder
written by `flywheel finetune` (its `flywheel-finetune.json` names the base model).

    models:
      tuned: {provider: transformers, model: ./tuned}          # adapter folder from `flywheel finetune`
      base:  {provider: transformers, model: ./tiny-base, params: {device: cpu}}

`model:` is a folder (a relative path is relative to flywheel.yaml) or the id of a model already in
the local Hugging Face cache; nothing is downloaded. The weights load on the first request, once per process
and folder (aliases naming the same folder share them), under a lock; an adapter is merged into its base for
speed. Requests are answered one at a time per model (generation is not thread-safe and would only compete for
the same device), off the event loop (`achat` and `astream` run in worker threads). Streams carry the text as
it is generated.

A request's messages go through the tokenizer's chat template, exactly as `flywheel finetune` rendered the
training rows. `max_tokens` (default `params.max_tokens`, else 256), `temperature` (0 or unset: greedy),
`params.top_p` and `stop` are honoured; usage is the exact token counts; the price is zero unless the alias
sets one. `params.device` (auto | cpu | cuda | cuda:N | mps) and `params.dtype` (auto | float32 | bfloat16 |
float16) choose where and how it runs; auto is the first GPU when torch sees one, else the CPU, in float32 on
the CPU and bfloat16 (float16 without bf16 support) on a GPU.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import queue
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.config import ModelAlias
from flywheel.config.yaml_io import anchored, folder_of
from flywheel.errors import UserError
from flywheel.gateway.providers.base import (
    BaseProvider,
    ProviderError,
    ProviderResponse,
    make_chunk,
    make_usage,
)
from flywheel.text.install import pip_install
from flywheel.types import ChatRequest, StreamChunk

MANIFEST = "flywheel-finetune.json"  # written by `flywheel finetune` next to the adapter
ADAPTER_CONFIG = "adapter_config.json"  # peft's
CPU_TORCH = "on a machine without a GPU, install the CPU build of torch first: " \
            "pip install torch --index-url https://download.pytorch.org/whl/cpu"
DEFAULT_MAX_TOKENS = 256


def require_extra(*modules: str, what: str = "the `transformers` provider") -> None:
    """UserError naming the `finetune` extra when one of `modules` cannot be imported (found without importing)."""
    missing = []
    for name in modules:
        if name in sys.modules:
            if sys.modules[name] is None:  # import blocked
                missing.append(name)
            continue
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise UserError(f"{what} needs the `finetune` extra ({pip_install('finetune')}): "
                        f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed",
                        hint=f"{pip_install('finetune')}; {CPU_TORCH}")


def quiet_transformers() -> None:
    """No download / loading progress bars from transformers in the middle of flywheel's own output."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def pick_device(name: str = "auto") -> str:
    import torch

    if name in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but torch sees no CUDA GPU",
                        hint="use device auto or cpu, or install a CUDA build of torch")
    return name


def pick_dtype(name: str, device: str) -> Any:
    import torch

    if name in ("", "auto"):
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise UserError(f"unknown dtype {name!r}", hint="one of auto, float32, bfloat16, float16")
    return dtype


def dtype_arg(dtype: Any) -> dict[str, Any]:
    """`from_pretrained`'s dtype keyword: `dtype` since transformers 4.56, `torch_dtype` before."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def chat_text(tokenizer: Any, messages: list[dict[str, Any]], *, add_generation_prompt: bool) -> str:
    """The messages as the model reads them: the tokenizer's chat template, or a plain `role: text` transcript
    for a tokenizer without one (fine-tuning and serving use this same function, so they agree)."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)
        return str(text)
    lines = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    return lines + ("assistant: " if add_generation_prompt else "")


def resolve_model_dir(model: str, where: str | None = None) -> tuple[str, str | None]:
    """(what to load the weights from, the adapter folder or None) for an alias's `model:` (anchored to the
    project folder when flywheel.yaml was loaded: flywheel.config.anchor_local_models); `where` is its
    flywheel.yaml:line, for the errors."""
    path = Path(model).expanduser()
    if where is not None and not path.is_absolute() and path.exists():  # anchored, yet relative: not in the project
        raise UserError(f"model folder {anchored(model, folder_of(where)).absolute()} does not exist (paths in "
                        f"flywheel.yaml are relative to the project, not to the working directory's {model})",
                        where=where, hint="fix `model:`, or make it absolute")
    if path.is_dir():
        path = path.resolve()
        manifest = path / MANIFEST
        if manifest.is_file() or (path / ADAPTER_CONFIG).is_file():
            base = ""
            if manifest.is_file():
                base = str(json.loads(manifest.read_text(encoding="utf-8")).get("base") or "")
            if not base:
                base = str(json.loads((path / ADAPTER_CONFIG).read_text(encoding="utf-8"))
                           .get("base_model_name_or_path") or "")
            if not base:
                raise UserError(f"{path} is an adapter folder that does not name its base model", where=where,
                                hint=f"set `base` in {MANIFEST} or base_model_name_or_path in {ADAPTER_CONFIG}")
            return base, str(path)
        if not (path / "config.json").is_file():
            raise UserError(f"{path} holds no Hugging Face model (no config.json) and no adapter", where=where,
                            hint="point `model:` at a model folder or at the output of `flywheel finetune`")
        return str(path), None
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise UserError(f"model folder {path} does not exist", where=where,
                        hint="fix `model:`: a folder (a relative path is relative to flywheel.yaml's folder, the "
                             "project), or the id of a model in the Hugging Face cache")
    return model, None  # a hub id: only from the local cache (local_files_only)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str
    name: str
    lock: threading.Lock = field(default_factory=threading.Lock)


_LOADED: dict[tuple[str, str | None, str, str], LoadedModel] = {}
_LOAD_LOCK = threading.Lock()


def load_model(model: str, *, device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """The model (merged with its adapter when `model` is one) and tokenizer, loaded once per process."""
    require_extra("torch", "transformers")
    base, adapter = resolve_model_dir(model)
    if adapter is not None:
        require_extra("peft", what="serving a LoRA adapter")
    dev = pick_device(device)
    key = (base, adapter, dev, dtype)
    with _LOAD_LOCK:
        loaded = _LOADED.get(key)
        if loaded is None:
            loaded = _LOADED[key] = _load(base, adapter, dev, dtype)
    return loaded


def _load(base: str, adapter: str | None, device: str, dtype: str) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(adapter or base, local_files_only=True)
        lm: Any = AutoModelForCausalLM.from_pretrained(base, local_files_only=True,
                                                  **dtype_arg(pick_dtype(dtype, device)))
        if adapter is not None:
            from peft import PeftModel

            with warnings.catch_warnings():  # peft calls an API transformers 5 deprecates
                warnings.simplefilter("ignore", FutureWarning)
                lm = PeftModel.from_pretrained(lm, adapter, local_files_only=True).merge_and_unload()
    except OSError as exc:  # transformers reports a missing or incomplete folder / cache entry as OSError
        raise UserError(f"cannot load {adapter or base}: {exc}".splitlines()[0],
                        hint="`model:` must be a local model folder or a model already in the Hugging Face "
                             "cache (nothing is downloaded)") from None
    lm.to(device)
    lm.eval()
    return LoadedModel(lm, tokenizer, device, Path(adapter or base).name or base)


def generate(loaded: LoadedModel, messages: list[dict[str, Any]], *, max_tokens: int, temperature: float = 0.0,
             top_p: float | None = None, stop: list[str] | None = None, timeout: float | None = None,
             streamer: Any = None) -> tuple[str, int, int, str]:
    """(text, prompt tokens, completion tokens, finish reason) for one chat; `streamer` (transformers'
    TextIteratorStreamer) also receives the text as it is generated."""
    import torch

    tok = loaded.tokenizer
    try:
        prompt = chat_text(tok, messages, add_generation_prompt=True)
    except Exception as exc:  # noqa: BLE001 - the model's own chat template refuses these messages
        raise ProviderError(f"the chat template of {loaded.name} rejects the messages: {exc}", kind="client") from None
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt").input_ids.to(loaded.device)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    options: dict[str, Any] = {"max_new_tokens": max_tokens, "attention_mask": torch.ones_like(ids), "pad_token_id": pad}
    if temperature and temperature > 0:
        options.update(do_sample=True, temperature=temperature, top_p=top_p if top_p is not None else 1.0)
    else:
        options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if tok.eos_token_id is not None:
        options["eos_token_id"] = tok.eos_token_id
    if stop:
        options.update(stop_strings=list(stop), tokenizer=tok)
    if timeout:
        options["max_time"] = timeout
    if streamer is not None:
        options["streamer"] = streamer
    with loaded.lock, torch.inference_mode():
        out = loaded.model.generate(ids, **options)
    new = out[0][ids.shape[1]:].tolist()
    finish = "length" if len(new) >= max_tokens else "stop"
    if new and tok.eos_token_id is not None and new[-1] == tok.eos_token_id:
        finish = "stop"
    text = tok.decode(new, skip_special_tokens=True)
    for s in stop or []:
        at = text.find(s)
        if at >= 0:
            text, finish = text[:at], "stop"
    return text, int(ids.shape[1]), len(new), finish


class TransformersProvider(BaseProvider):
    """The provider behind `provider: transformers`."""

    name = "transformers"

    def __init__(self, alias: ModelAlias | None = None):
        super().__init__(alias)
        if alias is not None:
            require_extra("torch", "transformers")
            # a wrong path fails when the gateway builds the alias, not mid-call
            resolve_model_dir(alias.model, alias.defined_at)

    def _prepare(self, alias: ModelAlias, request: ChatRequest) -> tuple[LoadedModel, dict[str, Any]]:
        if request.tools:
            raise ProviderError("the transformers provider does not call tools", kind="client")
        params = alias.params or {}
        try:
            loaded = load_model(alias.model, device=str(params.get("device", "auto")),
                                dtype=str(params.get("dtype", "auto")))
        except UserError as err:
            raise ProviderError(err.render(), kind="config") from None
        temperature = request.temperature if request.temperature is not None else params.get("temperature", 0.0)
        top_p = request.top_p if request.top_p is not None else params.get("top_p")
        return loaded, {"messages": [{"role": m.role, "content": m.content} for m in request.messages],
                        "max_tokens": request.max_tokens or int(params.get("max_tokens", DEFAULT_MAX_TOKENS)),
                        "temperature": float(temperature or 0.0),
                        "top_p": float(top_p) if top_p is not None else None, "stop": request.stop}

    def chat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        loaded, options = self._prepare(alias, request)
        text, n_in, n_out, finish = generate(loaded, timeout=timeout, **options)
        return ProviderResponse(text, make_usage(n_in, n_out), alias.model, finish)

    def stream(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Iterator[StreamChunk]:
        """Text as it is generated (generation runs in a thread feeding transformers' TextIteratorStreamer). Text
        that could be the start of a stop string is held back until it is known not to be one."""
        from transformers import TextIteratorStreamer

        loaded, options = self._prepare(alias, request)
        streamer = TextIteratorStreamer(loaded.tokenizer, skip_prompt=True, timeout=timeout or None,
                                        skip_special_tokens=True)
        done: dict[str, Any] = {}

        def work() -> None:
            try:
                done["result"] = generate(loaded, timeout=timeout, streamer=streamer, **options)
            except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread below
                done["error"] = exc
                streamer.end()

        thread = threading.Thread(target=work, name="flywheel-transformers-stream", daemon=True)
        thread.start()
        stops = request.stop or []
        sent, held = "", ""
        try:
            for piece in streamer:
                held += piece
                cuts = [i for i in (held.find(s) for s in stops) if i >= 0]
                if cuts:
                    held = held[:min(cuts)]
                    break
                keep = _stop_prefix(held, stops)
                if len(held) > keep:
                    delta, held = held[:len(held) - keep], held[len(held) - keep:]
                    sent += delta
                    yield make_chunk(delta)
        except queue.Empty:
            raise ProviderError(f"no token within {timeout} s", kind="timeout", retryable=True) from None
        thread.join()
        if "error" in done:
            err = done["error"]
            raise err if isinstance(err, ProviderError) else ProviderError(
                f"generation failed: {type(err).__name__}: {err}", kind="stream_broken" if sent else "other")
        text, n_in, n_out, finish = done["result"]
        if text.startswith(sent) and len(text) > len(sent):  # the held-back tail; the whole text is authoritative
            yield make_chunk(text[len(sent):])
        yield make_chunk("", finish, make_usage(n_in, n_out))

    async def astream(self, alias: ModelAlias, request: ChatRequest,
                      timeout: float) -> AsyncIterator[StreamChunk]:
        chunks = self.stream(alias, request, timeout)
        while True:
            chunk = await asyncio.to_thread(next, chunks, None)  # generation and waiting off the event loop
            if chunk is None:
                return
            yield chunk


def _stop_prefix(text: str, stops: list[str]) -> int:
    """Length of the longest end of `text` that is the start of a stop string (held back while streaming)."""
    return max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
