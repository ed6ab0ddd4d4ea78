"""Build a feature dashboard for an SAE trained by `saenb-train --demo`, over held-out stdlib text.

    saenb-train --demo                                   # writes checkpoints/demo/<run>/final_<tokens>
    python .ci/demo_dashboard.py checkpoints/demo/<run>/final_<tokens> /tmp/demo_dashboard.html
    python .ci/screenshot_html.py /tmp/demo_dashboard.html --no-network --out-dir /tmp/shots

Five features with density between 0.3% and 3% on the held-out text (seeded choice) and the densest one.
"""
import sys, time, torch
from pathlib import Path
from saenb.sae import SAE
from saenb.load_model import load_offline_model
from saenb.training_runner import demo_datasets
from saenb.analysis import get_feature_activations
from saenb.dashboard import feature_dashboard

sae_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
t0 = time.time()
sae = SAE.load_from_pretrained(str(sae_dir), device="cpu")
model = load_offline_model(device="cpu", first_n_layers=sae.cfg.hook_layer + 1)
_, held_out = demo_datasets(model.tokenizer, context_size=sae.cfg.context_size)
tokens = torch.tensor(held_out["tokens"][:64])
print(f"held-out tokens {tuple(tokens.shape)}; load {time.time() - t0:.1f}s")
t1 = time.time()
acts = get_feature_activations(model, sae, tokens, batch_size=8, show_progress=False)   # all features
density = (acts > 0).float().mean((0, 1))
print(f"activations {tuple(acts.shape)} in {time.time() - t1:.1f}s; dead on held-out: {int((density == 0).sum())}")
mid = ((density > 0.003) & (density < 0.03)).nonzero().flatten()
g = torch.Generator().manual_seed(0)
features = sorted(mid[torch.randperm(len(mid), generator=g)[:5]].tolist())
features.append(int(density.argmax()))            # and the densest feature
t2 = time.time()
dash = feature_dashboard(model, sae, tokens, features, feature_acts=acts[..., features],
                         ignore_tokens=[model.tokenizer.eos_token_id], title="saenb demo SAE: blocks.3.hook_resid_post")
dash.save(out)
print(f"features {features}; densities {[round(dash[f].density, 4) for f in features]}; "
      f"dashboard {time.time() - t2:.1f}s; {out} {out.stat().st_size:,} bytes")
