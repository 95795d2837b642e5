"""Scale leftovers, as a user meets them on the command line:

1. `flywheel search --json --coverage` says how much of the tenant's corpus is embedded (the plain output's
   coverage line); `--json` alone stays the bare list of hits that scripts index.
2. `flywheel embed --tenant nosuch` says the tenant has no chunks and names the tenants that have some (exit 0,
   like `flywheel search --tenant nosuch`), instead of "embedded 0 chunks".
3. `flywheel store copy` (and the store's own errors) print a URL the way it was written: an empty password is
   not `***`, a unix-socket host is not `%2Ftmp%2F…`; a real password, in the user info or in `?password=`,
   is still masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_scale_audit_cli import _project as _audit_project

import flywheel.cli.retrieval  # registers `flywheel search` and `flywheel embed`
import flywheel.cli.store  # noqa: F401 - registers `flywheel store`
from flywheel.cli import main
from flywheel.testing.fake_llm import FakeLLM


def _project(tmp_path: Path, base_url: str) -> Path:
    return _audit_project(tmp_path, base_url, topics=5)


def _cli(tmp_path: Path, *args: str) -> object:
    return CliRunner().invoke(main, ["--project", str(tmp_path), *args])


# ------------------------------------------------------------------------------ 1. search --json coverage


def test_search_json_coverage_says_how_much_is_embedded_and_json_alone_stays_a_list(tmp_path):
    with FakeLLM() as llm:
        docs = _project(tmp_path, llm.base_url)
        res = _cli(tmp_path, "ingest", str(docs), "--tenant", "acme", "--no-embed", "--json")
        assert res.exit_code == 0, res.output
        chunks = json.loads(res.stdout)["chunks_added"]
        assert chunks >= 2

        res = _cli(tmp_path, "search", "gateway", "--tenant", "acme", "--mode", "bm25", "--json", "--coverage")
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)  # stdout is the JSON alone
        assert out["hits"] and out["hits"][0]["source"] == "docs/a.md"
        assert out["coverage"] == {"total": chunks, "embedded": 0, "waiting": chunks, "other_language": 0,
                                   "fraction": 0.0, "model": "fake-embedding", "other_models": {}}

        assert _cli(tmp_path, "embed", "--tenant", "acme").exit_code == 0
        res = _cli(tmp_path, "search", "gateway", "--tenant", "acme", "--json", "--coverage")
        assert res.exit_code == 0, res.output
        coverage = json.loads(res.stdout)["coverage"]
        assert (coverage["embedded"], coverage["waiting"], coverage["fraction"]) == (chunks, 0, 1.0)

        plain = _cli(tmp_path, "search", "gateway", "--tenant", "acme", "--json")  # existing readers: a list
        assert isinstance(json.loads(plain.stdout), list) and json.loads(plain.stdout)[0]["source"] == "docs/a.md"
        res = _cli(tmp_path, "search", "gateway", "--tenant", "acme", "--coverage")  # nothing to wrap
        assert res.exit_code == 2 and "--coverage goes with --json" in res.output and "Traceback" not in res.output


# ------------------------------------------------------------------------------ 2. embed --tenant nosuch


def test_embed_of_a_tenant_without_chunks_says_so_and_names_the_tenants(tmp_path):
    with FakeLLM() as llm:
        docs = _project(tmp_path, llm.base_url)
        assert _cli(tmp_path, "ingest", str(docs), "--tenant", "acme", "--no-embed", "--json").exit_code == 0

        res = _cli(tmp_path, "embed", "--tenant", "acmee")
        assert res.exit_code == 0, res.output  # as `flywheel search --tenant acmee`: a note, not an error
        assert "tenant 'acmee' has no chunks" in res.output and "--tenant acmee" in res.output
        assert "tenants with chunks: 'acme'" in res.output
        assert "embedded 0 chunks" not in res.output

        res = _cli(tmp_path, "embed", "--tenant", "acmee", "--json")
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["chunks"] == 0  # stdout stays the JSON; the note is on stderr
        assert "tenant 'acmee' has no chunks" in res.stderr

        res = _cli(tmp_path, "embed", "--tenant", "acme")  # the real tenant is embedded as before
        assert res.exit_code == 0 and "embedded 5 chunks" in res.output and "no chunks" not in res.output


def test_embed_of_a_tenant_in_an_empty_store_says_no_tenant_has_chunks(tmp_path):
    with FakeLLM() as llm:
        _project(tmp_path, llm.base_url)
        res = _cli(tmp_path, "embed", "--tenant", "acme")
        assert res.exit_code == 0, res.output
        assert "tenant 'acme' has no chunks" in res.output and "no tenant has any chunks yet" in res.output


# ------------------------------------------------------------------------------ 3. store copy URLs


@pytest.fixture
def source(tmp_path: Path) -> str:
    from sqlalchemy import insert

    from flywheel.store import Store
    from flywheel.store.schema_feedback import feedback

    url = f"sqlite:///{tmp_path / 'src.db'}"
    store = Store.open(url)
    with store.begin() as conn:
        conn.execute(insert(feedback).values(trace_id="t1", source="user", name="thumbs", value=1, created_at=1.0))
    store.close()
    return url


def test_store_copy_prints_a_socket_url_with_an_empty_password_as_written(source, tmp_path):
    socket_dir = tmp_path / "no server here"
    target = f"postgresql://fly:@/flywheel?host={socket_dir}"
    res = CliRunner().invoke(main, ["store", "copy", source, target])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"the PostgreSQL store {target}:" in res.output  # not fly:***@, not host=%2F…
    assert "***" not in res.output and "%2F" not in res.output


def test_store_copy_still_masks_a_real_password_wherever_it_is_written(source, tmp_path):
    target = f"postgresql://fly:s3cr3t-pw@/flywheel?host={tmp_path}&sslpassword=k3y-pw&password=qu3ry-pw"
    res = CliRunner().invoke(main, ["store", "copy", source, target])
    assert res.exit_code == 2, res.output
    assert "s3cr3t" not in res.output and "k3y" not in res.output and "qu3ry" not in res.output
    # the rest as written (the error scrubber may further turn the last `password=***` into [REDACTED])
    assert f"postgresql://fly:***@/flywheel?host={tmp_path}&sslpassword=***&password=" in res.output


@pytest.mark.postgres
def test_store_copy_line_shows_the_pgserver_url_as_written(source, pg_fresh_url):
    """pgserver's own URL has an empty password and a socket host: the copy line shows it unchanged."""
    assert ":@/" in pg_fresh_url and "?host=/" in pg_fresh_url
    res = CliRunner().invoke(main, ["store", "copy", source, pg_fresh_url])
    assert res.exit_code == 0, res.output
    assert f"copying {source} → {pg_fresh_url}" in res.output
    res = CliRunner().invoke(main, ["store", "copy", source, pg_fresh_url, "--append", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["target"] == pg_fresh_url


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:p/w?x@h:5432/db?host=/s", "postgresql://u:***@h:5432/db?host=/s"),  # '/', '?' in a password
    ("postgresql://u@[::1]:5432/db?sslmode=require", "postgresql://u@[::1]:5432/db?sslmode=require"),
    ("postgres://:pw@h/db?Password=x&passfile=/p", "postgres://:***@h/db?Password=***&passfile=/p"),
    (" sqlite:///.flywheel/flywheel.db ", "sqlite:///.flywheel/flywheel.db"),
    ("postgresql://u:secret@h:5x/db", "postgresql://…"),  # unparsable: the scheme only
])
def test_display_url_masks_only_real_passwords(url, shown):
    from flywheel.store.url_display import display_url

    assert display_url(url) == shown


def test_the_redis_check_shows_the_url_as_written_with_its_password_masked():
    from flywheel.errors import UserError
    from flywheel.server.counters import check_redis_answers

    for url, shown in (("redis://:s3cret-pw@127.0.0.1:1/0", "redis://:***@127.0.0.1:1/0"),
                       ("redis://127.0.0.1:1/0?password=s3cret-pw", "redis://127.0.0.1:1/0?password=***")):
        with pytest.raises(UserError) as caught:
            check_redis_answers(url)
        assert shown in caught.value.message and "s3cret-pw" not in str(caught.value)
