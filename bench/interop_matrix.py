"""The interoperability matrix: for each of six architectures, saenb saves -> SAELens 5.6 loads, saenb saves ->
SAELens 6 loads, SAELens 6 saves -> saenb loads; each compared on the same input (max |difference| of the outputs).

    python3 -m venv /tmp/sl5 && /tmp/sl5/bin/pip install -q torch==2.13.0 && /tmp/sl5/bin/pip install -q torch==2.13.0 sae-lens==5.6.0 'pyarrow<20' 'wandb<0.20'
    python3 -m venv /tmp/sl6 && /tmp/sl6/bin/pip install -q torch==2.13.0 && /tmp/sl6/bin/pip install -q torch==2.13.0 'sae-lens>=6'
    python bench/interop_matrix.py --sl5 /tmp/sl5/bin/python --sl6 /tmp/sl6/bin/python    # with saenb importable

saenb's folders are inference saves (`SAE.save_model`) of random SAEs (the BatchTopK family is written as JumpReLU);
SAELens 6's are written by nbs/fixtures/make_saelens6_fixtures.py (its inference saves). Prints a Markdown table.
"""
from __future__ import annotations
import argparse, json, subprocess, sys, tempfile
from pathlib import Path
import torch
from safetensors.torch import save_file, load_file
import saenb
from saenb.sae import SAE, SAEConfig

HERE = Path(__file__).resolve().parent
ARCHS = ("standard", "topk", "jumprelu", "gated", "batchtopk", "matryoshka_batchtopk")


def saenb_sae(arch:str, seed:int) -> SAE:
    topk = arch in ("topk", "batchtopk", "matryoshka_batchtopk")
    kwargs = {"k": 3, **({"matryoshka_widths": [4, 8, 16]} if arch == "matryoshka_batchtopk" else {})}
    cfg = SAEConfig(architecture=arch, d_in=8, d_sae=16, activation_fn_str="topk" if topk else "relu",
                    activation_fn_kwargs=kwargs if topk else {}, apply_b_dec_to_input=True, finetuning_scaling_factor=False,
                    context_size=16, model_name="tiny-model", hook_name="blocks.1.hook_resid_post", hook_layer=1,
                    hook_head_index=None, prepend_bos=True, dataset_path="stdlib-text", dataset_trust_remote_code=False,
                    normalize_activations="none", dtype="float32", device="cpu", sae_lens_training_version=None)
    sae = SAE(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sae.named_parameters():
            if name == "threshold": p.copy_(torch.full(p.shape, 0.3) if arch in ("batchtopk", "matryoshka_batchtopk")
                                            else torch.rand(p.shape, generator=g) * 0.5)
            elif p.ndim == 2: p.copy_(torch.randn(p.shape, generator=g) / p.shape[0] ** 0.5)
            else: p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return sae


def peer(python:str, folder:Path) -> dict[str, dict]:
    res = subprocess.run([python, str(HERE/"interop_peer.py"), str(folder)], capture_output=True, text=True)
    if res.returncode != 0: raise RuntimeError(res.stderr[-3000:])
    return {row["folder"]: row for row in map(json.loads, res.stdout.strip().splitlines())}


def cell(row:dict) -> str:
    if not row.get("ok"): return f"fails: {row.get('error', '')[:80]}"
    return f"{row['architecture']}, max abs diff {row['max_abs_diff_out']:.1e}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sl5", default=str(HERE/".venvs/saelens/bin/python"), help="a Python with sae-lens 5.6.0")
    ap.add_argument("--sl6", default=str(HERE/".venvs/saelens6/bin/python"), help="a Python with sae-lens 6.x")
    a = ap.parse_args()
    x = torch.randn(12, 8, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as d:
        ours, theirs = Path(d)/"saenb", Path(d)/"saelens6"
        for seed, arch in enumerate(ARCHS):
            sae = saenb_sae(arch, seed + 1)
            sae.save_model(ours/arch)
            with torch.no_grad():
                save_file({"x": x, "feature_acts": sae.encode(x), "sae_out": sae(x)}, str(ours/arch/"expected.safetensors"))
        to5, to6 = peer(a.sl5, ours), peer(a.sl6, ours)
        res = subprocess.run([a.sl6, str(HERE.parent/"nbs/fixtures/make_saelens6_fixtures.py"), str(theirs)],
                             capture_output=True, text=True)
        if res.returncode != 0: raise RuntimeError(res.stderr[-3000:])
        from6 = {}
        for arch in ARCHS:
            row = {"folder": arch}
            try:
                sae = SAE.load_from_disk(theirs/arch)
                expected = load_file(str(theirs/arch/"expected.safetensors"))
                with torch.no_grad(): out = sae(expected["x"])
                row.update(ok=True, architecture=sae.cfg.architecture,
                           max_abs_diff_out=float((out - expected["sae_out"]).abs().max()))
            except Exception as e: row.update(ok=False, error=f"{type(e).__name__}: {e}")
            from6[arch] = row
        versions = (next(iter(to5.values()))["sae_lens"], next(iter(to6.values()))["sae_lens"], saenb.__version__)
    print(f"SAELens {versions[0]}, SAELens {versions[1]}, saenb {versions[2]}, torch {torch.__version__}; "
          "each cell: the architecture the loader built, and max |output difference| on 12 random inputs\n")
    print("| architecture | saenb saves → SAELens 5.6 loads | saenb saves → SAELens 6 loads | SAELens 6 saves → saenb loads |")
    print("|---|---|---|---|")
    for arch in ARCHS: print(f"| {arch} | {cell(to5[arch])} | {cell(to6[arch])} | {cell(from6[arch])} |")
    rows = [*to5.values(), *to6.values(), *from6.values()]
    print(f"\n{sum(r.get('ok', False) for r in rows)}/{len(rows)} load; "
          f"largest max abs diff {max(r.get('max_abs_diff_out', 0) for r in rows):.1e}")


if __name__ == "__main__":
    main()
