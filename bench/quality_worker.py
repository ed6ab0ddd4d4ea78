"""Train one SAE for `bench/quality.py` on the cached activations, in the library's own venv; print one JSON line.

Run with the Python of the library trained (saenb's, or a peer's own venv under bench/.venvs), so it imports torch and
that library only (never saenb unless `--lib saenb`, never a peer's code in saenb's venv):

    bench/.venvs/qsaelens6/bin/python bench/quality_worker.py --lib saelens6 --arch topk --k 32 --seed 0 \\
        --acts bench/.cache/quality/<cache>/train.pt --budget 1000000 --out bench/.cache/quality/runs/x.pt

Every library trains through its own trainer on exactly the same batches: the cached training activations, in an order
drawn from `--seed` (the same order for every library at one seed), `--batch` tokens a step, for ceil(budget / batch)
steps. How each library is driven:

- saenb and SAELens 5.6 (same API): the library's `SAETrainer.fit()` with a stand-in activations store serving the
  batches (their runner builds its `ActivationsStore` from a model and a text dataset and cannot take a tensor); b_dec is
  initialised by the runner's own `_init_sae_group_b_decs` on the first buffer's worth of tokens, as their runner does.
  Config: the runner config's defaults, with the dictionary size, k or sparsity coefficient set.
- SAELens 6: its documented path for custom activation sources ("Extending SAELens: using SAETrainer directly"):
  `SAETrainer(cfg=runner_cfg.to_sae_trainer_config(), sae=..., data_provider=<iterator of batches>)`, with the
  `LanguageModelSAERunnerConfig` defaults; b_dec initialised as its runner does.
- sparsify: its `Trainer` runs a Hugging Face model over token batches and cannot take activations, so this drives
  sparsify's own `SparseCoder` forward (FVU + AuxK loss), decoder upkeep and optimizer as its `Trainer.fit` does, with
  `TrainConfig`'s defaults (see `train_sparsify`).

The trained SAE is written to `--out` in one common inference form read by the shared evaluation:
`W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec, apply_b_dec_to_input, activation ("relu" | "topk" |
"jumprelu"), k, threshold`, taken from the library's own saved inference SAE where it has one (so folding and
BatchTopK -> JumpReLU conversion are the library's), and checked against the library's own forward pass.
"""
from __future__ import annotations
import argparse, json, math, os, tempfile, time, types
from pathlib import Path
import torch

D_IN, HOOK, LAYER, CONTEXT = 576, "blocks.3.hook_resid_post", 3, 128


class Batches:
    "The training batches: `n_steps` batches of `batch` rows of `acts`, each epoch in a fresh random order drawn from `seed`."
    def __init__(self, acts: torch.Tensor, batch: int, n_steps: int, seed: int):
        self.acts, self.batch, self.n_steps = acts, batch, n_steps
        self.gen = torch.Generator().manual_seed(10_000 + seed)
        self.order, self.pos, self.served, self.epochs = None, 0, 0, 0
        self.times: list[float] = []   # when each batch was asked for: the step times of the library's own loop

    def first(self, n: int) -> torch.Tensor:
        "The first `n` rows of the first epoch's order (what the runners' first buffer would hold), without serving them."
        self._ensure_order()
        return self.acts[self.order[:n]].clone()

    def _ensure_order(self):
        if self.order is None or self.pos + self.batch > len(self.order):
            self.order, self.pos = torch.randperm(self.acts.shape[0], generator=self.gen), 0
            self.epochs += 1

    def next_indices(self) -> torch.Tensor:
        "The rows of the next batch (and the time it was asked for)."
        self._ensure_order()
        rows = self.order[self.pos:self.pos + self.batch]
        self.pos += self.batch
        self.served += 1
        self.times.append(time.perf_counter())
        return rows

    def next(self) -> torch.Tensor:
        return self.acts[self.next_indices()].clone()

    def __iter__(self):
        while True: yield self.next()   # the trainers stop asking at their token budget

    def steady_tokens_per_s(self, skip: int = 3) -> float | None:
        "Tokens per second between batch requests, after the first `skip` steps."
        t = self.times
        if len(t) < skip + 2: return None
        return (len(t) - 1 - skip) * self.batch / (t[-1] - t[skip])


class TensorStore:
    "The part of an `ActivationsStore` that SAELens 5.6's and saenb's `SAETrainer.fit()` and runner b_dec init use."
    def __init__(self, batches: Batches, storage_tokens: int):
        self.batches = batches
        self.storage_buffer = batches.first(storage_tokens)[:, None, :]
        self.estimated_norm_scaling_factor = None   # normalize_activations="none" (the default)
        self.exclude_special_tokens = None

    def set_norm_scaling_factor_if_needed(self): pass

    def next_batch(self) -> torch.Tensor: return self.batches.next()[:, None, :]


# ---- the common inference form -------------------------------------------------------------------------------------

def common_form(W_enc, b_enc, W_dec, b_dec, activation, apply_b_dec_to_input=True, k=None, threshold=None) -> dict:
    f = lambda t: None if t is None else t.detach().float().cpu().contiguous().clone()
    return dict(W_enc=f(W_enc), b_enc=f(b_enc), W_dec=f(W_dec), b_dec=f(b_dec), activation=activation,
                apply_b_dec_to_input=bool(apply_b_dec_to_input), k=None if k is None else int(k), threshold=f(threshold))


def common_forward(c: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    "(feature activations, reconstruction) of the common form; bench/quality.py's evaluation uses it too."
    pre = ((x - c["b_dec"]) if c["apply_b_dec_to_input"] else x) @ c["W_enc"] + c["b_enc"]
    acts = pre.relu()
    if c["activation"] == "topk":
        top = acts.topk(c["k"], dim=-1)
        acts = torch.zeros_like(acts).scatter(-1, top.indices, top.values)
    elif c["activation"] == "jumprelu":
        acts = acts * (pre > c["threshold"])
    elif c["activation"] != "relu": raise ValueError(f"unknown activation {c['activation']!r}")
    return acts, acts @ c["W_dec"] + c["b_dec"]


def from_lens_inference_sae(sae) -> dict:
    "The common form of a SAELens (5.6 or 6) or saenb inference `SAE` loaded from disk."
    if getattr(sae.cfg, "rescale_acts_by_decoder_norm", False):
        # SAELens 6's TopK default: fold the decoder norms into the encoder with the library's own method (exact for
        # this setting), on a copy so that the form check compares with the SAE as loaded
        import copy
        sae = copy.deepcopy(sae)
        sae.fold_W_dec_norm()
        sae.cfg.rescale_acts_by_decoder_norm = False
    cfg, sd = sae.cfg, dict(sae.state_dict())
    arch = cfg.architecture() if callable(getattr(cfg, "architecture", None)) else cfg.architecture
    norm = getattr(cfg, "normalize_activations", "none")
    if norm not in ("none", None): raise SystemExit(f"expected normalize_activations='none', got {norm!r}")
    kwargs = getattr(cfg, "activation_fn_kwargs", None) or {}
    k = getattr(cfg, "k", None) or kwargs.get("k")
    if arch == "jumprelu": activation = "jumprelu"
    elif arch == "topk" or getattr(cfg, "activation_fn_str", None) == "topk": activation = "topk"
    elif arch == "standard": activation = "relu"
    else: raise SystemExit(f"no common form for architecture {arch!r}")
    if getattr(cfg, "rescale_acts_by_decoder_norm", False):
        raise SystemExit("rescale_acts_by_decoder_norm is set on the inference SAE: fold it first")
    return common_form(sd["W_enc"], sd["b_enc"], sd["W_dec"], sd["b_dec"], activation,
                       getattr(cfg, "apply_b_dec_to_input", True), k if activation == "topk" else None,
                       sd.get("threshold"))


def check_against(c: dict, own_forward, x: torch.Tensor) -> dict:
    "How far the common form's reconstruction is from the library's own forward pass on `x`."
    with torch.no_grad():
        mine, theirs = common_forward(c, x)[1], own_forward(x)
    err = (mine - theirs).norm() / theirs.norm().clamp_min(1e-12)
    return dict(form_check_rel_err=float(err))


# ---- SAELens 5.6 and saenb: SAETrainer.fit() with a stand-in store ------------------------------------------------

def lens5_kwargs(arch: str, a) -> dict:
    kw = dict(model_name="bench-quality-cached", hook_name=HOOK, hook_layer=LAYER, d_in=D_IN, d_sae=a.d_sae,
              architecture=arch, train_batch_size_tokens=a.batch, training_tokens=a.n_steps * a.batch,
              context_size=CONTEXT, device="cpu", log_to_wandb=False, n_checkpoints=0, seed=a.seed,
              dataset_path="unused", is_dataset_tokenized=True)
    if arch in ("topk", "batchtopk", "matryoshka_batchtopk"): kw.update(activation_fn="topk", activation_fn_kwargs={"k": a.k})
    if a.coef is not None: kw["l1_coefficient"] = a.coef   # standard: the L1 coefficient; jumprelu: the L0 coefficient
    if a.init_threshold is not None: kw["jumprelu_init_threshold"] = a.init_threshold
    return {**kw, **a.config_set}


def train_lens5(lib: str, arch: str, a, batches: Batches, prepare=None) -> dict:
    "`prepare(sae)`, when given, runs on the freshly initialised training SAE, before b_dec's init and training."
    if lib == "saenb":
        from saenb.config import LanguageModelSAERunnerConfig
        from saenb.training_sae import TrainingSAE, TrainingSAEConfig
        from saenb.trainer import SAETrainer
        from saenb.training_runner import SAETrainingRunner
        from saenb.sae import SAE
    else:
        from sae_lens import LanguageModelSAERunnerConfig, SAETrainingRunner, SAE
        from sae_lens.training.training_sae import TrainingSAE, TrainingSAEConfig
        from sae_lens.training.sae_trainer import SAETrainer
        if arch not in ("standard", "jumprelu", "topk", "gated"): raise SystemExit(f"SAELens 5.6 has no {arch!r}")
    with tempfile.TemporaryDirectory() as d:
        cfg = LanguageModelSAERunnerConfig(**lens5_kwargs(arch, a), checkpoint_path=str(Path(d) / "ckpt"))
        torch.manual_seed(a.seed)
        sae = TrainingSAE(TrainingSAEConfig.from_sae_runner_config(cfg))
        if prepare is not None: prepare(sae)
        # the runner's first buffer: n_batches_in_buffer * store_batch_size_prompts * context_size tokens, half served
        storage = cfg.n_batches_in_buffer * cfg.store_batch_size_prompts * cfg.context_size // 2
        store = TensorStore(batches, storage)
        t0 = time.perf_counter()
        SAETrainingRunner._init_sae_group_b_decs(types.SimpleNamespace(cfg=cfg, sae=sae, activations_store=store))
        trainer = SAETrainer(model=None, sae=sae, activation_store=store, save_checkpoint_fn=lambda *x, **kw: None, cfg=cfg)
        sae = trainer.fit()
        seconds = time.perf_counter() - t0
        if lib == "saenb":   # the inference form (a BatchTopK-family SAE as the JumpReLU it runs as)
            sae.save_inference_model(str(Path(d) / "sae"))
            inference = SAE.load_from_disk(str(Path(d) / "sae"), device="cpu")
        else:   # SAELens 5.6: save_model writes a JumpReLU's threshold (not its log); load_from_pretrained reads a folder
            sae.save_model(str(Path(d) / "sae"))
            inference = SAE.load_from_pretrained(str(Path(d) / "sae"), device="cpu")
    inference.use_error_term = False
    return dict(common=from_lens_inference_sae(inference), own_forward=inference, train_seconds=seconds,
                config=dict(lr=cfg.lr, l1_coefficient=cfg.l1_coefficient, b_dec_init_method=cfg.b_dec_init_method,
                            lr_scheduler_name=cfg.lr_scheduler_name, adam_beta1=cfg.adam_beta1, adam_beta2=cfg.adam_beta2))


# ---- SAELens 6: SAETrainer with a data provider ----------------------------------------------------------------------

def train_lens6(arch: str, a, batches: Batches) -> dict:
    import sae_lens
    from sae_lens import LanguageModelSAERunnerConfig, SAE
    from sae_lens.config import LoggingConfig
    from sae_lens.saes.sae import TrainingSAE
    from sae_lens.training.sae_trainer import SAETrainer
    names = {"standard": "StandardTrainingSAEConfig", "jumprelu": "JumpReLUTrainingSAEConfig", "topk": "TopKTrainingSAEConfig",
             "batchtopk": "BatchTopKTrainingSAEConfig", "matryoshka_batchtopk": "MatryoshkaBatchTopKTrainingSAEConfig"}
    cfg_cls = getattr(sae_lens, names[arch], None)
    if cfg_cls is None: raise SystemExit(f"sae_lens {sae_lens.__version__} has no {names[arch]}")
    kw = dict(d_in=D_IN, d_sae=a.d_sae)
    if a.k is not None: kw["k"] = a.k
    if arch == "matryoshka_batchtopk":   # SAELens 6 has no default widths: saenb's default (d_sae/16, /8, /4, /2, d_sae)
        kw["matryoshka_widths"] = [a.d_sae >> i for i in (4, 3, 2, 1)] + [a.d_sae]
    if a.coef is not None: kw["l1_coefficient" if arch == "standard" else "l0_coefficient"] = a.coef
    if a.init_threshold is not None: kw["jumprelu_init_threshold"] = a.init_threshold
    sae_cfg = cfg_cls(**kw)
    with tempfile.TemporaryDirectory() as d:
        runner_cfg = LanguageModelSAERunnerConfig(sae=sae_cfg, model_name="bench-quality-cached", hook_name=HOOK,
                                                  dataset_path="unused", is_dataset_tokenized=True, context_size=CONTEXT,
                                                  train_batch_size_tokens=a.batch, training_tokens=a.n_steps * a.batch,
                                                  device="cpu", seed=a.seed, n_checkpoints=0,
                                                  logger=LoggingConfig(log_to_wandb=False), output_path=None,
                                                  checkpoint_path=str(Path(d) / "ckpt"))
        torch.manual_seed(a.seed)
        sae = TrainingSAE.from_dict(sae_cfg.to_dict())
        t0 = time.perf_counter()
        init = getattr(runner_cfg, "b_dec_init_method", None) or getattr(sae_cfg, "b_dec_init_method", None)
        lens6_init_b_dec(sae, init, batches, runner_cfg)
        trainer = SAETrainer(cfg=runner_cfg.to_sae_trainer_config(), sae=sae, data_provider=iter(batches))
        sae = trainer.fit()
        seconds = time.perf_counter() - t0
        sae.save_inference_model(str(Path(d) / "sae"))
        inference = SAE.load_from_disk(str(Path(d) / "sae"), device="cpu")
    inference.use_error_term = False
    config = {k: getattr(runner_cfg, k, None) for k in ("lr", "lr_scheduler_name", "adam_beta1", "adam_beta2")}
    config.update({k: v for k, v in sae_cfg.to_dict().items() if isinstance(v, (int, float, str, bool, type(None)))})
    config["b_dec_init_method"] = init
    return dict(common=from_lens_inference_sae(inference), own_forward=inference, train_seconds=seconds, config=config)


def lens6_init_b_dec(sae, method, batches: Batches, runner_cfg):
    "b_dec as SAELens 6's runner sets it (6.x has no b_dec_init_method: b_dec starts at the SAE's own init, zeros)."
    if method in (None, "zeros"): return
    storage = runner_cfg.n_batches_in_buffer * runner_cfg.store_batch_size_prompts * runner_cfg.context_size // 2
    acts = batches.first(storage)
    if method == "geometric_median":
        from sae_lens.training.geometric_median import compute_geometric_median   # noqa
        sae.initialize_b_dec_with_precalculated(compute_geometric_median(acts, maxiter=100).median)
    elif method == "mean": sae.initialize_b_dec_with_mean(acts)
    else: raise SystemExit(f"unknown b_dec_init_method {method!r}")


# ---- sparsify: its SparseCoder, driven as its Trainer.fit drives it ------------------------------------------------

def train_sparsify(a, batches: Batches) -> dict:
    """sparsify's own `Trainer.fit()` (TrainConfig defaults: signum optimizer with schedule-free averaging, its default
    learning rate for the width, b_dec set to the first batch's mean, unit-norm decoder, FVU loss, no AuxK) on the cached
    activations. Its Trainer runs a Hugging Face model over token ids and hooks a module's output; here the "model" looks
    up rows of the cached activations by index and passes them through an identity module, `layers.3`, which is hooked,
    and the "token ids" are the row indices of our batches: each step sees exactly the batch every other library sees
    (sparsify's default batch of 32 sequences, here 32 x 128 rows = 4096 tokens)."""
    import torch.nn as nn
    from sparsify import SparseCoder, SparseCoderConfig, Trainer, TrainConfig
    if a.arch != "topk": raise SystemExit("sparsify trains TopK SAEs")
    per_seq = a.batch // 32
    if per_seq * 32 != a.batch: raise SystemExit("--batch must be a multiple of 32 for sparsify's 32-sequence batches")

    class CachedActs(nn.Module):
        "Looks up activation rows by index; `layers.3` (an identity) is where sparsify hooks them."
        def __init__(self, table):
            super().__init__()
            self.table = table
            self.layers = nn.ModuleList([nn.Identity() for _ in range(LAYER + 1)])
        base_model = property(lambda self: self)
        device = property(lambda self: torch.device("cpu"))
        dummy_inputs = property(lambda self: {"input_ids": torch.zeros(1, 2, dtype=torch.long)})
        def forward(self, input_ids, **kw):
            if input_ids.numel() == a.batch: batches.times.append(time.perf_counter())
            return self.layers[LAYER](self.table[input_ids.flatten()].view(*input_ids.shape, -1))

    rows = torch.stack([batches.next_indices() for _ in range(a.n_steps)]).view(-1, per_seq)
    batches.times.clear()

    class Rows(torch.utils.data.Dataset):
        def __len__(self): return rows.shape[0]
        def __getitem__(self, i): return {"input_ids": rows[i]}

    with tempfile.TemporaryDirectory() as d:
        cfg = TrainConfig(SparseCoderConfig(num_latents=a.d_sae, k=a.k), batch_size=32, hookpoints=[f"layers.{LAYER}"],
                          init_seeds=[a.seed], log_to_wandb=False, save_dir=d, run_name="q")
        t0 = time.perf_counter()
        trainer = Trainer(cfg, Rows(), CachedActs(batches.acts))
        trainer.fit()
        seconds = time.perf_counter() - t0
        sae = SparseCoder.load_from_disk(Path(d) / "q" / f"layers.{LAYER}", device="cpu")
    c = sae.cfg
    if c.activation != "topk" or c.transcode or c.skip_connection: raise SystemExit(f"unexpected sparsify config {c}")
    common = common_form(sae.encoder.weight.T, sae.encoder.bias, sae.W_dec, sae.b_dec, "topk", True, c.k)
    lr = trainer.optimizers[0].param_groups[0].get("lr")
    return dict(common=common, own_forward=lambda x: sae(x).sae_out, train_seconds=seconds,
                config=dict(optimizer=cfg.optimizer, lr=lr, auxk_alpha=cfg.auxk_alpha, k=c.k,
                            normalize_decoder=c.normalize_decoder, loss_fn=cfg.loss_fn, batch_size=cfg.batch_size))


def parse_set(field: str) -> tuple:
    "`--set FIELD=JSON` as (field, value)."
    name, eq, value = field.partition("=")
    if eq:
        try: return name, json.loads(value)
        except json.JSONDecodeError: pass
    raise SystemExit(f"--set {field!r}: expected FIELD=VALUE with a JSON value, e.g. lr=1e-3 or lr_scheduler_name='\"cosineannealing\"'")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lib", required=True, choices=["saenb", "saelens5", "saelens6", "sparsify"])
    p.add_argument("--arch", required=True, choices=["standard", "jumprelu", "topk", "batchtopk", "matryoshka_batchtopk"])
    p.add_argument("--k", type=int, default=None)
    p.add_argument("--coef", type=float, default=None)
    p.add_argument("--init-threshold", type=float, default=None, help="jumprelu: jumprelu_init_threshold (every library has it)")
    p.add_argument("--set", dest="config_set", action="append", default=[], metavar="FIELD=JSON",
                   help="saenb and SAELens 5.6: a runner config field over its default, e.g. --set lr=1e-3")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--d-sae", type=int, default=4608)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--budget", type=int, default=1_000_000, help="training tokens (rounded up to whole batches)")
    p.add_argument("--acts", required=True, help="the cached training activations [n_tokens, d_in] float32 (torch.save)")
    p.add_argument("--out", required=True, help="where to write the common form (torch.save)")
    a = p.parse_args()
    a.config_set = dict(parse_set(f) for f in a.config_set)
    if a.config_set and a.lib not in ("saenb", "saelens5"): raise SystemExit(f"--set is for saenb and saelens5, not {a.lib}")
    a.n_steps = math.ceil(a.budget / a.batch)
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    acts = torch.load(a.acts, mmap=True)
    batches = Batches(acts, a.batch, a.n_steps, a.seed)
    check_x = acts[-2048:].clone()   # rows for the form check (the end of the training cache)
    if a.lib == "sparsify": res = train_sparsify(a, batches)
    elif a.lib == "saelens6": res = train_lens6(a.arch, a, batches)
    else: res = train_lens5(a.lib, a.arch, a, batches)
    common = res["common"]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(common, a.out + ".tmp")
    os.replace(a.out + ".tmp", a.out)
    out = dict(lib=a.lib, arch=a.arch, k=a.k, coef=a.coef, init_threshold=a.init_threshold, seed=a.seed, d_sae=a.d_sae, batch=a.batch,
               train_steps=batches.served, train_tokens=batches.served * a.batch, epochs=batches.epochs,
               train_seconds=res["train_seconds"], tokens_per_s=batches.served * a.batch / res["train_seconds"],
               steady_tokens_per_s=batches.steady_tokens_per_s(), library_version=library_version(a.lib),
               torch_version=torch.__version__, config=res.get("config", {}), config_set=a.config_set,
               **check_against(common, res["own_forward"], check_x))
    print(json.dumps(out, default=str), flush=True)


def library_version(lib: str) -> str:
    import importlib.metadata as m
    return m.version({"saenb": "saenb", "saelens5": "sae-lens", "saelens6": "sae-lens", "sparsify": "eai-sparsify"}[lib]) \
        if lib != "saenb" else __import__("saenb").__version__


if __name__ == "__main__":
    main()
