"""saenb against SAELens 5.6 from the same initial weights on the same batches (issue 19): where do their SAEs part?

    python bench/quality_same_init.py            # TopK k=16, 245 steps of 4096 tokens, seed 0 (the sweep's first point)
    python bench/quality_same_init.py --arch jumprelu --init-threshold 7 --coef 10    # the sweep's lowest-L0 JumpReLU point
    python bench/quality_same_init.py --arch standard --coef 20     # the sweep's L0 84 standard (L1) point

Both libraries train as in the sweep (`bench/quality_worker.py`'s `train_lens5`: the runner config's defaults, their
own `SAETrainer.fit()`, the sweep's cached activations and batches). SAELens 5.6 trains first and writes its freshly
initialised weights; saenb loads them, and trains twice: as it is, and with `remove_gradient_parallel_to_decoder_directions`
made a no-op, which is what SAELens 5.6's call amounts to (it calls it after `optimizer.step()`, once the gradient has
been used). Each prints its MSE loss every 20 steps and the explained variance on the held-out activations; the three
results go to `bench/results/quality-same-init.json` (TopK) or `quality-same-init-ARCH.json`.
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, tempfile, types
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parent
VARIANTS = {"saelens5": dict(lib="saelens5"), "saenb": dict(lib="saenb"),
            "saenb, projection as 5.6 (none)": dict(lib="saenb", no_projection=True)}


def train(lib: str, cache: Path, init: Path, arch: str, k: int|None, coef: float|None, init_threshold: float|None,
          steps: int, seed: int, no_projection: bool) -> dict:
    "One library's run through the sweep's `train_lens5`, in its own venv; the first run writes `init`, the others load it."
    sys.path.insert(0, str(ROOT))
    import quality_worker as w
    mse = []

    def prepare(sae):
        if init.exists(): sae.load_state_dict(torch.load(init))
        else: torch.save(sae.state_dict(), init)
        if no_projection: sae.remove_gradient_parallel_to_decoder_directions = lambda: None
        forward = sae.training_forward_pass
        def logged(*args, **kwargs):
            out = forward(*args, **kwargs)
            mse.append(float(out.losses["mse_loss"]))
            return out
        sae.training_forward_pass = logged

    a = types.SimpleNamespace(d_sae=4608, batch=4096, n_steps=steps, seed=seed, k=k, coef=coef,
                              init_threshold=init_threshold, config_set={})
    batches = w.Batches(torch.load(cache / "train.pt", mmap=True), a.batch, steps, seed)
    common = w.train_lens5(lib, arch, a, batches, prepare)["common"]
    if len(mse) != steps: raise SystemExit(f"logged {len(mse)} training forward passes, expected {steps}")
    x = torch.load(cache / "held_out.pt")
    recon = torch.cat([w.common_forward(common, x[i:i + 4096])[1] for i in range(0, len(x), 4096)])
    ev = 1 - float(((recon - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    return dict(mse_every_20_steps=[round(v, 1) for v in mse[::20]], final_mse=round(mse[-1], 1), held_out_ev=round(ev, 4))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="topk", choices=["topk", "standard", "jumprelu"])
    p.add_argument("--k", type=int, default=16, help="topk")
    p.add_argument("--coef", type=float, default=None, help="standard: the L1 coefficient; jumprelu: the L0 coefficient")
    p.add_argument("--init-threshold", type=float, default=None, help="jumprelu: jumprelu_init_threshold")
    p.add_argument("--steps", type=int, default=245)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", help=argparse.SUPPRESS)   # set when this file runs as one variant's worker
    p.add_argument("--init", help=argparse.SUPPRESS)
    p.add_argument("--cache", help=argparse.SUPPRESS)
    a = p.parse_args()
    setting = dict(arch=a.arch, k=a.k if a.arch == "topk" else None, coef=a.coef, init_threshold=a.init_threshold)
    if a.variant:
        v = VARIANTS[a.variant]
        print(json.dumps(train(v["lib"], Path(a.cache), Path(a.init), **setting, steps=a.steps, seed=a.seed,
                               no_projection=v.get("no_projection", False))))
        return
    sys.path.insert(0, str(ROOT))
    from quality import cache_activations
    cache = cache_activations(a.steps * 4096, 256)   # the sweep's cache (built if missing)
    pythons = {"saenb": sys.executable, "saelens5": str(ROOT / ".venvs" / "qsaelens5" / "bin" / "python")}
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for name, v in VARIANTS.items():   # SAELens 5.6 first: it writes the shared initial weights
            env = {**os.environ, "WANDB_MODE": "disabled"}
            if v["lib"] != "saenb": env.pop("PYTHONPATH", None)
            out = subprocess.run([pythons[v["lib"]], __file__, "--variant", name, "--init", str(Path(d) / "init.pt"),
                                  "--cache", str(cache), *sys.argv[1:]],
                                 capture_output=True, text=True, env=env, check=True).stdout
            results[name] = json.loads(out.strip().splitlines()[-1])
            print(f"{name}: held-out EV {results[name]['held_out_ev']}, MSE every 20 steps {results[name]['mse_every_20_steps']}")
    out = ROOT / "results" / ("quality-same-init.json" if a.arch == "topk" else f"quality-same-init-{a.arch}.json")
    out.write_text(json.dumps(dict(command="python bench/quality_same_init.py " + " ".join(sys.argv[1:]), **setting,
                                   steps=a.steps, seed=a.seed, results=results), indent=1) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
