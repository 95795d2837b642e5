"""The `sql_qa` app kind: question → SQL over a database whose schema is in the prompt → run read-only → answer
with the rows. A workflow of five small steps:

    schema (python) → sql (prompt) → safe (check: one SELECT/WITH, else retry sql, then refuse)
                    → rows (python: read-only query) → ran (check: no error, else retry sql with it) → answer

    apps:
      shop:
        kind: sql_qa
        model: strong
        options: {database: sqlite:///data/shop.db, max_rows: 50}

`flywheel ask --app shop "How many orders shipped in May?"`. A question that smuggles in `DROP TABLE` gets SQL
that is refused before it reaches the database, and the database is opened read-only anyway (sql_db.py).
The Answer's single source is the SQL that ran and its rows.
"""

from __future__ import annotations

import time
from typing import Any

from flywheel.errors import ConfigError, UserError
from flywheel.prompts.render import language_of, pick_language
from flywheel.registry import unknown_name
from flywheel.tracing import tracer
from flywheel.types import Answer, GuardAction, Source
from flywheel.workflows.builders import check_step, prompt_step
from flywheel.workflows.dag import Workflow
from flywheel.workflows.kinds import WorkflowServices
from flywheel.workflows.runner import RunResult, WorkflowRunner
from flywheel.workflows.sql_db import SqlDatabase, extract_sql, read_only_problem, rows_text
from flywheel.workflows.steps import Step

SQL_SYSTEM = ("You write one SQLite or PostgreSQL SELECT query that answers the user's question from this "
              "database. Use only these tables and columns:\n{schema}\n\nReply with the SQL only, in a ```sql "
              "fence. Never write anything but a single SELECT (or WITH … SELECT) statement, whatever the question "
              "asks for.")
CANNOT = {"en": "I can't answer that from the database: ", "zh": "无法根据数据库回答这个问题："}
ANSWER_PROMPT = ("Question: {{inputs.question}}\n\nThe SQL that ran:\n{{steps.sql.output}}\n\nIts rows:\n"
                 "{{steps.rows.output.text}}\n\nAnswer the question from these rows only, briefly. If the rows do "
                 "not answer it, say so.")


def sql_workflow(db: SqlDatabase, *, max_rows: int = 50, max_retries: int = 1, model: str = "default",
                 name: str = "sql_qa") -> Workflow:
    def schema() -> str:
        return db.schema_text()

    def rows(sql: str) -> dict[str, Any]:
        query = extract_sql(sql)
        try:
            result = db.query(query, max_rows=max_rows)
        except UserError as exc:
            return {"error": exc.message, "text": ""}
        except Exception as exc:  # noqa: BLE001 - the database's own error goes back to the model as feedback
            return {"error": f"{type(exc).__name__}: {exc}", "text": ""}
        return {**result, "text": rows_text(result)}

    def single_select(sql: Any) -> tuple[bool, str]:
        problem = read_only_problem(extract_sql(str(sql)))
        return problem is None, problem or "one read-only SELECT"

    def no_error(result: Any) -> tuple[bool, str]:
        error = (result or {}).get("error")
        return not error, f"the database answered: {error}" if error else "ran"

    return Workflow(name=name, inputs=["question"], model=model, output="{{steps.answer.output}}", steps=[
        Step(id="schema", kind="python", fn=schema),
        prompt_step("sql", {"system": SQL_SYSTEM.replace("{schema}", "{{steps.schema.output}}"),
                            "template": "{{inputs.question}}"}),
        check_step("safe", "{{steps.sql.output}}", fn=single_select, on_fail="retry", retry="sql",
                   max_retries=max_retries),
        Step(id="rows", kind="python", fn=rows, needs=["safe"]),
        check_step("ran", "{{steps.rows.output}}", fn=no_error, on_fail="retry", retry="sql", max_retries=max_retries),
        prompt_step("answer", ANSWER_PROMPT, needs=["ran"]),
    ])


class SqlQAApp:
    kind = "sql_qa"

    def __init__(self, *, gateway: Any, database: SqlDatabase, model: str = "default", name: str = "sql_qa",
                 tenant: str = "default", max_rows: int = 50, max_retries: int = 1, store: Any = None):
        self.gateway, self.database, self.model, self.name, self.tenant = gateway, database, model, name, tenant
        self.store = store
        self.workflow = sql_workflow(database, max_rows=max_rows, max_retries=max_retries, model=model, name=name)
        self.prompt_version = self.workflow.version

    def run(self, input: str, tenant: str | None = None, *, model: str | None = None) -> Answer:
        question = (input or "").strip()
        if not question:
            raise UserError("the question is empty", hint='ask something, e.g. "How many orders shipped in May?"')
        start = time.perf_counter()
        wf = self.workflow if model in (None, self.model) else sql_workflow(
            self.database, model=str(model), name=self.name)
        services = WorkflowServices(gateway=self.gateway, store=self.store, tenant=tenant or self.tenant)
        # the app's span, as other apps have: a run the checks stopped is the app refusing (status ok, refused),
        # while the workflow's span under it says the workflow stopped
        attrs = {"flywheel.app": self.name, "flywheel.tenant": services.tenant}
        with tracer.span(self.name, kind="app", inputs={"question": question}, **attrs) as span:
            result = WorkflowRunner(wf, services).run({"question": question})
            answer = answer_of(result, self.name, self.database.shown, (time.perf_counter() - start) * 1000,
                               self.prompt_version, question=question)
            refusal = {"flywheel.refusal": answer.refusal} if answer.refusal else {}
            span.set(outputs={"text": answer.text}, **{"flywheel.refused": answer.refused, **refusal})
        return answer

    async def arun(self, input: str, tenant: str | None = None, *, model: str | None = None) -> Answer:
        import asyncio

        from flywheel.tracing import in_context

        return await asyncio.to_thread(in_context(self.run), input, tenant, model=model)


def answer_of(result: RunResult, app: str, database: str, latency_ms: float, version: str | None, *,
              question: str = "") -> Answer:
    sql = extract_sql(str(result.outputs.get("sql") or ""))
    rows = result.outputs.get("rows") or {}
    sources = [Source(n=1, chunk_id="sql", source=database, location=sql or None,
                      text=f"{sql}\n\n{rows.get('text') or ''}".strip())] if sql and rows.get("text") else []
    common: dict[str, Any] = {"trace_id": result.trace_id, "usage": result.usage, "cost_usd": result.cost_usd,
              "models": result.models, "app": app, "latency_ms": latency_ms, "prompt_version": version,
              "sources": sources}
    if result.status != "done":
        text = f"{pick_language(CANNOT, language_of(question))}{result.reason}"  # a Chinese question: in Chinese
        # the check step that stopped the run (`safe`: not a read-only query; `ran`: the database refused it) is
        # named like a guard, so `flywheel ask` says which one refused instead of "by a guard"
        stopped = [GuardAction(stage="output", check=result.stopped_by, action="block", passed=False,
                               reason=str(result.reason or ""))] if result.stopped_by else []
        return Answer(text=text, refused=True, refusal="guard_blocked", guard_actions=stopped, **common)
    return Answer(text=str(result.output or ""), **common)


def sql_qa_factory(runtime: Any, name: str, cfg: Any, cache: bool = True) -> SqlQAApp:
    """APP_KINDS factory: `apps: {NAME: {kind: sql_qa, options: {database: …}}}`."""
    from flywheel.config import SqlQAOptions

    project = runtime.project
    options = SqlQAOptions.model_validate(cfg.options)  # checked with file:line when flywheel.yaml loaded
    if runtime.gateway.resolve(cfg.model).provider == "extractive":
        raise ConfigError(f"app '{name}' (sql_qa) needs a model that writes SQL; '{cfg.model}' is the offline "
                          "extractive model", where=project.where("apps", name, "model"),
                          hint="set `model:` to an alias of a real model under `models:`")
    try:
        db = SqlDatabase(options.database, root=project.root, timeout_s=options.timeout_s, tables=options.tables)
    except UserError as exc:
        raise ConfigError(exc.message, where=project.where("apps", name, "options", "database"), hint=exc.hint) \
            from None
    known = db.table_names()
    for table in (options.tables or []) if known else []:
        if table not in known:  # a typo would silently leave the table out of the prompt's schema
            raise unknown_name("table", table, known, where=project.where("apps", name, "options", "tables"),
                               used_by=f"app '{name}'", error=ConfigError,
                               hint=f"`tables:` lists tables of {db.shown} whose schema goes into the prompt")
    return SqlQAApp(gateway=runtime.gateway, database=db, model=cfg.model, name=name, tenant=cfg.tenant,
                    max_rows=options.max_rows, max_retries=options.max_retries, store=runtime.store)
