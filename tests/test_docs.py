"""The documentation runs: every ```python block on a page of docs/ executes (a page's
blocks in order, in one namespace), the examples the pages include run, the generated
recipe table lists every recipe, and the site's navigation and README point at pages
that exist. (``make docs`` builds the site itself with --strict.)"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from symtrain.train.recipes import list_recipes

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SNIPPET = re.compile(r'^--8<-- "([^"]+)"', re.M)


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def code_blocks(page: Path) -> list[str]:
    """The runnable blocks of a page (` ```python `; included snippets are run as files)."""
    return [b for b in FENCE.findall(page.read_text()) if not SNIPPET.search(b)]


def run_python(code: str, *args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout)


def test_every_python_block_on_the_pages_runs():
    """One process for all pages (one import of torch); each page in a fresh namespace,
    seeded as if run alone."""
    blocks = {str(p.relative_to(DOCS)): code_blocks(p) for p in pages()}
    blocks = {k: v for k, v in blocks.items() if v}
    assert len(blocks) >= 8, f"expected runnable code on most pages, found it on {sorted(blocks)}"
    driver = (
        "import json, sys, traceback, torch\n"
        "failed = []\n"
        "for page, blocks in json.loads(sys.argv[1]).items():\n"
        "    torch.manual_seed(0)  # each page as if run alone\n"
        "    scope = {'__name__': '__docs__'}\n"
        "    for i, block in enumerate(blocks):\n"
        "        try:\n"
        "            exec(compile(block, f'{page} block {i + 1}', 'exec'), scope)\n"
        "        except Exception:\n"
        "            failed.append(traceback.format_exc())\n"
        "            break\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    import json

    done = run_python(driver, json.dumps(blocks))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_included_files_exist_and_the_examples_they_name_run():
    included = sorted({m for p in pages() for m in SNIPPET.findall(p.read_text())})
    assert "examples/wrap_your_model.py" in included
    for path in included:
        assert (ROOT / path).is_file(), path
    # The other examples run in tests/test_examples.py and test_example_new_*.py.
    done = run_python(open(ROOT / "examples" / "wrap_your_model.py").read())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "FrameAveraging" in done.stdout
    done = run_python(open(ROOT / "examples" / "lps_sn_o3_transformer.py").read(),
                      env={"SYMTRAIN_EXAMPLE_STEPS": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "with LPS" in done.stdout


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_recipe_table_lists_every_recipe():
    hooks = load_hooks()
    rows = hooks.recipe_rows()
    assert [r["name"] for r in rows] == list_recipes()
    for row in rows:
        assert row["data"] and row["model"] and row["method"], row
        assert "smoke" in row["presets"], row
    assert set(hooks.PAPER) <= set(list_recipes()), "a paper number for a recipe that does not exist"
    page = (DOCS / "training.md").read_text()
    assert hooks.MARKER in page
    filled = hooks.on_page_markdown(page)
    assert hooks.MARKER not in filled and "| nbody_pair_ps | nbody |" in filled


def test_doctests_render_as_code():
    import markdown

    html = markdown.markdown("Text.\n\n>>> 1 + 1\n2\n\nSee :func:`~symtrain.lie.derivative.lie_derivative`.",
                             extensions=[load_hooks().DoctestExtension(), "fenced_code"])
    assert "<blockquote>" not in html and "<code" in html and ":func:" not in html
    assert "<code>lie_derivative</code>" in html


def test_nav_pages_exist_and_every_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))

    def walk(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)

    nav = set(walk(config["nav"]))
    on_disk = {str(p.relative_to(DOCS)) for p in pages()}
    assert nav <= on_disk, f"nav names missing pages: {sorted(nav - on_disk)}"
    assert on_disk <= nav, f"pages not in the nav (add one line to mkdocs.yml): {sorted(on_disk - nav)}"


def test_readme_is_a_landing_page_whose_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 150
    assert "make demo" in readme and "make test" in readme
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(links) >= 8, links
    for link in links:
        assert (ROOT / link).is_file(), link


def test_readme_example_is_the_example_ci_runs():
    """README shows examples/wrap_your_model.py verbatim (tested above), so it cannot drift."""
    blocks = FENCE.findall((ROOT / "README.md").read_text())
    assert blocks == [(ROOT / "examples" / "wrap_your_model.py").read_text()]
