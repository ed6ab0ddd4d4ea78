"""Write README.md from nbs/index.ipynb without Quarto (which cannot be installed offline).

Markdown cells are copied; code cells become ```python blocks (their text outputs, if any, follow as plain blocks);
cells marked `#| hide` are left out and `#|` directive lines are dropped, as nbdev's docs build does."""
import json, sys
from pathlib import Path

def cell_text(cell): return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]

def directives(src): return [l[3:].strip() for l in src.splitlines() if l.startswith("#|")]

def render(nb_path):
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for cell in nb["cells"]:
        src = cell_text(cell)
        if cell["cell_type"] == "markdown": parts.append(src.strip()); continue
        if cell["cell_type"] != "code" or "hide" in (d.split()[0] for d in directives(src) if d): continue
        code = "\n".join(l for l in src.splitlines() if not l.startswith("#|")).strip()
        if code: parts.append(f"```python\n{code}\n```")
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain")
            if text: parts.append("```\n" + ("".join(text) if isinstance(text, list) else text).rstrip() + "\n```")
    return "\n\n".join(p for p in parts if p) + "\n"

if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    out = render(root/"nbs"/"index.ipynb")
    if "--check" in sys.argv:
        if (root/"README.md").read_text() != out: sys.exit("README.md is not what nbs/index.ipynb gives: run python .ci/make_readme.py")
    else: (root/"README.md").write_text(out)
