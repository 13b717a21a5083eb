"""mkdocs hooks: the recipe table of docs/training.md, generated from the recipe registry,
and docstring doctests (``>>>`` lines) shown as code in the API reference.

``<!-- recipes-table -->`` on a page is replaced by one row per recipe that
``symtrain recipes`` lists (data, model, method and presets read from the recipe itself,
so the table cannot drift from the recipes), with the paper's number where a recipe
reproduces a reported one. Offline: it reads the package's own YAML files.
Run ``python docs/hooks.py`` to print the table.
"""

from __future__ import annotations

import re

import yaml
from markdown import Extension
from markdown.preprocessors import Preprocessor

from symtrain.train.recipes import find_recipe, list_recipes

MARKER = "<!-- recipes-table -->"

# Numbers reported by the papers whose settings a recipe follows (from
# shared facts read from the papers; see docs/training.md). "like for like" means the
# recipe runs the paper's setting at its `paper` preset; "variant" means a cheaper or
# locally generated stand-in, so the paper's number is context, not a target.
PAPER: dict[str, tuple[str, str]] = {
    "nbody_pair_ps": ("test MSE 0.00417 (Kim et al. 2023, Transformer-PS)", "like for like"),
    "nbody_pair_canonical": ("test MSE 0.00779 (Kim et al. 2023, canonicalization)", "like for like"),
    "nbody_ps": ("LPS 0.00417 is for the pair-token setting (`nbody_pair_ps`)", "variant"),
    "exp_mlp_ps": ("EXP accuracy 100 % (Kim et al. 2023, MLP-PS)", "variant: EXP-style pairs generated locally"),
    "exp_mlp_ga": ("EXP accuracy 50 % (Kim et al. 2023, MLP-GA)", "variant: EXP-style pairs generated locally"),
    "exp_mlp_canonicalization": ("EXP accuracy 50 % (Kim et al. 2023, MLP-canonical)",
                                 "variant: EXP-style pairs generated locally"),
}


def _method(sym: dict) -> str:
    method = str(sym.get("method", "none"))
    interface = sym.get("interface")
    if isinstance(interface, dict) and interface.get("name"):
        method += f" ({interface['name']})"
    group = sym.get("group")
    return f"{method}, {group}" if group else method


def recipe_rows() -> list[dict[str, str]]:
    """One dict per listed recipe: name, description, data, model, method, presets, paper."""
    rows = []
    for name in list_recipes():
        data = yaml.safe_load(find_recipe(name).read_text()) or {}
        paper, setting = PAPER.get(name, ("", ""))
        rows.append({
            "name": name,
            "description": str(data.get("description", "")).strip(),
            "data": str((data.get("data") or {}).get("name", "")),
            "model": str((data.get("model") or {}).get("name", "")),
            "method": _method(data.get("symmetrization") or {}),
            "presets": ", ".join(data.get("budgets") or {}),
            "paper": f"{paper} — {setting}" if paper else "",
        })
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def recipes_table() -> str:
    """The markdown table that replaces ``MARKER``."""
    lines = ["| recipe | data | model | method | presets | paper |", "|---|---|---|---|---|---|"]
    for row in recipe_rows():
        lines.append("| " + " | ".join(_cell(row[k]) for k in ("name", "data", "model", "method", "presets", "paper"))
                     + " |")
    lines.append("")
    lines.append("What each recipe does, in its own words (`description:`):")
    lines.append("")
    lines += [f"- `{row['name']}`: {_cell(row['description'])}" for row in recipe_rows()]
    return "\n".join(lines)


class _Doctests(Preprocessor):
    """Fence each run of doctest lines (``>>>``, ``...`` and the output up to a blank
    line) as a ``pycon`` code block; Markdown would read ``>>>`` as nested quotes. Sphinx
    roles in docstrings (``:func:`~a.b` ``) become inline code (``b``)."""

    PROMPT = re.compile(r"^(\s*)>>> ?")
    ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")

    @classmethod
    def _role(cls, match: re.Match) -> str:
        name = match.group(2)
        return f"`{name.rsplit('.', 1)[-1] if match.group(1) else name}`"

    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        i, fenced = 0, False
        while i < len(lines):
            line = lines[i]
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            match = None if fenced else self.PROMPT.match(line)
            if match is None:
                out.append(line if fenced else self.ROLE.sub(self._role, line))
                i += 1
                continue
            indent = match.group(1)
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
                i += 1
            out += ["", indent + "```pycon", *(indent + b for b in block), indent + "```", ""]
        return out


class DoctestExtension(Extension):
    def extendMarkdown(self, md) -> None:  # noqa: N802 - Markdown's API
        md.preprocessors.register(_Doctests(md), "symtrain_doctests", 29)  # before the fences (30)


def on_config(config, **kwargs):
    """mkdocs event: the doctest extension joins the page and docstring Markdown
    (mkdocstrings renders docstrings with this same list of extensions)."""
    config.markdown_extensions.append(DoctestExtension())
    return config


def on_page_markdown(markdown: str, **kwargs) -> str:
    """mkdocs event: fill in the table on the page that asks for it."""
    return markdown.replace(MARKER, recipes_table()) if MARKER in markdown else markdown


if __name__ == "__main__":
    print(recipes_table())
