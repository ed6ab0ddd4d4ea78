"""Print the public names each module of an installed SAELens defines (the table `SAE_LENS_5_6_NAMES` in
nbs/17b_module_paths.ipynb was read this way from sae-lens==5.6.0, the type variables `T` left out).

Usage: python tools/sae_lens_names.py /path/to/site-packages/sae_lens   (reads the source; imports nothing)
"""
import ast, pathlib, json, sys
root = pathlib.Path(sys.argv[1])
out = {}
for f in sorted(root.rglob("*.py")):
    mod = ".".join(f.relative_to(root.parent).with_suffix("").parts)
    if mod.endswith(".__init__"): mod = mod[:-9]
    tree = ast.parse(f.read_text())
    defined, imported, alls = [], [], None
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): defined.append(n.name)
        elif isinstance(n, ast.Assign):
            for t in n.targets:
                if isinstance(t, ast.Name):
                    if t.id == "__all__": alls = ast.literal_eval(n.value)
                    else: defined.append(t.id)
        elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name): defined.append(n.target.id)
        elif isinstance(n, ast.ImportFrom) and n.level: imported += [a.asname or a.name for a in n.names]
    out[mod] = dict(all=alls, defined=[d for d in defined if not d.startswith("_")], rel_imported=imported)
for k, v in out.items(): print(k, json.dumps(v))
