"""saenb against SAELens 5.6.0 and sparsify on identical work, side by side in one run.

    bash bench/setup_peers.sh          # once: the peers, each in its own venv under bench/.venvs
    python bench/run.py                # every case, 3 runs each, medians; one JSON line per case
    python bench/run.py --only step --runs 5
    python bench/run.py --only trained     # the step from a trained SAE's weights (standard, jumprelu, gated)
    python bench/run.py --only density     # saenb's sparse code against its dense path at 1% to 12% active features
    python bench/run.py --only step --before /tmp/kern-before   # saenb against saenb as it was (a checkout's root)

`tokens_per_cpu_s` divides by the process's CPU time instead of wall time: with `--threads 1` it is the figure to
trust on a machine where other work runs. Each measurement is a fresh process (`bench/worker.py`) with the library's own Python; the runs of the libraries
are interleaved (saenb, SAELens, sparsify, saenb, ...) so that a slow patch of a noisy machine hits all of them.

The `step` cases start from freshly initialised SAEs, where about half the ReLU-family features fire. A real run
spends nearly all its steps at a trained SAE's sparsity (here L0 of a few dozen of 4096), which is what the `trained`
cases measure: `worker.py pretrain` trains a standard SAE once with saenb (1,500 steps of 1,024 tokens, saved under
bench/.cache; L0 about 23 of 4096), and every library then takes its steps from those weights, for gated and JumpReLU
converted to their parameters (`worker.trained_start`).
"""
from __future__ import annotations
import argparse, json, os, statistics, subprocess, sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
CACHE = HERE / ".cache"


def worker(python: str, args: list[str], pythonpath: str|None=None) -> dict:
    "Run one measurement; its last stdout line is its JSON result. `pythonpath`: import saenb from that checkout."
    env = None if pythonpath is None else {**os.environ, "PYTHONPATH": pythonpath}
    res = subprocess.run([python, str(HERE / "worker.py"), *args], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} with {python} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def cases(a) -> list[tuple[str, list[str], list[str]]]:
    "(name, worker arguments, libraries) for every case selected (`loss` cases are deterministic: run once)."
    out = []
    if "step" in a.only:
        for arch in ("standard", "topk", "jumprelu", "gated"):
            out.append((f"step/{arch}/4096", ["step", "--arch", arch, "--d-sae", "4096"],
                        ["saenb", "saelens"] + (["sparsify"] if arch == "topk" else [])))
        out.append(("step/topk/16384", ["step", "--arch", "topk", "--d-sae", "16384"], ["saenb", "saelens", "sparsify"]))
    if "trained" in a.only:
        for arch in ("standard", "jumprelu", "gated"):
            out.append((f"step_trained/{arch}/4096", ["step", "--arch", arch, "--init", str(CACHE / "standard-4096.pt")],
                        ["saenb", "saelens"]))
    if "density" in a.only:
        for density in (0.01, 0.02, 0.03, 0.05, 0.08, 0.12):
            out.append((f"density/{density}", ["density", "--density", str(density)], ["saenb"]))
    if "bf16" in a.only:
        for arch in ("standard", "topk"):
            out.append((f"bf16_step/{arch}/4096", ["step", "--arch", arch, "--autocast"], ["saenb"]))
            out.append((f"bf16_loss200/{arch}/4096", ["loss", "--arch", arch, "--steps", "200", "--autocast"], ["saenb"]))
            out.append((f"fp32_loss200/{arch}/4096", ["loss", "--arch", arch, "--steps", "200"], ["saenb"]))
    if "e2e" in a.only:
        for arch in ("standard", "topk"):
            out.append((f"e2e/{arch}", ["e2e", "--arch", arch, "--tokens", str(a.tokens)], ["saenb", "saelens"]))
    if "acts" in a.only:
        out.append(("acts", ["acts", "--tokens", str(a.tokens)], ["saenb", "saelens"]))
    return out


def summarise(name: str, results: dict[str, list[dict]]) -> dict:
    "Medians per library, and saenb's ratio to each peer (and to `saenb@<rev>`, saenb as it was, when measured)."
    line = {"case": name, "runs": len(results["saenb"])}
    for lib, rs in results.items():
        for key in ("tokens_per_s", "tokens_per_cpu_s", "final_loss", "density", "dense_tokens_per_s", "sparse_tokens_per_s",
                    "model_forward_floor_tokens_per_s", "fraction_of_floor", "peak_rss_mb"):
            if key in rs[0]: line[f"{lib}_{key}"] = round(statistics.median(r[key] for r in rs), 4)
    for peer in ("saelens", "sparsify", *(lib for lib in results if lib.startswith("saenb@"))):
        for rate in ("tokens_per_s", "tokens_per_cpu_s"):
            if f"{peer}_{rate}" in line:
                suffix = "" if rate == "tokens_per_s" else "_cpu_time"
                line[f"saenb_over_{peer}{suffix}"] = round(line[f"saenb_{rate}"] / line[f"{peer}_{rate}"], 3)
    return line


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--tokens", type=int, default=200_000, help="tokens per end-to-end run")
    p.add_argument("--only", nargs="+", default=["step", "trained", "bf16", "e2e", "acts"], choices=["step", "trained", "density", "bf16", "e2e", "acts"])
    p.add_argument("--threads", type=int, default=None, help="torch threads in each worker (default: torch's)")
    p.add_argument("--saenb-python", default=sys.executable)
    p.add_argument("--saelens-python", default=str(VENVS / "saelens/bin/python"))
    p.add_argument("--sparsify-python", default=str(VENVS / "sparsify/bin/python"))
    p.add_argument("--before", default=None, metavar="PATH",
                   help="also run saenb from this checkout (e.g. `git worktree add /tmp/before REV`), labelled saenb@REV")
    p.add_argument("--before-label", default=None, help="REV in that label (default: the checkout's HEAD commit)")
    p.add_argument("--skip-missing-peers", action="store_true", help="leave out peers whose venv is missing")
    a = p.parse_args()
    if a.threads: os.environ.update(BENCH_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    pythons = {"saenb": a.saenb_python, "saelens": a.saelens_python, "sparsify": a.sparsify_python}
    pythonpaths = {"saenb": str(HERE.parent)}   # the saenb measured is this checkout's, whatever is installed
    for lib, py in list(pythons.items()):
        if Path(py).exists(): continue
        if a.skip_missing_peers and lib != "saenb":
            print(f"# --{lib}-python={py} does not exist: {lib} left out", file=sys.stderr); del pythons[lib]
        else: raise SystemExit(f"--{lib}-python={py} does not exist: run bash bench/setup_peers.sh (or --skip-missing-peers)")
    if a.before:
        if not (Path(a.before) / "saenb" / "__init__.py").exists(): raise SystemExit(f"--before={a.before} holds no saenb/ package")
        label = a.before_label or _head(a.before)
        before = f"saenb@{label}"
        pythons[before], pythonpaths[before] = a.saenb_python, str(Path(a.before).resolve())
    for name, args, libs in cases(a):
        libs = [lib for lib in libs if lib in pythons] + [lib for lib in pythons if lib.startswith("saenb@")]
        if "--init" in args and not Path(args[args.index("--init") + 1]).exists():
            init = args[args.index("--init") + 1]
            print(f"# pretraining {init} (once)", file=sys.stderr, flush=True)
            print(json.dumps({**worker(a.saenb_python, ["pretrain", "--lib", "saenb", "--steps", "1500", "--init", init]),
                              "case": "pretrain/standard"}), flush=True)
        results = {lib: [] for lib in libs}
        for run in range(1 if args[0] == "loss" else a.runs):
            for lib in libs:
                results[lib].append(worker(pythons[lib], [*args, "--lib", lib.split("@")[0]], pythonpaths.get(lib)))
                r = results[lib][-1]
                shown = next(r[k] for k in ("tokens_per_s", "final_loss", "sparse_tokens_per_s") if k in r)
                print(f"# {name} run {run + 1} {lib}: {shown:.4g}", file=sys.stderr, flush=True)
        print(json.dumps(summarise(name, results)), flush=True)


def _head(path: str) -> str:
    "The short commit of the checkout at `path`, or its folder name when it is not a git checkout."
    res = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else Path(path).name


if __name__ == "__main__":
    main()
