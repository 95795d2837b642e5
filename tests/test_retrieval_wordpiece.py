"""Our Python WordPiece gives the ids of Hugging Face `tokenizers` (the reference, in the dev extra) for
all-MiniLM-L6-v2: docs, English and Chinese data, and random Unicode (accents, controls, CJK, emoji)."""

from __future__ import annotations

import json
import os
import random
from importlib.util import find_spec
from pathlib import Path

from conftest import DATA, need

from flywheel.retrieval.minilm import MODEL_DIR
from flywheel.retrieval.wordpiece import WordPiece

ROOT = Path(__file__).resolve().parents[1]


def _texts() -> list[str]:
    texts = [p for f in sorted((ROOT / "docs").rglob("*.md")) for p in f.read_text("utf-8").split("\n\n")][:1500]
    if os.path.isdir(DATA):
        with open(os.path.join(DATA, "cmrc2018-dev", "corpus.jsonl"), encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for _, line in zip(range(100), f, strict=False)]
    rng = random.Random(7)
    alphabet = [chr(c) for c in [*range(0x250), *range(0x300, 0x370), *range(0x2000, 0x2070),
                                 *range(0x3000, 0x3040), *range(0x4E00, 0x4E40), 0xFFFD, 0xFEFF, 0x1F600, 0x130]]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(1500)]
    return texts + ["use [SEP] and [CLS]x [UNK]", "a" * 150 + " b", "naïve café İstanbul ΣΑΣ ﬁne", "don't", ""]


def test_ids_match_hugging_face_tokenizers():
    need(find_spec("tokenizers") is not None, "the reference `tokenizers` package is not installed")
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    reference.no_padding()
    reference.enable_truncation(256)
    ours = WordPiece(MODEL_DIR / "tokenizer.json")
    texts = _texts()
    want = reference.encode_batch(texts)
    got = ours.encode_batch(texts, max_length=256)
    wrong = [t for t, a, b in zip(texts, got, want, strict=True) if a.ids != b.ids]
    assert not wrong, wrong[:3]
    # offsets (where hard_split cuts) agree on real text
    real = texts[:-1505]
    plain_ref = reference.encode_batch(real, add_special_tokens=False)
    plain = ours.encode_batch(real, add_special_tokens=False, max_length=256)
    assert all([tuple(o) for o in b.offsets] == a.offsets for a, b in zip(plain, plain_ref, strict=True))


def test_special_tokens_truncation_and_unknown_words():
    wp = WordPiece(MODEL_DIR / "tokenizer.json")
    enc = wp.encode("Hello [SEP] world", max_length=4)
    assert enc.ids[0] == wp.cls and enc.ids[-1] == wp.sep and len(enc.ids) == 4
    assert wp.encode("x [SEP] y", add_special_tokens=False).ids[1] == wp.sep
    assert wp.encode("a" * 101, add_special_tokens=False).ids == [wp.unk]
    text = "Unaffable 模型"
    enc = wp.encode(text, add_special_tokens=False)
    pieces = [text[b:e] for b, e in enc.offsets]
    assert len(pieces) > 3 and "".join(pieces[:-2]) == "Unaffable" and pieces[-2:] == ["模", "型"]
