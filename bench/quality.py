"""SAE quality against the peers (issue 19): saenb, SAELens 5.6.0, the latest SAELens 6.x and sparsify, trained on the
same cached activations with the same dictionary size and token budget, measured by one shared evaluation.

    bash bench/setup_quality_peers.sh            # the peers' venvs under bench/.venvs (once)
    python bench/quality.py                      # the sweep: 1M training tokens a run, seeds 0 and 1
    python bench/quality.py --smoke              # every library x architecture path at a tiny budget
    python bench/quality.py --pilot              # where L1 coefficients and JumpReLU initial thresholds put L0 (one seed)
    python bench/quality.py --only topk --only saenb --seeds 0

Run it with saenb's Python. Steps:

1. **Data.** The offline SmolLM2-135M (`saenb.load_model.load_offline_model`), `blocks.3.hook_resid_post`, over the stdlib
   corpus (`saenb.training_runner.demo_datasets`: packed 128-token contexts, the last 5% of documents held out). The
   activations are cached once, as float32 tensors, in `bench/.cache/quality/<key>/` (`train.pt` [n, 576],
   `held_out.pt` [m, 576], `held_out_tokens.pt` [m / 128, 128]).
2. **Training.** Each (library, architecture, setting, seed) trains in a fresh process with that library's venv
   (`bench/quality_worker.py`, which says how each library is driven), through its own trainer with its documented
   defaults, the same dictionary size (`--d-sae`, 8 x 576) and batches (4096 tokens, the same order at one seed).
   saenb also trains with runner-config fields set over SAELens 5.6's defaults where those leave it behind a peer
   (`SAENB_VARIANTS`; run names such as `saenb[lr=0.001,adam_beta1=0.9]/topk/k=32/seed=0`).
3. **Evaluation** (here, in saenb's venv, one code path for every run): on the held-out activations, L0, explained
   variance `1 - sum|x - x_hat|^2 / sum|x - mean(x)|^2`, MSE (mean over tokens and dimensions), the dead fraction (features
   that never fire on the held-out tokens) and the dense fraction (features firing on more than `DENSE` of them); on
   the first `--ce-contexts` held-out contexts, the next-token CE loss with the SAE's reconstruction spliced in at the
   hook (the model run from layer 4 on the reconstructed residual stream), and CE loss recovered
   `(CE_zero - CE_sae) / (CE_zero - CE_clean)` with the zero-ablated hook as the floor.

One JSON line per finished run is appended to `--out`, with the load averages at the start and end of its training
(`busy` flags runs that shared the machine); the data sizes, and each invocation's command and machine, go to
`<out>.meta.json`. A sweep is resumable: runs already in `--out` are skipped, so the same command, run again after an
interruption (or in another session), does the rest. A run interrupted before its line was written is run again.
"""
from __future__ import annotations
import argparse, json, math, os, platform, signal, subprocess, sys, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache" / "quality"
VENVS = ROOT / ".venvs"
HOOK, LAYER, CONTEXT, D_IN = "blocks.3.hook_resid_post", 3, 128, 576
DENSE = 0.10   # a feature firing on more than this fraction of held-out tokens is dense

PYTHONS = {"saenb": Path(sys.executable), "saelens5": VENVS / "qsaelens5" / "bin" / "python",
           "saelens6": VENVS / "qsaelens6" / "bin" / "python", "sparsify": VENVS / "qsparsify" / "bin" / "python"}

# The sweep (issue 19). Sparsity coefficients: standard = the L1 coefficient (SAELens 6: `l1_coefficient`), jumprelu =
# the L0 coefficient (SAELens 5.6 and saenb: `l1_coefficient`; SAELens 6: `l0_coefficient`); raw activations
# (normalize_activations="none", every library's default). These activations are large (mean norm about 98, per-token
# variance about 14,000, two dimensions carry a mean of 57 and 37), so the grids sit well above the libraries'
# defaults (L1 1e-3 in 5.6, 1.0 in 6; L0 1.0). The grids are per library because the same coefficient is not the same
# penalty everywhere: SAELens 6 starts the decoder at norm 0.1 (5.6 and saenb at 1) and weights its L1 by the decoder
# norms, and JumpReLU's L0 coefficient prices a feature's firing, not its size. The points aim at the TopK points'
# L0s (16 to 64); bench/results/quality-pilot.md (`--pilot`, 1M tokens, seed 0) has the figures:
# - standard, saenb and SAELens 5.6 (one convention; equal L0s in the pilot): 40 and 80 both give L0 30 (EV 0.74),
#   320 collapses (EV -0.02); 20 is a guess for the higher-L0 end.
# - standard, SAELens 6: 80 gives L0 169, 320 gives L0 20; 160 and 240 are interpolated (about 58 and 31 expected).
# - JumpReLU: at this budget the L0 coefficient does not set L0 (10 and 1000 gave identical figures in saenb): its
#   gradient reaches only the threshold, which Adam moves by about lr a step whatever the coefficient (at most
#   245 x 3e-4 = 0.07 in a 1M run: in log space in saenb and 5.6, absolutely in SAELens 6), while the pre-activations
#   reach 3 to 14 where L0 is 16 to 64. What sets L0 is where the threshold starts. So the JumpReLU points vary
#   `jumprelu_init_threshold` (each library has the field), at one L0 coefficient for all, per library because the
#   initial encoders differ in scale and grow differently. saenb and 5.6 (unit-norm decoder): the thresholds at which
#   the freshly initialised SAE has L0 128, 64 and 32 on 4,096 training activations (b_dec at their mean: 2.8, 3.6,
#   7.0); the pilot's 7.0 ended at L0 18, so these aim at about 70, 36 and 18. SAELens 6 (decoder rows start at norm
#   0.1 and are not kept at 1): its pre-activations grow about 7x in training (std 0.53 at init, 3.6 after), and the
#   pilot's 1.6 (init L0 32) ended at L0 1,503. Its seed-0 runs at 4, 8 and 16 ended at L0 263, 35 and 0 (moved to
#   quality-pilot-1m.jsonl); 6 and 10, interpolated in log L0 between 4 and 8, aim at about 80 and 18, saenb's range.
TOPK_K = (16, 32, 64)
STANDARD_L1 = {"saenb": (20.0, 40.0, 80.0), "saelens5": (20.0, 40.0, 80.0), "saelens6": (160.0, 240.0, 320.0)}
JUMPRELU_L0 = 10.0   # the L0 coefficient of every JumpReLU run
JUMPRELU_THETA = {"saenb": (2.8, 3.6, 7.0), "saelens5": (2.8, 3.6, 7.0), "saelens6": (6.0, 8.0, 10.0)}
# `--pilot`: wide grids, one seed, to find where each library's L0 lands. At the full budget: at 250k tokens no L1
# coefficient makes a standard SAE sparse yet (L0 1,250 to 1,820 at 20 and 80), at 1M tokens 80 gives L0 30 (saenb).
PILOT_STANDARD_L1 = {l: (20.0, 40.0, 80.0, 320.0) for l in ("saenb", "saelens5", "saelens6")}
ALL_LIBS = ("saenb", "saelens5", "saelens6", "sparsify")
# saenb with runner-config fields set over SAELens 5.6's defaults (the worker's `--set`), swept beside saenb as it is
# at the k-set architectures (TopK, BatchTopK, Matryoshka BatchTopK).
# In 245 steps, 5.6's Adam without momentum (adam_beta1 0) at lr 3e-4 leaves a TopK SAE short of sparsify's; lr 1e-3
# with SAELens 6's adam_beta1 of 0.9 closes it. How it was found: bench/results/quality-pilot.md.
SAENB_VARIANTS = ({"lr": 1e-3, "adam_beta1": 0.9},)


def grid_runs(arch: str, grid: dict, key: str = "coef", **fixed) -> list[dict]:
    "The runs of a per-library grid {lib: values of `key`}, each value's index for every library in turn."
    return [dict(lib=l, arch=arch, **{key: v}, **fixed) for vs in zip(*grid.values()) for l, v in zip(grid, vs)]


def jumprelu_runs(grid: dict) -> list[dict]:
    return grid_runs("jumprelu", grid, "init_threshold", coef=JUMPRELU_L0)


def sweep() -> list[dict]:
    "The runs whose settings are fixed come first, the coefficient grids last (they can be recalibrated meanwhile)."
    runs = [dict(lib=l, arch="topk", k=k) for k in TOPK_K for l in ALL_LIBS]
    runs += [dict(lib="saenb", arch="topk", k=k, config_set=c) for c in SAENB_VARIANTS for k in TOPK_K]
    for arch in ("batchtopk", "matryoshka_batchtopk"):
        runs += [dict(lib=l, arch=arch, k=32) for l in ("saenb", "saelens6")]
        runs += [dict(lib="saenb", arch=arch, k=32, config_set=c) for c in SAENB_VARIANTS]
    return runs + grid_runs("standard", STANDARD_L1) + jumprelu_runs(JUMPRELU_THETA)


def smoke_sweep() -> list[dict]:
    "Every library x architecture path once, at the middle setting."
    middle = lambda r: r["arch"] == "standard" and r["coef"] == STANDARD_L1[r["lib"]][1] or \
        r["arch"] == "jumprelu" and r["init_threshold"] == JUMPRELU_THETA[r["lib"]][1]
    return [r for r in sweep() if r.get("k", 32) == 32 and (r["arch"] not in ("standard", "jumprelu") or middle(r))]


def pilot_sweep() -> list[dict]:
    return grid_runs("standard", PILOT_STANDARD_L1) + jumprelu_runs(JUMPRELU_THETA)


# the defaults of the sweep, --smoke and --pilot (an option given on the command line wins)
MODES = {None: dict(runs=sweep, budget=1_000_000, seeds=[0, 1], held_out_contexts=256, ce_contexts=64, out="quality.jsonl"),
         "smoke": dict(runs=smoke_sweep, budget=16 * 4096, seeds=[0], held_out_contexts=64, ce_contexts=8,
                       out="quality-smoke.jsonl"),
         "pilot": dict(runs=pilot_sweep, budget=1_000_000, seeds=[0], held_out_contexts=256, ce_contexts=16,
                       out="quality-pilot.jsonl")}


def run_name(r: dict) -> str:
    setting = f"k={r['k']}" if r.get("k") is not None else \
        f"theta={r['init_threshold']:g}" if r.get("init_threshold") is not None else f"coef={r['coef']:g}"
    lib = r["lib"] + ("[" + ",".join(f"{f}={v:g}" for f, v in r["config_set"].items()) + "]" if r.get("config_set") else "")
    return f"{lib}/{r['arch']}/{setting}/seed={r['seed']}"


# ---- 1. the cached activations ----------------------------------------------------------------------------------------

def cache_activations(n_train_tokens: int, n_held_out_contexts: int, batch_contexts: int = 16) -> Path:
    """Cache at least `n_train_tokens` training activations (all the corpus has, if fewer) and up to
    `n_held_out_contexts` held-out contexts; reuse a cache folder already holding them."""
    from tqdm.auto import tqdm
    from saenb.load_model import load_offline_model
    from saenb.training_runner import demo_datasets
    n_train_ctx = math.ceil(n_train_tokens / CONTEXT)
    for folder in sorted(CACHE.glob("ctx*")):   # a bigger cache serves a smaller request
        meta = json.loads((folder / "meta.json").read_text()) if (folder / "meta.json").exists() else None
        if meta and meta["n_train_contexts"] >= min(n_train_ctx, meta["corpus_train_contexts"]) \
                and meta["n_held_out_contexts"] >= min(n_held_out_contexts, meta["corpus_held_out_contexts"]):
            return folder
    model = load_offline_model(device="cpu", first_n_layers=LAYER + 1)
    train_ds, held_ds = demo_datasets(model.tokenizer, CONTEXT)
    n_train_ctx, n_held_ctx = min(n_train_ctx, len(train_ds)), min(n_held_out_contexts, len(held_ds))
    folder = CACHE / f"ctx{CONTEXT}-train{n_train_ctx}-held{n_held_ctx}"
    folder.mkdir(parents=True, exist_ok=True)

    @torch.no_grad()
    def acts_of(tokens: torch.Tensor, desc: str) -> torch.Tensor:
        out = torch.empty(tokens.shape[0] * CONTEXT, D_IN)
        for i in tqdm(range(0, tokens.shape[0], batch_contexts), desc=desc, mininterval=5):
            _, cache = model.run_with_cache(tokens[i:i + batch_contexts], names_filter=[HOOK], stop_at_layer=LAYER + 1)
            out[i * CONTEXT:(i + batch_contexts) * CONTEXT] = cache[HOOK].reshape(-1, D_IN).float()
        return out

    t0 = time.time()
    held_tokens = torch.tensor(held_ds["tokens"][:n_held_ctx])
    torch.save(acts_of(held_tokens, "caching held-out activations"), folder / "held_out.pt")
    torch.save(held_tokens, folder / "held_out_tokens.pt")
    train_tokens = torch.tensor(train_ds["tokens"][:n_train_ctx])
    torch.save(acts_of(train_tokens, "caching training activations"), folder / "train.pt")
    meta = dict(hook=HOOK, context=CONTEXT, n_train_contexts=n_train_ctx, n_held_out_contexts=n_held_ctx,
                corpus_train_contexts=len(train_ds), corpus_held_out_contexts=len(held_ds),
                train_tokens=n_train_ctx * CONTEXT, held_out_tokens=n_held_ctx * CONTEXT, seconds=time.time() - t0)
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    return folder


# ---- 3. the shared evaluation -----------------------------------------------------------------------------------------

from quality_worker import common_forward as sae_forward   # one forward of the common form, for the workers and this evaluation


class Evaluator:
    "Held-out metrics of SAEs in the common form; the model and the clean and zero-ablation CE losses are computed once."
    def __init__(self, folder: Path, ce_contexts: int, chunk: int = 4096):
        self.x = torch.load(folder / "held_out.pt", mmap=True)
        self.tokens = torch.load(folder / "held_out_tokens.pt")[:ce_contexts]
        self.chunk, self.model, self.base = chunk, None, None
        self.mean = self.x.mean(0)
        self.total_var = float(((self.x - self.mean) ** 2).sum())

    def _ce(self, resid: torch.Tensor) -> float:
        "Mean next-token CE loss over the CE contexts, the model run from layer 4 on `resid` [contexts * 128, d]."
        losses = []
        for i in range(0, self.tokens.shape[0], 8):
            toks = self.tokens[i:i + 8]
            r = resid[i * CONTEXT:(i + toks.shape[0]) * CONTEXT].view(toks.shape[0], CONTEXT, D_IN)
            logits = self.model(r, start_at_layer=LAYER + 1, return_type="logits")
            losses.append(torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                            toks[:, 1:].reshape(-1), reduction="none"))
        return float(torch.cat(losses).mean())

    @torch.no_grad()
    def ce_base(self) -> dict:
        if self.base is None:
            from saenb.load_model import load_offline_model
            self.model = load_offline_model(device="cpu")
            n = self.tokens.shape[0] * CONTEXT
            clean = self.x[:n].clone()
            self.base = dict(ce_clean=self._ce(clean), ce_zero_ablation=self._ce(torch.zeros_like(clean)),
                             # the whole model on the tokens: checks that running from layer 4 on the cache is the model
                             ce_clean_full_forward=float(self.model(self.tokens, return_type="loss")))
        return self.base

    @torch.no_grad()
    def __call__(self, c: dict) -> dict:
        t0 = time.time()
        sse, fires, l0 = 0.0, torch.zeros(c["W_dec"].shape[0], dtype=torch.long), 0
        n_ce = self.tokens.shape[0] * CONTEXT
        recon_ce = torch.empty(n_ce, D_IN)
        for i in range(0, self.x.shape[0], self.chunk):
            x = self.x[i:i + self.chunk]
            acts, recon = sae_forward(c, x)
            active = acts != 0
            l0 += int(active.sum())
            fires += active.sum(0)
            sse += float(((recon - x) ** 2).sum())
            if i < n_ce: recon_ce[i:min(i + self.chunk, n_ce)] = recon[:n_ce - i]
        n = self.x.shape[0]
        base = self.ce_base()
        ce_sae = self._ce(recon_ce)
        freq = fires.float() / n
        return dict(l0=l0 / n, explained_variance=1 - sse / self.total_var, mse=sse / (n * D_IN),
                    ce_loss_with_sae=ce_sae, **base,
                    ce_loss_recovered=(base["ce_zero_ablation"] - ce_sae) / (base["ce_zero_ablation"] - base["ce_clean"]),
                    dead_fraction=float((fires == 0).float().mean()), dense_fraction=float((freq > DENSE).float().mean()),
                    eval_tokens=n, ce_eval_tokens=n_ce, eval_seconds=time.time() - t0)


# ---- 2. the runs ------------------------------------------------------------------------------------------------------

def cpu_model() -> str:
    """The CPU, as `/proc/cpuinfo` names it, with its family and model and its widest vector extension (for example
    "AMD EPYC (family 23, model 1, avx2)"), so that wall times from different machines are told apart."""
    try: first = open("/proc/cpuinfo").read().split("\n\n")[0]   # the first processor's block
    except OSError: return platform.processor() or platform.machine()
    info = {k.strip(): v.strip() for k, v in (l.split(":", 1) for l in first.splitlines() if ":" in l)}
    flags = set(info.get("flags", "").split())
    isa = next((f for f in ("amx_tile", "avx512f", "avx2") if f in flags), "no avx2")
    return f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}, {isa})"


def train(r: dict, a, folder: Path) -> dict:
    out = CACHE / "runs" / (run_name(r).replace("/", "__") + f"-b{a.budget}.pt")
    cmd = [str(PYTHONS[r["lib"]]), str(ROOT / "quality_worker.py"), "--lib", r["lib"], "--arch", r["arch"],
           "--seed", str(r["seed"]), "--d-sae", str(a.d_sae), "--batch", str(a.batch), "--budget", str(a.budget),
           "--acts", str(folder / "train.pt"), "--out", str(out)]
    if r.get("k") is not None: cmd += ["--k", str(r["k"])]
    if r.get("coef") is not None: cmd += ["--coef", str(r["coef"])]
    if r.get("init_threshold") is not None: cmd += ["--init-threshold", str(r["init_threshold"])]
    for f, v in r.get("config_set", {}).items(): cmd += ["--set", f"{f}={json.dumps(v)}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    if r["lib"] != "saenb": env.pop("PYTHONPATH", None)   # a peer's venv sees its own packages only
    t0, load_start = time.time(), os.getloadavg()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.timeout)
    # the 1, 5 and 15-minute load averages as the training process starts and ends (see `busy`)
    load = dict(process_seconds=time.time() - t0, load_avg_start=load_start, load_avg_end=os.getloadavg(), cpus=os.cpu_count(),
                cpu=cpu_model())
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        return dict(status="failed", returncode=p.returncode, stderr_tail=p.stderr[-3000:], **load)
    return dict(json.loads(lines[-1]), status="ok", weights=str(out.relative_to(ROOT.parent)), **load)


def evaluate_saved(folder: Path, a) -> dict:
    "The shared evaluation of a saenb SAE saved in `folder` (its cfg.json and weights), on the sweep's held-out data."
    from saenb.sae import SAE
    from quality_worker import from_lens_inference_sae
    sae = SAE.load_from_disk(str(folder), device="cpu")
    cache = cache_activations(max(a.budget, a.batch), a.held_out_contexts)
    return dict(sae=str(folder), architecture=sae.cfg.architecture, d_sae=sae.cfg.d_sae,
                **Evaluator(cache, a.ce_contexts)(from_lens_inference_sae(sae)))


def busy(line: dict) -> bool:
    """Whether the machine was busy with other work when the run trained: a 1-minute load average above the cores + 1
    at its start or end (the run itself keeps about one thread a core busy). Its wall time and tok/s are then not an
    idle machine's; its quality figures are unaffected."""
    return "cpus" in line and max(line["load_avg_start"][0], line["load_avg_end"][0]) > line["cpus"] + 1


# ---- reports ------------------------------------------------------------------------------------------------------------

def markdown_table(lines: list[dict]) -> str:
    cols = [("run", "run", "{}"), ("train tokens", "train_tokens", "{:,}"), ("tok/s", "steady_tokens_per_s", "{:,.0f}"),
            ("train s", "train_seconds", "{:.1f}"), ("L0", "l0", "{:.1f}"), ("EV", "explained_variance", "{:.3f}"),
            ("MSE", "mse", "{:.4g}"), ("CE rec.", "ce_loss_recovered", "{:.3f}"), ("CE with SAE", "ce_loss_with_sae", "{:.3f}"),
            ("dead", "dead_fraction", "{:.3f}"), ("dense", "dense_fraction", "{:.3f}"), ("form check", "form_check_rel_err", "{:.1e}")]
    rows = ["| " + " | ".join(c[0] for c in cols) + " | load (1 min, start-end) |", "|" + "---|" * (len(cols) + 1)]
    for l in lines:
        cells = [("FAILED" if l.get("status") != "ok" and key != "run" else
                  (fmt.format(l[key]) if l.get(key) is not None else "")) for _, key, fmt in cols]
        load = f"{l['load_avg_start'][0]:.1f}-{l['load_avg_end'][0]:.1f}" + (" **busy**" if busy(l) else "") if "cpus" in l else ""
        rows.append("| " + " | ".join(cells + [load]) + " |")
    if any(map(busy, lines)):
        rows.append("\n**busy**: the 1-minute load average was above the cores + 1 as the run started or ended: other work "
                    "shared the machine, so its train s and tok/s are slower than an idle machine's (the quality figures hold).")
    return "\n".join(rows)


def estimate_full_sweep(lines: list[dict], meta: dict, budget: int = 1_000_000, seeds: int = 2,
                        ce_contexts: int = 64) -> dict:
    """Extrapolate the full sweep's wall time from measured runs: per run, budget / the steady training rate of its
    (library, architecture), plus its process overhead (start, imports, saving), plus its evaluation scaled to the full
    CE evaluation; plus caching `budget` training activations at the measured caching rate."""
    rate = {(l["lib"], l["arch"]): l for l in lines if l.get("status") == "ok"}
    total, per = 0.0, {}
    for r in sweep():
        l = rate.get((r["lib"], r["arch"]))
        if l is None: continue
        tps = l.get("steady_tokens_per_s") or l["tokens_per_s"]
        overhead = l["process_seconds"] - l["train_seconds"]
        ev = l["eval_seconds"] * ce_contexts * CONTEXT / max(l["ce_eval_tokens"], 1)
        secs = seeds * (budget / tps + overhead + ev)
        per[r["lib"]] = per.get(r["lib"], 0) + secs
        total += secs
    data = meta.get("data", {})
    cache = budget / (data["train_tokens"] + data["held_out_tokens"]) * data["seconds"] if data.get("seconds") else 0.0
    return dict(runs=len(sweep()) * seeds, hours_training_and_eval=total / 3600, hours_caching=cache / 3600,
                hours_total=(total + cache) / 3600, hours_per_library={k: v / 3600 for k, v in per.items()})


def read_lines(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=int, help="training tokens per run (default 1,000,000)")
    p.add_argument("--seeds", type=int, nargs="+", help="default 0 1")
    p.add_argument("--only", action="append", default=[],
                   help="keep runs whose name (lib/arch/setting/seed=N) contains this; repeat to AND filters")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--smoke", dest="mode", action="store_const", const="smoke",
                      help="each library x architecture once, 65,536 tokens (16 steps of 4096), seed 0")
    mode.add_argument("--pilot", dest="mode", action="store_const", const="pilot",
                      help="the sparsity-grid pilot: standard and JumpReLU on the PILOT_* grids, seed 0, 16 CE contexts")
    p.add_argument("--d-sae", type=int, default=8 * D_IN)
    p.add_argument("--batch", type=int, default=4096, help="training batch in tokens (every library)")
    p.add_argument("--held-out-contexts", type=int, help="held-out contexts of 128 tokens for L0, EV, MSE (default 256)")
    p.add_argument("--ce-contexts", type=int, help="held-out contexts for the CE loss (default 64)")
    p.add_argument("--timeout", type=int, default=3 * 3600, help="seconds one training process may take")
    p.add_argument("--out", default=None, help="JSON lines, appended to (default bench/results/quality.jsonl; "
                                               "--smoke: quality-smoke.jsonl; --pilot: quality-pilot.jsonl)")
    p.add_argument("--evaluate", default=None, metavar="FOLDER",
                   help="evaluate a saenb SAE saved in FOLDER (e.g. the demo job's) with the shared evaluation, print its line, exit")
    p.add_argument("--report", default=None, metavar="JSONL",
                   help="print the markdown table and full-sweep estimate of a results file (and its .meta.json), then exit")
    a = p.parse_args()
    # `kill PID` stops the sweep and its training process (subprocess.run kills the child on the way out)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))
    if a.report:
        meta_path = Path(a.report + ".meta.json")
        report(read_lines(Path(a.report)), json.loads(meta_path.read_text()) if meta_path.exists() else {})
        return
    a.out = Path(a.out) if a.out else ROOT / "results" / MODES[a.mode]["out"]
    for k, v in MODES[a.mode].items():
        if getattr(a, k, None) is None: setattr(a, k, v)
    if a.evaluate:
        print(json.dumps(evaluate_saved(Path(a.evaluate), a)))
        return
    from tqdm.auto import tqdm
    runs = [{**r, "seed": s} for r in a.runs() for s in a.seeds]
    runs = [r for r in runs if all(f in run_name(r) for f in a.only)]
    # resumable: the results file is only appended to, and a run already in it is not run again
    done = {l["run"]: l for l in read_lines(a.out)}
    for key in ("budget", "d_sae", "batch"):
        other = {l[key] for l in done.values() if key in l} - {getattr(a, key)}
        if other: sys.exit(f"{a.out} holds runs with {key} {other}, not {getattr(a, key)}: give another --out")
    for r in runs:
        if run_name(r) in done:
            print(f"{run_name(r)}: skipped, already in {a.out} ({done[run_name(r)].get('status')}; delete its line to rerun)")
    runs = [r for r in runs if run_name(r) not in done]
    missing = sorted({r["lib"] for r in runs if not PYTHONS[r["lib"]].exists()})
    if missing: sys.exit(f"no venv for {', '.join(missing)}: run bash bench/setup_quality_peers.sh")
    folder = cache_activations(max(a.budget, a.batch), a.held_out_contexts)
    evaluator = Evaluator(folder, a.ce_contexts)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    meta_path = Path(str(a.out) + ".meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else \
        dict(budget=a.budget, d_sae=a.d_sae, batch=a.batch, dense_threshold=DENSE,
             data=json.loads((folder / "meta.json").read_text()), cache=str(folder.relative_to(ROOT.parent)))
    session = dict(command="python bench/quality.py " + " ".join(sys.argv[1:]), seeds=a.seeds, ce_contexts=a.ce_contexts,
                   machine=dict(platform=platform.platform(), processor=platform.processor(), cpu=cpu_model(), cpus=os.cpu_count(),
                                torch_threads=torch.get_num_threads()),
                   started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), runs=len(runs), skipped=len(done))
    meta.setdefault("sessions", []).append(session)   # one entry per invocation, so a resumed sweep keeps every command
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    with open(a.out, "a") as f:
        for r in (bar := tqdm(runs, desc="quality runs")):
            bar.set_postfix_str(run_name(r))
            res = train(r, a, folder)
            line = dict(run=run_name(r), **{k: r.get(k) for k in ("lib", "arch", "k", "coef", "init_threshold", "seed")}, budget=a.budget)
            line.update({k: v for k, v in res.items() if k not in line})
            if res["status"] == "ok": line.update(evaluator(torch.load(ROOT.parent / res["weights"])))
            f.write(json.dumps(line) + "\n"); f.flush()
            tqdm.write(f"{run_name(r)}: " + (f"L0 {line['l0']:.1f}  EV {line['explained_variance']:.3f}  "
                                              f"CE rec {line['ce_loss_recovered']:.3f}  {line['tokens_per_s']:.0f} tok/s  "
                                              f"{line['process_seconds']:.0f} s" + ("  (busy)" if busy(line) else "")
                                              if res["status"] == "ok" else "FAILED\n" + res["stderr_tail"][-1500:]))
    session["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = read_lines(a.out)
    meta["estimate_full_sweep_from_these_runs"] = estimate_full_sweep(lines, meta)
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    report(lines, meta)


def report(lines: list[dict], meta: dict):
    print(markdown_table(lines))
    print(json.dumps(estimate_full_sweep(lines, meta), indent=1))


if __name__ == "__main__":
    main()
