"""One benchmark measurement in this process; prints one JSON line.

Run by `bench/run.py` with the Python of the library measured (saenb's, or a peer's own venv), so it imports only
torch, the library itself and, for the end-to-end cases, transformer_lens and datasets. Never imports saenb unless
`--lib saenb`.

    python bench/worker.py step --lib saenb --arch topk --d-sae 4096
    python bench/worker.py e2e  --lib saelens --arch standard --tokens 200000
    python bench/worker.py acts --lib saenb
    python bench/worker.py loss --lib saenb --arch standard --autocast
    python bench/worker.py pretrain --lib saenb --steps 1500 --init bench/.cache/standard-4096.pt
    python bench/worker.py step --lib saelens --arch jumprelu --init bench/.cache/standard-4096.pt
"""
from __future__ import annotations
import argparse, json, math, os, resource, sys, tempfile, time
from pathlib import Path
import torch

D_IN, BATCH, K = 512, 4096, 32


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_batch(n: int, d: int, seed: int) -> torch.Tensor:
    "Sparse combinations of 1024 random unit directions (the same for every seed) plus noise: activations an SAE can learn."
    dirs = torch.randn(1024, d, generator=torch.Generator().manual_seed(0))
    dirs /= dirs.norm(dim=-1, keepdim=True)
    g = torch.Generator().manual_seed(1 + seed)
    codes = (torch.rand(n, 1024, generator=g) < 16 / 1024) * torch.rand(n, 1024, generator=g) * 4
    return codes @ dirs + 0.05 * torch.randn(n, d, generator=g)


# ---- one training step, per library -------------------------------------------------------------------------

def runner_cfg_kwargs(arch: str, d_sae: int, autocast: bool, n_steps: int, batch: int = BATCH) -> dict:
    kw = dict(model_name="tiny", hook_name="blocks.0.hook_mlp_out", hook_layer=0, d_in=D_IN, d_sae=d_sae,
              architecture=arch, train_batch_size_tokens=batch,
              training_tokens=batch * n_steps, device="cpu", log_to_wandb=False, autocast=autocast,
              dataset_path="unused", is_dataset_tokenized=True, context_size=128, n_checkpoints=0, l1_coefficient=1.0)
    if arch == "topk": kw.update(activation_fn="topk", activation_fn_kwargs={"k": K})
    return kw


def lens_trainer(lib: str, arch: str, d_sae: int, autocast: bool, n_steps: int, batch: int = BATCH, init: str | None = None):
    "A step function using the library's own trainer step (SAELens 5.6 and saenb share the API), and the SAE."
    if lib == "saenb":
        from saenb.config import LanguageModelSAERunnerConfig
        from saenb.training_sae import TrainingSAE, TrainingSAEConfig
        from saenb.trainer import SAETrainer
    else:
        from sae_lens import LanguageModelSAERunnerConfig
        from sae_lens.training.training_sae import TrainingSAE, TrainingSAEConfig
        from sae_lens.training.sae_trainer import SAETrainer
    cfg = LanguageModelSAERunnerConfig(**runner_cfg_kwargs(arch, d_sae, autocast, n_steps, batch))
    sae = TrainingSAE(TrainingSAEConfig.from_sae_runner_config(cfg))
    if init: sae.load_state_dict(trained_start(arch, init))   # the same parameter names in both libraries
    trainer = SAETrainer(model=None, sae=sae, activation_store=None, save_checkpoint_fn=lambda *a, **k: None, cfg=cfg)
    def step(x):
        out = trainer._train_step(sae=sae, sae_in=x)
        trainer.n_training_steps += 1
        return out
    return step, sae


def trained_start(arch: str, path: str) -> dict:
    """The trained standard SAE saved at `path` in `arch`'s parameters: as is (standard), the gated SAE computing the same
    function (gate and magnitude biases b_enc, r_mag 0), or a JumpReLU SAE with its threshold at 0.001 (its default
    initial threshold), so each starts with a trained SAE's weights and sparsity."""
    sd = torch.load(path)
    if arch == "gated":
        return dict(W_enc=sd["W_enc"], b_gate=sd["b_enc"], r_mag=torch.zeros_like(sd["b_enc"]), b_mag=sd["b_enc"],
                    W_dec=sd["W_dec"], b_dec=sd["b_dec"])
    if arch == "jumprelu": return {**sd, "log_threshold": torch.full_like(sd["b_enc"], math.log(1e-3))}
    return sd


def sparsify_trainer(d_sae: int, n_steps: int):
    "sparsify's SparseCoder with the steps its Trainer takes around it (decoder-norm upkeep, Adam, fired counts)."
    from sparsify import SparseCoder, SparseCoderConfig
    sae = SparseCoder(D_IN, SparseCoderConfig(num_latents=d_sae, k=K))
    opt = torch.optim.Adam(sae.parameters(), lr=2e-4)
    since_fired = torch.zeros(d_sae, dtype=torch.long)
    def step(x):
        sae.set_decoder_norm_to_unit_norm()
        dead = since_fired > 10_000_000
        out = sae(x, dead_mask=dead)
        fired = torch.zeros(d_sae, dtype=torch.bool)
        fired[out.latent_indices.flatten()] = True
        since_fired.add_(x.shape[0]).masked_fill_(fired, 0)
        loss = out.fvu + out.auxk_loss / 32
        loss.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
        return loss
    return step


def make_step(lib, arch, d_sae, autocast, n_steps, init=None):
    "A function taking one training step on a batch and returning its loss."
    if lib == "sparsify":
        if arch != "topk" or init: raise SystemExit("sparsify trains TopK SAEs only, from initialisation")
        return sparsify_trainer(d_sae, n_steps)
    step, _ = lens_trainer(lib, arch, d_sae, autocast, n_steps, init=init)
    return lambda x: step(x).loss


def cmd_step(a):
    torch.manual_seed(0)
    step = make_step(a.lib, a.arch, a.d_sae, a.autocast, a.warmup + a.steps, a.init)
    xs = [synthetic_batch(BATCH, D_IN, seed=i) for i in range(2)]
    for i in range(a.warmup): step(xs[i % 2])
    t, c = time.perf_counter(), time.process_time()
    for i in range(a.steps): loss = step(xs[i % 2]).detach()
    dt, dc = time.perf_counter() - t, time.process_time() - c
    return dict(tokens_per_s=a.steps * BATCH / dt, tokens_per_cpu_s=a.steps * BATCH / dc, final_loss=float(loss),
                start="trained" if a.init else "init")


def cmd_pretrain(a):
    """Train a standard saenb SAE for `--steps` steps of 1024 fresh tokens and save its weights to `--init`: the trained start
    of the step cases, where a standard, gated or JumpReLU SAE fires as few features as it does in a real run."""
    if a.lib != "saenb": raise SystemExit("pretrain: --lib saenb")
    from tqdm.auto import tqdm
    torch.manual_seed(0)
    step, sae = lens_trainer("saenb", "standard", a.d_sae, False, a.steps, batch=1024)
    for i in tqdm(range(a.steps), desc="pretraining a standard SAE", mininterval=10):
        out = step(synthetic_batch(1024, D_IN, seed=1000 + i))
    Path(a.init).parent.mkdir(parents=True, exist_ok=True)
    torch.save(sae.state_dict(), a.init + ".tmp")
    os.replace(a.init + ".tmp", a.init)
    return dict(l0=float((out.feature_acts > 0).sum(-1).float().mean()), mse_loss=float(out.losses["mse_loss"]))


def cmd_density(a):
    """saenb's standard step with the sparse code on and off, at a set fraction `--density` of active features (the
    encoder bias puts each feature's threshold at that quantile of its pre-activations): where the sparse code pays."""
    if a.lib != "saenb": raise SystemExit("density: --lib saenb")
    step, sae = lens_trainer("saenb", "standard", a.d_sae, False, a.warmup + a.steps, init=a.init)
    xs = [synthetic_batch(BATCH, D_IN, seed=i) for i in range(2)]
    with torch.no_grad():
        pre = (xs[0] - sae.b_dec) @ sae.W_enc
        sae.b_enc.copy_(-pre.quantile(1 - a.density, dim=0))
    start = {k: v.clone() for k, v in sae.state_dict().items()}
    rates = {}
    for mode, max_density in (("dense", 0.0), ("sparse", 1.0)):
        sae.arch.sparse_max_density = max_density
        seconds = 0.0
        for i in range(a.warmup + a.steps):
            sae.load_state_dict(start)   # every step at the set density (training would lower it), untimed
            t = time.perf_counter()
            out = step(xs[i % 2])
            if i >= a.warmup: seconds += time.perf_counter() - t
        rates[f"{mode}_tokens_per_s"] = a.steps * BATCH / seconds
    return dict(density=float((out.feature_acts > 0).float().mean()), **rates)


def cmd_loss(a):
    "Loss after `--steps` steps on fixed synthetic data (fp32 vs bf16 autocast comparison)."
    torch.manual_seed(0)
    step = make_step(a.lib, a.arch, a.d_sae, a.autocast, a.steps)
    data = synthetic_batch(BATCH * 8, D_IN, seed=123)
    losses = [float(step(data[(i % 8) * BATCH:(i % 8 + 1) * BATCH])) for i in range(a.steps)]
    return dict(final_loss=sum(losses[-10:]) / 10)   # mean of the last 10 steps


# ---- end to end: a random 2-layer model, activations, training --------------------------------------------------

def tiny_lm():
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    torch.manual_seed(0)
    return HookedTransformer(HookedTransformerConfig(n_layers=2, d_model=D_IN, d_head=64, n_heads=8, d_mlp=4 * D_IN,
                                                     d_vocab=8192, n_ctx=128, act_fn="gelu", seed=0))


def token_dataset(n_tokens: int):
    "Random token contexts: enough for `n_tokens` of training plus the buffer's never-served storage half, so no run restarts its dataset."
    from datasets import Dataset
    g = torch.Generator().manual_seed(0)
    rows = n_tokens // 128 + 20 * 32 + 64
    return Dataset.from_dict({"tokens": torch.randint(1, 8192, (rows, 128), generator=g).tolist()})


def e2e_cfg(lib: str, arch: str, d_sae: int, n_tokens: int, out_dir: str):
    kw = runner_cfg_kwargs(arch, d_sae, False, n_tokens // BATCH)
    kw.update(model_name="tiny-random", training_tokens=n_tokens, checkpoint_path=out_dir, prepend_bos=False,
              store_batch_size_prompts=32, n_batches_in_buffer=20, seed=0)
    if lib == "saenb":
        from saenb.config import LanguageModelSAERunnerConfig
    else: from sae_lens import LanguageModelSAERunnerConfig
    return LanguageModelSAERunnerConfig(**kw)


def cmd_e2e(a):
    "A whole `SAETrainingRunner.run()`: activations from the model, training, the final evals and save."
    if a.lib == "saenb": from saenb.training_runner import SAETrainingRunner
    elif a.lib == "saelens": from sae_lens import SAETrainingRunner
    else: raise SystemExit("end to end: saenb or saelens")
    model, ds = tiny_lm(), token_dataset(a.tokens)
    with tempfile.TemporaryDirectory() as d:
        runner = SAETrainingRunner(e2e_cfg(a.lib, a.arch, a.d_sae, a.tokens, d), override_dataset=ds,
                                   override_model=model)
        t, c = time.perf_counter(), time.process_time()
        runner.run()
        dt, dc = time.perf_counter() - t, time.process_time() - c
    return dict(tokens_per_s=a.tokens / dt, tokens_per_cpu_s=a.tokens / dc, seconds=dt)


def cmd_acts(a):
    "Activation generation through the library's ActivationsStore vs the bare model forward to the hook."
    model, ds = tiny_lm(), token_dataset(a.tokens)
    toks = torch.tensor(ds["tokens"][:256])
    hook = "blocks.0.hook_mlp_out"
    with torch.no_grad():   # the floor: the same 8 batches of 32 contexts through the model to the hook, nothing else
        model.run_with_cache(toks[:32], names_filter=[hook], stop_at_layer=1)
        t = time.perf_counter()
        for i in range(0, 256, 32): model.run_with_cache(toks[i:i + 32], names_filter=[hook], stop_at_layer=1)
        floor = 256 * 128 / (time.perf_counter() - t)
    if a.lib == "saenb": from saenb.activations_store import ActivationsStore
    else: from sae_lens.training.activations_store import ActivationsStore
    with tempfile.TemporaryDirectory() as d:
        store = ActivationsStore.from_config(model, e2e_cfg(a.lib, "standard", 4096, a.tokens, d), override_dataset=ds)
        store.get_buffer(1)
        t = time.perf_counter()
        acts, _ = store.get_buffer(8)   # 8 model batches of 32 contexts, shuffled, as a training refill reads them
        rate = acts.shape[0] / (time.perf_counter() - t)
    return dict(tokens_per_s=rate, model_forward_floor_tokens_per_s=floor, fraction_of_floor=rate / floor)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=["step", "loss", "e2e", "acts", "pretrain", "density"])
    p.add_argument("--lib", choices=["saenb", "saelens", "sparsify"], required=True)
    p.add_argument("--arch", default="standard", choices=["standard", "topk", "jumprelu", "gated"])
    p.add_argument("--d-sae", type=int, default=4096)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--tokens", type=int, default=200_000)
    p.add_argument("--autocast", action="store_true")
    p.add_argument("--density", type=float, default=0.05, help="density: fraction of features active")
    p.add_argument("--init", default=None, help="step: start from these saved weights (made by pretrain); pretrain: save here")
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    result = dict(case=a.case, lib=a.lib, arch=a.arch, d_sae=a.d_sae, autocast=a.autocast)
    result.update({"step": cmd_step, "loss": cmd_loss, "e2e": cmd_e2e, "acts": cmd_acts, "pretrain": cmd_pretrain,
                   "density": cmd_density}[a.case](a))
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
