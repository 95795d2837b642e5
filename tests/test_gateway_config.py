"""Gateway configuration: aliases, fallback chains, providers, API keys."""

from __future__ import annotations

import pytest

from flywheel.config import Config, ModelAlias, load_config_file
from flywheel.errors import ConfigError, GatewayError, UserError
from flywheel.gateway import BaseProvider, Gateway, ProviderResponse
from flywheel.gateway.providers.base import make_usage
from flywheel.types import ChatRequest


def alias(**kw) -> ModelAlias:
    kw.setdefault("model", "m")
    return ModelAlias(**kw)


class Echo(BaseProvider):
    name = "echo"

    def chat(self, alias, request, timeout):
        return ProviderResponse(f"{alias.model}: {request.last_user()}", make_usage(1, 1), alias.model, "stop")


def test_unknown_alias_lists_known_ones():
    gw = Gateway({"small": alias(), "strong": alias()})
    with pytest.raises(UserError) as err:
        gw.resolve("big")
    assert "'big'" in err.value.message and "small" in err.value.message and "strong" in err.value.message
    with pytest.raises(UserError, match="unknown model alias 'big'"):
        gw.chat(ChatRequest.of("hi", model="big"))
    with pytest.raises(UserError, match="unknown model alias"):
        gw.stream(ChatRequest.of("hi", model="big"))


def test_fallback_loop_is_a_config_error_naming_the_loop():
    models = {"a": alias(fallbacks=["b"]), "b": alias(fallbacks=["c"]), "c": alias(fallbacks=["a"])}
    with pytest.raises(ConfigError) as err:
        Gateway(models)
    assert "a → b → c → a" in err.value.message


def test_self_fallback_is_a_loop():
    with pytest.raises(ConfigError, match="a → a"):
        Gateway({"a": alias(fallbacks=["a"])})


def test_unknown_fallback_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown model alias 'ghost'"):
        Gateway({"a": alias(fallbacks=["ghost"])})


def test_unknown_fallback_in_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "flywheel.yaml"
    path.write_text("models:\n  a:\n    model: m\n    fallbacks: [ghost]\n")
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert "ghost" in err.value.message and str(path) in (err.value.where or "")


def test_chain_is_depth_first_and_visits_each_alias_once():
    gw = Gateway({"a": alias(fallbacks=["b", "c"]), "b": alias(fallbacks=["d"]), "c": alias(fallbacks=["d"]),
                  "d": alias()})
    assert gw.chain("a") == ("a", "b", "d", "c")
    assert gw.chain("d") == ("d",)


def test_from_config_keeps_the_default_extractive_alias():
    gw = Gateway.from_config(Config())
    assert gw.resolve("default").provider == "extractive"


def test_register_provider_replaces_the_backend_for_that_provider_name():
    gw = Gateway({"a": alias(model="my-model", version="2025-01")})
    gw.register_provider("openai_compat", Echo)
    result = gw.chat(ChatRequest.of("hello", model="a"))
    assert result.text == "my-model: hello"
    assert result.model == "my-model@2025-01"  # the pinned version is what the result records
    assert result.provider == "openai_compat"


def test_unknown_provider_fails_the_alias_with_a_clear_reason():
    bad = ModelAlias.model_construct(**{**alias().__dict__, "provider": "nonexistent"})
    gw = Gateway({"a": bad})
    with pytest.raises(GatewayError) as err:
        gw.chat(ChatRequest.of("hi", model="a"))
    assert "unknown model provider 'nonexistent'" in str(err.value)


def test_missing_api_key_env_fails_fast_and_falls_back(monkeypatch):
    monkeypatch.delenv("FLYWHEEL_TEST_NO_SUCH_KEY", raising=False)
    gw = Gateway({"paid": alias(model="gpt", api_key_env="FLYWHEEL_TEST_NO_SUCH_KEY", fallbacks=["local"],
                                max_retries=3),
                  "local": alias(provider="anthropic", model="local-model")})
    gw.register_provider("anthropic", Echo)
    result = gw.chat(ChatRequest.of("hi", model="paid"))
    assert result.text == "local-model: hi"
    assert result.attempts == 2  # the missing key is not retried
    gw2 = Gateway({"paid": alias(model="gpt", api_key_env="FLYWHEEL_TEST_NO_SUCH_KEY")})
    with pytest.raises(GatewayError, match="FLYWHEEL_TEST_NO_SUCH_KEY"):
        gw2.chat(ChatRequest.of("hi", model="paid"))


def test_api_key_comes_from_the_named_env_var(monkeypatch):
    from flywheel.gateway.providers.openai_compat import NO_KEY, api_key

    monkeypatch.setenv("MY_KEY", "sk-abc")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-vendor")
    assert api_key(alias(api_key_env="MY_KEY"), "OPENAI_API_KEY") == "sk-abc"
    # the vendor key is never sent to a custom base_url
    assert api_key(alias(base_url="http://127.0.0.1:1/v1"), "OPENAI_API_KEY") == NO_KEY
    assert api_key(alias(), "OPENAI_API_KEY") == "sk-vendor"


def test_fallback_loop_in_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "flywheel.yaml"
    path.write_text("models:\n  a:\n    model: m\n    fallbacks: [b]\n  b:\n    model: n\n    fallbacks: [a]\n")
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert "a → b → a" in err.value.message and str(path) in (err.value.where or "")


def test_a_local_config_failure_is_the_users_mistake_exit_2_while_an_outage_is_exit_3(monkeypatch):
    from flywheel.errors import UPSTREAM_EXIT
    from flywheel.gateway.providers.base import ProviderError

    class Broken(BaseProvider):
        name = "broken"

        def __init__(self, kind: str, status: int | None):
            self.kind, self.status = kind, status

        def chat(self, alias, request, timeout):
            raise ProviderError("nope", kind=self.kind, status=self.status)

    exits = {}
    for kind, status in (("config", None), ("client", None), ("client", 400), ("server", 503),
                         ("connection", None)):
        gw = Gateway({"a": alias(max_retries=0)})
        gw.register_provider("openai_compat", lambda _alias, k=kind, s=status: Broken(k, s))
        with pytest.raises(GatewayError) as err:
            gw.chat(ChatRequest.of("hi", model="a"))
        exits[(kind, status)] = err.value.exit_code
    assert exits == {("config", None): 2, ("client", None): 2, ("client", 400): 2,
                     ("server", 503): UPSTREAM_EXIT, ("connection", None): UPSTREAM_EXIT}


def test_a_transformers_alias_folder_is_relative_to_flywheel_yaml(tmp_path, monkeypatch):
    (tmp_path / "tuned").mkdir()
    (tmp_path / "flywheel.yaml").write_text(
        "models:\n  dotted: {provider: transformers, model: ./tuned}\n"
        "  bare: {provider: transformers, model: tuned}\n  hub: {provider: transformers, model: org/name}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config, _ = load_config_file(tmp_path / "flywheel.yaml")
    assert config.models["dotted"].model == str(tmp_path / "tuned")
    assert config.models["bare"].model == str(tmp_path / "tuned")
    assert config.models["hub"].model == "org/name"  # no such folder: a Hugging Face cache id
