"""Load every SAE folder under a directory with the SAELens installed in this Python, and compare its output on the
recorded input with the recorded output. Run by bench/interop_matrix.py with a peer's own Python; imports no saenb.

    python bench/interop_peer.py DIR      # prints one JSON line per folder
"""
import json, sys
from pathlib import Path
import torch
from safetensors.torch import load_file
import sae_lens
from sae_lens import SAE

major = int(sae_lens.__version__.split(".")[0])
for folder in sorted(p for p in Path(sys.argv[1]).iterdir() if p.is_dir()):
    row = {"folder": folder.name, "sae_lens": sae_lens.__version__}
    try:
        sae = SAE.load_from_disk(str(folder)) if major >= 6 else SAE.load_from_pretrained(str(folder))
        expected = load_file(str(folder/"expected.safetensors"))
        with torch.no_grad():
            acts, out = sae.encode(expected["x"]), sae(expected["x"])
        row.update(ok=True, architecture=getattr(sae.cfg, "architecture", None) if major < 6 else sae.cfg.architecture(),
                   max_abs_diff_out=float((out - expected["sae_out"]).abs().max()),
                   max_abs_diff_acts=float((acts - expected["feature_acts"]).abs().max()),
                   max_abs_out=float(expected["sae_out"].abs().max()))
    except Exception as e:
        row.update(ok=False, error=f"{type(e).__name__}: {e}"[:300])
    print(json.dumps(row))
