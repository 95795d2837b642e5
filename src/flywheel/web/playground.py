"""/ui/playground: run 2–4 variants (a stored prompt version, or none, × a model alias) side by side on one input
through the gateway — each call is its own trace (app `playground`, with its prompt version) — and save a variant's
system and template as a new prompt version.

    GET  /ui/playground?trace=ID          the form, prefilled from a trace's final prompt (its system and input)
    GET  /ui/playground?prompt=NAME@VER   the form, variant 1 on that prompt version
    POST /ui/playground                   run the variants (CSRF); the page with their answers, tokens, cost, latency
    POST /ui/playground/save              store a new version of a prompt (CSRF)

Running and saving need a viewer who sees every tenant (admin key, open mode): a tenant key's model allow-list,
budget and rate limit are enforced on the API, and the dashboard's viewer does not carry the key to apply them.

The input fills every variable a prompt uses (question, input, query …); the others are left empty."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from flywheel.errors import UserError
from flywheel.prompts.prompt import Prompt, RenderedPrompt
from flywheel.prompts.render import family_of, template_problem
from flywheel.prompts.versions import PromptVersions
from flywheel.text import scrub_secrets
from flywheel.types import ChatRequest, Message
from flywheel.web.auth import Viewer
from flywheel.web.metrics_i18n import Text
from flywheel.web.pages import gate, posted, tenant_may_see
from flywheel.web.render import language, not_found, render
from flywheel.web.stored_i18n import error_text

router = APIRouter()
MAX_VARIANTS = 4
MAX_INPUT = 20_000
PROMPT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
PROMPT_CHOICES = 200  # stored versions offered in the variant menus
_RENDER_ARGS = ("sources", "family", "prefill", "embedder")  # Prompt.render's own keywords, not variables


def _choices(versions: PromptVersions) -> list[dict[str, str]]:
    labels = versions.labels()
    out = []
    for v in versions.versions()[:PROMPT_CHOICES]:
        tags = sorted(label for label, ver in labels.get(v.name, {}).items() if ver == v.version)
        out.append({"value": f"{v.name}@{v.version}", "text": f"{v.name} @ {v.version[:8]}"
                    + (f" ({', '.join(tags)})" if tags else "")})
    return out


def _page(request: Request, viewer: Viewer, form: dict[str, str], *, results: list[dict[str, Any]] | None = None,
          errors: dict[str, str] | None = None, status: int = 200, notice: str | None = None,
          posted: bool = False) -> Response:
    state = request.app.state.flywheel
    versions = PromptVersions(state.store)
    models = list(state.project.config.models)
    variants = []
    for i in range(MAX_VARIANTS):
        default_model = models[i % len(models)] if i < 2 and models else ""
        variants.append({"i": i, "prompt": form.get(f"v{i}_prompt", ""),
                         "model": form.get(f"v{i}_model", "" if posted else default_model)})
    return render(request, "playground.html", status=status, tx=Text(language(request)), form=form,
                  variants=variants, models=models, choices=_choices(versions), results=results or [],
                  errors=errors or {}, notice=notice, may_save=not viewer.scoped, may_run=not viewer.scoped)


@router.get("/ui/playground", include_in_schema=False)
def playground_page(request: Request) -> Response:
    viewer = gate(request)
    if not isinstance(viewer, Viewer):
        return viewer
    form: dict[str, str] = {}
    prompt = request.query_params.get("prompt")
    if prompt:
        form["v0_prompt"] = prompt
    trace_id = request.query_params.get("trace")
    notice = None
    if trace_id:
        filled = from_trace(request, viewer, trace_id)
        if filled is None:
            return not_found(request, f"no trace with id '{trace_id}'")
        form.update(filled)
        notice = f"{Text(language(request))('from_trace')} {filled['trace']}"
    return _page(request, viewer, form, notice=notice)


def from_trace(request: Request, viewer: Viewer, trace_id: str) -> dict[str, str] | None:
    """The system message and the last user message of the trace's last model call (or its question)."""
    from flywheel.tracing.query import trace_outline

    try:
        trace = trace_outline(request.app.state.flywheel.store, trace_id)
    except UserError:
        return None
    if trace is None or not tenant_may_see(viewer, trace.get("tenant")):
        return None
    bodies = trace.get("bodies") or {}
    calls = sorted((s for s in trace["span_rows"] if s["kind"] == "llm" and s["span_id"] in bodies),
                   key=lambda s: s["start_ns"], reverse=True)
    out = {"trace": trace["trace_id"], "input": trace.get("input_preview") or "", "system": ""}
    for span in calls:
        inputs = bodies[span["span_id"]].get("inputs")
        messages = inputs.get("messages") if isinstance(inputs, dict) else None
        if not isinstance(messages, list):
            continue
        texts = [(m.get("role"), m.get("content")) for m in messages if isinstance(m, dict)]
        out["system"] = next((c for r, c in texts if r == "system" and isinstance(c, str)), "")
        out["input"] = next((c for r, c in reversed(texts) if r == "user" and isinstance(c, str)), out["input"])
        break
    return out


def _variants(form: dict[str, str], errors: dict[str, str], models: list[str]) -> list[dict[str, Any]]:
    chosen = []
    for i in range(MAX_VARIANTS):
        model = form.get(f"v{i}_model", "").strip()
        prompt = form.get(f"v{i}_prompt", "").strip()
        if not model:
            continue
        if model not in models:
            errors[f"v{i}_model"] = f"unknown model alias {model!r}; known: {', '.join(models)}"
            continue
        chosen.append({"i": i, "model": model, "prompt": prompt})
    if not chosen and not any(k.endswith("_model") for k in errors):
        errors["v0_model"] = "choose a model for at least one variant"
    return chosen


def _rendered(versions: PromptVersions, ref: str, text: str, family: str) -> RenderedPrompt:
    name, _, version = ref.partition("@")
    prompt = versions.get(name, versions.resolve(name, version or "production"))
    values: dict[str, Any] = {v: text for v in prompt.prompt().variables() if v not in _RENDER_ARGS}
    return prompt.prompt().render(family=family, **values)


def run_variant(state: Any, variant: dict[str, Any], text: str, system: str, tenant: str | None) -> dict[str, Any]:
    """One variant through the gateway: its answer, tokens, cost, latency and trace id (or its error)."""
    versions = PromptVersions(state.store)
    alias = state.project.config.models.get(variant["model"])
    out: dict[str, Any] = {**variant, "answer": None, "error": None, "trace_id": None}
    try:
        rendered = _rendered(versions, variant["prompt"], text, family_of(alias)) if variant["prompt"] else None
    except UserError as exc:
        out["error"] = exc.message
        return out
    messages = rendered.messages() if rendered else \
        [*([Message(role="system", content=system)] if system.strip() else []), Message(role="user", content=text)]
    meta = {"app": "playground", "tenant": tenant, "prompt_version": rendered.version if rendered else None}
    request = ChatRequest(messages=messages, model=variant["model"],
                          metadata={k: v for k, v in meta.items() if v is not None})
    started = time.perf_counter()
    try:
        result = state.runtime.gateway.chat(request)
    except Exception as exc:  # noqa: BLE001 - a failing provider is this variant's result, not a 500
        out.update(error=scrub_secrets(str(exc))[:500], latency_ms=(time.perf_counter() - started) * 1000)
        return out
    out.update(answer=rendered.finish(result.text) if rendered else result.text, trace_id=result.trace_id,
               input_tokens=result.usage.input_tokens, output_tokens=result.usage.output_tokens,
               cost_usd=result.cost_usd, latency_ms=result.latency_ms, resolved=result.model,
               system=rendered.system if rendered else system,
               template=_template_of(versions, variant["prompt"]) if rendered else "{{question}}")
    return out


def _template_of(versions: PromptVersions, ref: str) -> str:
    name, _, version = ref.partition("@")
    return str(versions.get(name, versions.resolve(name, version or "production")).content.get("template", ""))


@router.post("/ui/playground", include_in_schema=False)
async def run_playground(request: Request) -> Response:
    checked = await posted(request)
    if isinstance(checked, Response):
        return checked
    viewer, form = checked
    tx = Text(language(request))
    if viewer.scoped:  # its key's model allow-list, budget and rate limit are not applied here (yet)
        return render(request, "error.html", status=403, title="403", message=tx("run_forbidden"))
    state = request.app.state.flywheel
    errors: dict[str, str] = {}
    text = form.get("input", "")
    if not text.strip():
        errors["input"] = "write an input"
    elif len(text) > MAX_INPUT:
        errors["input"] = f"at most {MAX_INPUT} characters"
    chosen = _variants(form, errors, list(state.project.config.models))
    if errors:
        return _page(request, viewer, form, errors=errors, status=400, posted=True)
    results = await asyncio.gather(*(asyncio.to_thread(run_variant, state, v, text, form.get("system", ""), None)
                                     for v in chosen))
    lang = language(request)
    for r in results:
        if r["error"]:  # the gateway's (or the prompt's) English error, in the page's language where known
            r["error"] = f"{tx('variant_error')}{'：' if lang == 'zh' else ': '}{error_text(lang, r['error'])}"
    return _page(request, viewer, form, results=list(results), posted=True)


@router.post("/ui/playground/save", include_in_schema=False)
async def save_version(request: Request) -> Response:
    checked = await posted(request)
    if isinstance(checked, Response):
        return checked
    viewer, form = checked
    tx = Text(language(request))
    if viewer.scoped:
        return render(request, "error.html", status=403, title="403", message=tx("save_forbidden"))
    versions = PromptVersions(request.app.state.flywheel.store)
    errors: dict[str, str] = {}
    name = form.get("name", "").strip()
    template = form.get("template", "")
    if not PROMPT_NAME.match(name):
        errors["name"] = "letters, digits, '_', '.' or '-' (at most 100), starting with a letter or digit"
    if not template.strip():
        errors["template"] = "a template is needed (e.g. {{question}})"
    elif (problem := template_problem(template)) is not None:
        errors["template"] = problem
    base: dict[str, Any] = {}
    based_on = form.get("based_on", "").strip()
    if based_on and not errors:
        base_name, _, ref = based_on.partition("@")
        try:
            stored = versions.get(base_name, versions.resolve(base_name, ref or "production"))
            base = dict(stored.content) if base_name == name else {}
        except UserError as exc:
            errors["based_on"] = exc.message
    if errors:
        return _page(request, viewer, {**form, "save_name": name}, errors=errors, status=400, posted=True)
    content = {**base, "system": form.get("system", ""), "template": template}
    try:
        prompt = Prompt.from_content(name, content, description=f"saved from the playground by {viewer.name}")
        versions.record(prompt)  # an identical version is stored once; the page then shows that one
    except (UserError, ValueError) as exc:
        errors["template"] = getattr(exc, "message", None) or str(exc)
        return _page(request, viewer, {**form, "save_name": name}, errors=errors, status=400, posted=True)
    target = f"/ui/prompts/{quote(name, safe='')}"
    if base:  # show what the new version changed
        target += f"?a={quote(based_on.partition('@')[2] or 'production', safe='')}&b={prompt.version}"
    return RedirectResponse(target, status_code=303)
