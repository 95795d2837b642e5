"""flywheel.checks.pii.pseudonymize: one record masked consistently across its fields; kept fields keep only the
values no masked field holds; secrets masked in every field."""

from __future__ import annotations

from flywheel.checks.pii import pseudonymize


def test_same_value_same_placeholder_different_values_different_numbers():
    out = pseudonymize({
        "input": ["Call 415-555-0134 or mail Ann.Lee@example.com", None],
        "reference": ["Mail ann.lee@example.com, call (415) 555 0134, or carl@example.net", ""],
    })
    assert out.fields["input"] == ["Call <PHONE_NUMBER_1> or mail <EMAIL_ADDRESS_1>", None]
    assert out.fields["reference"] == ["Mail <EMAIL_ADDRESS_1>, call <PHONE_NUMBER_1>, or <EMAIL_ADDRESS_2>", ""]
    assert out.vault == {"<PHONE_NUMBER_1>": "415-555-0134", "<EMAIL_ADDRESS_1>": "Ann.Lee@example.com",
                         "<EMAIL_ADDRESS_2>": "carl@example.net"}
    assert out.masked["reference"] == {"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1}
    assert out.exclusive["reference"] == {"EMAIL_ADDRESS": 1} and out.exclusive["input"] == {}


def test_a_kept_field_never_reveals_a_masked_fields_value_and_secrets_always_go():
    fields = {"input": ["I am ann.lee@example.com; api_key=sk-proj-AbCdEfGhIjKlMnOpQrStUv12"],
              "reference": ["Not ann.lee@example.com: write to billing@acme-corp.com. My token is 9f86d081884c7d65"]}
    kept = pseudonymize(fields, keep={"reference"})
    assert kept.fields["reference"][0].startswith("Not <EMAIL_ADDRESS_1>: write to billing@acme-corp.com.")
    assert "9f86d081884c7d65" not in kept.fields["reference"][0]
    assert kept.kept["reference"] == {"EMAIL_ADDRESS": 1} and kept.masked["input"]["SECRET"] == 1
    everything = pseudonymize(fields, keep={"input", "reference"})
    assert "ann.lee@example.com" in everything.fields["input"][0]
    assert "sk-proj-" not in everything.fields["input"][0] and "<SECRET>" in everything.fields["input"][0]
    assert "9f86d081884c7d65" not in everything.fields["reference"][0]
