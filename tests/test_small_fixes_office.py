"""PowerPoint hidden slides and Excel formulas without a calculated value: what is skipped is reported, not lost
silently. Files are built with zipfile by the helpers of test_loaders_office.py."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from test_loaders_office import _cli, cell, make_pptx, make_xlsx, shape

from flywheel.retrieval.loaders import LoadOptions, Skip, load_file


def _hide(deck: Path, *numbers: int) -> Path:
    """Marks slides hidden the way PowerPoint saves Slide Show > Hide Slide: `show="0"` on the slide's root."""
    with zipfile.ZipFile(deck) as zf:
        parts = {name: zf.read(name) for name in zf.namelist()}
    for n in numbers:
        name = f"ppt/slides/slide{n}.xml"
        parts[name] = parts[name].replace(b"<p:sld ", b'<p:sld show="0" ', 1)
    with zipfile.ZipFile(deck, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return deck


def _deck(path: Path) -> Path:
    return make_pptx(path, [
        (shape(["Agenda"], "title") + shape(["Welcome and goals"]), None),
        (shape(["Draft pricing"], "title") + shape(["Internal only: 40% discount for Acme"]), "do not present"),
        (shape(["Roadmap"], "title") + shape(["Ship the gateway"]), None),
        (shape(["备用"], "title") + shape(["隐藏的备用页"]), None),
    ])


def test_hidden_slides_are_not_indexed_and_the_others_keep_their_numbers(tmp_path):
    loaded = load_file(_hide(_deck(tmp_path / "deck.pptx"), 2, 4), source="deck.pptx", options=LoadOptions())
    assert [d.metadata["location"] for d in loaded.docs] == ["slide 1: Agenda", "slide 3: Roadmap"]
    text = " ".join(d.text for d in loaded.docs)
    assert "Acme" not in text and "do not present" not in text and "隐藏" not in text
    assert loaded.warnings == [("2 hidden slides were not indexed (slide 2, 4); to index them, unhide in PowerPoint "
                               "(Slide Show > Hide Slide) and save")]


def test_a_deck_without_hidden_slides_has_no_warning(tmp_path):
    loaded = load_file(_deck(tmp_path / "deck.pptx"), source="deck.pptx", options=LoadOptions())
    assert len(loaded.docs) == 4 and loaded.warnings == []


def test_a_deck_of_only_hidden_slides_is_skipped_saying_so(tmp_path):
    deck = _hide(make_pptx(tmp_path / "d.pptx", [(shape(["Backup"], "title"), None)]), 1)
    with pytest.raises(Skip, match=r"only hidden slides \(1; Slide Show > Hide Slide\)"):
        load_file(deck, source="d.pptx", options=LoadOptions())


def _formulas(path: Path) -> Path:
    shared_head = '<c r="C4"><f t="shared" ref="C4:C5" si="0">IF(B4&gt;1000,"high","")</f></c>'
    head = [cell("A1", "Item", "inlineStr"), cell("B1", "Cost", "inlineStr"), cell("C1", "Note", "inlineStr")]
    rows = [head,
            [cell("A2", "Rent", "inlineStr"), cell("B2", "1200", "n")],
            [cell("A3", "Power", "inlineStr"), cell("B3", "80", "n")],
            # written by a library: formulas (one shared with the next row), no calculated value
            [cell("A4", "Total", "inlineStr"), '<c r="B4"><f>SUM(B2:B3)</f></c>', shared_head],
            [cell("A5", "Twice", "inlineStr"), '<c r="B5"><f>B4*2</f><v>2560</v></c>', '<c r="C5"><f t="shared" si="0"/></c>'],
            # calculated to an empty string: a value, not a missing one
            [cell("A6", "Blank", "inlineStr"), '<c r="C6" t="str"><f>""</f><v></v></c>']]
    return make_xlsx(path, {"Budget": rows, "Other": [[cell("A1", "x", "inlineStr")]]}, [])


def test_formula_cells_without_a_calculated_value_are_counted_in_a_warning(tmp_path):
    loaded = load_file(_formulas(tmp_path / "budget.xlsx"), source="budget.xlsx", options=LoadOptions())
    text = loaded.docs[0].text
    assert "| Item: Total |" in text and "SUM" not in text  # nothing made up for the missing value
    assert "| Item: Twice | Cost: 2560 |" in text  # a stored value is indexed as before
    assert loaded.warnings == [("sheet 'Budget': 3 formula cells had no calculated value (B4, C4, C5) and were "
                               "indexed as empty; open and save the file in Excel or LibreOffice to store the values")]


def test_a_workbook_of_only_uncalculated_formulas_is_skipped_saying_why(tmp_path):
    book = make_xlsx(tmp_path / "f.xlsx", {"S": [['<c r="A1"><f>1+1</f></c>', '<c r="B1"><f>2+2</f></c>']]}, [])
    with pytest.raises(Skip, match="only cells are 2 formulas without a calculated value: open and save it in Excel"):
        load_file(book, source="f.xlsx", options=LoadOptions())


def test_ingest_summary_reports_hidden_slides_and_uncalculated_formulas(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    _hide(_deck(docs / "deck.pptx"), 2)
    _formulas(docs / "budget.xlsx")
    assert _cli(tmp_path, "init").exit_code == 0
    res = _cli(tmp_path, "ingest", str(docs), "--json")
    assert res.exit_code == 0, res.output
    warnings = json.loads(res.output)["warnings"]
    assert [(w["source"], w["warning"].split(";")[0]) for w in warnings] == [
        ("docs/budget.xlsx", ("sheet 'Budget': 3 formula cells had no calculated value (B4, C4, C5) and were indexed "
                             "as empty")),
        ("docs/deck.pptx", "1 hidden slide was not indexed (slide 2)")]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert _cli(fresh, "init").exit_code == 0
    out = " ".join(_cli(fresh, "ingest", str(docs)).output.split())  # the human form says it too
    assert "deck.pptx: 1 hidden slide was not indexed (slide 2)" in out
    assert "3 formula cells had no calculated value" in out


def test_many_uncalculated_formulas_are_counted_and_the_first_few_named(tmp_path):
    row = [cell("A1", "Totals", "inlineStr")] + [f'<c r="{c}1"><f>ROW()</f></c>' for c in "BCDEFGH"]
    loaded = load_file(make_xlsx(tmp_path / "m.xlsx", {"S": [row]}, []), source="m.xlsx", options=LoadOptions())
    assert loaded.warnings[0].startswith("sheet 'S': 7 formula cells had no calculated value (B1, C1, D1, E1, F1, …)")
