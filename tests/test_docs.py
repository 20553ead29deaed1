"""The README and the documentation pages: their examples run, their links resolve.

Examples. Every ```python block of `README.md` and of `docs/*.md` (not `docs/reference/`,
which mkdocstrings generates) runs, one test per page: the page's blocks run in order in
one namespace, so a later block may use what an earlier one defined. Each page starts
afresh. ```bash blocks and other languages are not run. Before a page runs:

- `x_train, y_train, x_test, y_test` are defined: 300 training and 100 test images of
  scikit-learn's bundled handwritten digits, drawn MNIST-like (uint8, 28x28, a 24x24 digit
  centred on a black border, labels 0-9);
- `kerasnas.datasets.load_mnist()`, `load_fashion_mnist()` and `load_with_source(...)`
  return those same images (as `((x_train, y_train), (x_test, y_test))`; the source is
  `"cache"`), so nothing is downloaded;
- the working directory is a fresh temporary folder, so relative run directories and saved
  models land there;
- in the source text, `time_limit=<number>` (a literal such as `600`, `60 * 60` or `1.5`)
  becomes `time_limit=15`;
- a `fit` whose estimator has no `max_trials` stops after 1 trial, and a `fit` or
  `final_fit` without `epochs` trains at most 1 epoch per trial, as if the example had
  passed them: so a search ends by its trials rather than by the clock, and the tests
  neither depend on the machine's speed nor spend 15 s per example.

Nothing else changes: the code that runs is the page's own. A block that cannot run in a
test (several machines, a GPU, a real download) is skipped when the line before it (blank
lines aside) is the comment `<!-- not run: reason -->`; the reason is required. Tracebacks
point at the page's own line numbers. A page whose examples call `fit`, `final_fit` or
`search` is marked `slow`; one that trains nothing runs in the quick subset.

Links. Every relative link of those pages (and of `README.md`) points to a file that
exists, and an anchor (`page.md#section`) to a heading of that page under both GitHub's
and MkDocs' rules for heading ids, so a link works on GitHub and on the site alike. Links
from `docs/` stay inside `docs/` (the site has nothing else). The README stays a front
door: at most 130 lines.

The `searcher_args` page. `docs/searcher-args.md` holds one table `| knob | default |
what it does |` of the oracle's knobs: the keyword arguments of
`kerasnas.oracle.NetworkMorphismOracle` other than those the estimators set themselves,
each with `repr()` of its default, and each described in the class docstring's Args.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 130
TIME_LIMIT = 15  # seconds: an upper bound; `quick_training` ends each search sooner
QUICK_TRIALS, QUICK_EPOCHS = 1, 1
TRAIN_IMAGES, TEST_IMAGES = 300, 100

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
NOT_RUN = re.compile(r"^\s*<!--\s*not run\b(?P<rest>.*?)-->\s*$")
TIME_LIMIT_ARG = re.compile(r"\btime_limit(\s*)=(\s*)\d[\d_]*(?:\.\d*)?(?:\s*\*\s*\d[\d_]*)*")
TRAINS = re.compile(r"\.(?:fit|final_fit|search)\(")


@dataclasses.dataclass
class Block:
    language: str
    line: int  # the first line of code, 1-based
    source: str  # dedented, as the page has it
    marker: str | None = None  # the `<!-- not run ... -->` line before the fence, if any

    @property
    def reason(self):
        """The reason the marker gives: None without a marker, "" for one without a reason."""
        if self.marker is None:
            return None
        return NOT_RUN.match(self.marker).group("rest").strip().lstrip(":").strip()


def relative(path):
    return path.relative_to(ROOT).as_posix()


def read_page(path):
    """`(blocks, prose)`: the page's fenced code blocks, and its other lines (as
    `(line number, text)`) with the code blocks left out."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, prose, i = [], [], 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        fence, indent = opened.group("fence"), len(opened.group("indent"))
        closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body, j = [], i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        marker = None
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        if k >= 0 and NOT_RUN.match(lines[k]):
            marker = lines[k]
        language = opened.group("info").lower()
        blocks.append(Block(language, i + 2, "\n".join(body) + "\n", marker))
        i = j + 1
    return blocks, prose


def python_blocks(path):
    return [b for b in read_page(path)[0] if b.language in ("python", "py")]


def substituted(source):
    """The block's source with the documented substitutions, line for line."""
    return TIME_LIMIT_ARG.sub(lambda m: f"time_limit{m[1]}={m[2]}{TIME_LIMIT}", source)


def example_pages():
    params = []
    for page in PAGES:
        run = [b for b in python_blocks(page) if b.marker is None]
        if not run:
            continue
        trains = any(TRAINS.search(b.source) for b in run)
        params.append(
            pytest.param(page, id=relative(page), marks=[pytest.mark.slow] if trains else [])
        )
    return params


def digit_images():
    """`(x_train, y_train, x_test, y_test)`: scikit-learn's 8x8 digits drawn at 28x28."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    digits = sklearn_datasets.load_digits()  # 1,797 images, values 0-16, bundled
    x = np.kron(digits.images, np.ones((3, 3)))  # 24x24
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))  # 28x28, as MNIST centres its digits
    x = np.clip(x * 16, 0, 255).astype("uint8")
    y = digits.target.astype("uint8")
    n, m = TRAIN_IMAGES, TEST_IMAGES
    return x[:n], y[:n], x[-m:], y[-m:]


@pytest.fixture
def restored_state():
    """Puts back what an example may change for the tests after it: the environment,
    Keras' interactive logging, logging's handlers and levels, open figures."""
    import keras

    environ = dict(os.environ)
    interactive = keras.config.is_interactive_logging_enabled()
    loggers = [logging.getLogger(), logging.getLogger("kerasnas")]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    yield
    os.environ.clear()
    os.environ.update(environ)
    if interactive:
        keras.config.enable_interactive_logging()
    else:
        keras.config.disable_interactive_logging()
    for lg, handlers, level, propagate in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
    import matplotlib.pyplot as plt

    plt.close("all")


def quick_training(monkeypatch, task_class):
    """Makes every `fit` stop after `QUICK_TRIALS` trials of at most `QUICK_EPOCHS` epochs,
    and every `final_fit` after `QUICK_EPOCHS`, where the example sets neither."""
    fit, final_fit = task_class.fit, task_class.final_fit

    def quick_fit(self, *args, epochs=None, **kwargs):
        if self.max_trials is None:
            self.max_trials = QUICK_TRIALS
        return fit(self, *args, epochs=QUICK_EPOCHS if epochs is None else epochs, **kwargs)

    def quick_final_fit(self, *args, epochs=None, **kwargs):
        return final_fit(self, *args, epochs=QUICK_EPOCHS if epochs is None else epochs, **kwargs)

    monkeypatch.setattr(task_class, "fit", quick_fit)
    monkeypatch.setattr(task_class, "final_fit", quick_final_fit)


@pytest.mark.parametrize("page", example_pages())
def test_the_page_examples_run(page, tmp_path, monkeypatch, restored_state):
    import matplotlib

    matplotlib.use("Agg")  # plt.show() returns at once
    import kerasnas

    x_train, y_train, x_test, y_test = digit_images()

    def splits(*args, **kwargs):
        return (x_train.copy(), y_train.copy()), (x_test.copy(), y_test.copy())

    monkeypatch.setattr(kerasnas.datasets, "load_mnist", splits)
    monkeypatch.setattr(kerasnas.datasets, "load_fashion_mnist", splits)
    monkeypatch.setattr(kerasnas.datasets, "load_with_source", lambda *a, **k: (splits(), "cache"))
    monkeypatch.chdir(tmp_path)
    quick_training(monkeypatch, kerasnas.tasks.estimator.ImageTask)
    namespace = {
        "__name__": "__main__",
        "x_train": x_train.copy(),
        "y_train": y_train.copy(),
        "x_test": x_test.copy(),
        "y_test": y_test.copy(),
    }
    for block in python_blocks(page):
        if block.marker is not None:
            continue
        # Padded so that a traceback names the page and its own line numbers.
        source = "\n" * (block.line - 1) + substituted(block.source)
        exec(compile(source, relative(page), "exec"), namespace)


def test_skipped_examples_say_why():
    problems = []
    for page in PAGES:
        blocks, prose = read_page(page)
        marked = {
            b.marker for b in blocks if b.marker is not None and b.language in ("python", "py")
        }
        for number, text in prose:
            if not NOT_RUN.match(text):
                continue
            where = f"{relative(page)}:{number}"
            if text not in marked:
                problems.append(f"{where}: `{text.strip()}` is not right before a ```python block")
        for b in python_blocks(page):
            if b.marker is not None and not b.reason:
                problems.append(
                    f"{relative(page)}:{b.line - 1}: `{b.marker.strip()}` gives no reason; "
                    "write `<!-- not run: why it cannot run in a test -->`"
                )
    assert not problems, "\n".join(problems)


def test_the_substitutions():
    assert (
        substituted("clf.fit(x, y, time_limit=600)\n")
        == f"clf.fit(x, y, time_limit={TIME_LIMIT})\n"
    )
    assert (
        substituted("fit(time_limit = 60 * 60, seed=1)")
        == f"fit(time_limit = {TIME_LIMIT}, seed=1)"
    )
    assert (
        substituted("final_fit(x, y, time_limit=1_800.5)")
        == f"final_fit(x, y, time_limit={TIME_LIMIT})"
    )
    assert substituted("fit(time_limit=LIMIT)") == "fit(time_limit=LIMIT)"
    blocks, _ = read_page_text(
        "Text\n\n<!-- not run: needs two machines -->\n\n```python\nimport os\n```\n"
        "```bash\nkerasnas demo\n```\n  ```py\n  x = 1\n  ```\n"
    )
    assert [(b.language, b.line, b.source, b.reason) for b in blocks] == [
        ("python", 6, "import os\n", "needs two machines"),
        ("bash", 9, "kerasnas demo\n", None),
        ("py", 12, "x = 1\n", None),
    ]


def read_page_text(text):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "page.md"
        path.write_text(text, encoding="utf-8")
        return read_page(path)


# Links.

INLINE_CODE = re.compile(r"(`+).*?\1")
INLINE_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*[\"'])?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_LINK = re.compile(r"\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']")
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
HTML_ID = re.compile(r"<a\s+(?:[^>]*\s)?(?:id|name)\s*=\s*[\"']([^\"']+)[\"']")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")


def links(path):
    """`(line number, target)` for every link and image of a page, code left out."""
    found = []
    for number, text in read_page(path)[1]:
        text = INLINE_CODE.sub("", text)
        for pattern in (INLINE_LINK, REFERENCE_LINK, HTML_LINK):
            found += [(number, m.group(1)) for m in pattern.finditer(text)]
    return found


def heading_text(markdown):
    """A heading as rendered text: links become their text, code and emphasis marks go."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("`", "").replace("**", "").replace("__", "")


def github_slug(text):
    """GitHub's heading id: lower case, punctuation dropped, each space a hyphen."""
    text = heading_text(text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def mkdocs_slug(text):
    """Python-Markdown's `toc.slugify`, which MkDocs uses."""
    text = unicodedata.normalize("NFKD", heading_text(text)).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path):
    """`(GitHub's ids, MkDocs' ids)` of a page's headings, each with explicit HTML ids."""
    github, mkdocs, explicit = [], [], set()
    for _, text in read_page(path)[1]:
        explicit.update(m.group(1) for m in HTML_ID.finditer(text))
        heading = HEADING.match(text)
        if not heading:
            continue
        for slugs, slug, sep in ((github, github_slug, "-"), (mkdocs, mkdocs_slug, "_")):
            base = slug(heading.group(1))
            same = sum(s == base or s.startswith(base + sep) for s in slugs)
            slugs.append(base if not same else f"{base}{sep}{same}")
    return set(github) | explicit, set(mkdocs) | explicit


def test_relative_links_resolve():
    problems = []
    for page in PAGES:
        for number, target in links(page):
            if SCHEME.match(target):
                continue
            where = f"{relative(page)}:{number}: ({target})"
            file_part, _, anchor = target.partition("#")
            # normpath, not resolve: docs/notebook.ipynb is a link to ../notebooks, and is
            # a page of the site all the same.
            resolved = Path(os.path.normpath(page.parent / file_part)) if file_part else page
            if not resolved.exists():
                problems.append(f"{where} points to {file_part}, which does not exist")
                continue
            if page.parent == DOCS and DOCS not in resolved.parents:
                problems.append(f"{where} leaves docs/: the site has no such page")
                continue
            if anchor and resolved.suffix == ".md":
                github, mkdocs = anchors(resolved)
                if anchor not in github or anchor not in mkdocs:
                    problems.append(
                        f"{where}: no heading of {relative(resolved)} has the id #{anchor} "
                        f"on {'GitHub' if anchor not in github else 'the site'} "
                        f"(GitHub's ids: {sorted(github)}; the site's: {sorted(mkdocs)})"
                    )
    assert not problems, "\n".join(problems)


def test_the_slugs():
    assert github_slug("The `time_limit` promise") == "the-time_limit-promise"
    assert mkdocs_slug("The `time_limit` promise") == "the-time_limit-promise"
    assert github_slug("Resume, load, locks") == "resume-load-locks"
    assert mkdocs_slug("[Export](export.md) and serving") == "export-and-serving"


def test_the_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; keep it to {README_MAX_LINES} and move detail "
        "to a page under docs/"
    )


# The searcher_args page against the oracle.

SEARCHER_ARGS = DOCS / "searcher-args.md"
NOT_KNOBS = {
    "input_shape",
    "num_outputs",
    "objective",
    "max_trials",
    "seed",
    "max_model_size",
    "task",
    "clock",
    "kwargs",
}


def table_cells(line):
    """The cells of a Markdown table row (`\\|` is a pipe inside a cell)."""
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def knob_table():
    """`{knob: (default as written, line number)}` from the page's one knob table."""
    assert SEARCHER_ARGS.is_file(), f"{relative(SEARCHER_ARGS)} is missing"
    prose = read_page(SEARCHER_ARGS)[1]
    tables, i = [], 0
    while i < len(prose):
        if prose[i][1].lstrip().startswith("|") and [
            c.lower() for c in table_cells(prose[i][1])
        ] == ["knob", "default", "what it does"]:
            rows, i = [], i + 2  # the header and its |---| line
            while i < len(prose) and prose[i][1].lstrip().startswith("|"):
                rows.append(prose[i])
                i += 1
            tables.append(rows)
        else:
            i += 1
    assert len(tables) == 1, (
        f"{relative(SEARCHER_ARGS)} should have one table with the header "
        f"`| knob | default | what it does |`; found {len(tables)}"
    )
    knobs, problems = {}, []
    for number, line in tables[0]:
        cells = table_cells(line)
        knob = re.fullmatch(r"`(\w+)`", cells[0])
        default = re.fullmatch(r"`([^`]+)`", cells[1]) if len(cells) > 1 else None
        if len(cells) != 3 or not knob or not default:
            problems.append(
                f"{relative(SEARCHER_ARGS)}:{number}: a row should be "
                f"| `knob` | `repr of its default` | what it does |; got {line.strip()}"
            )
            continue
        knobs[knob.group(1)] = (default.group(1), number)
    assert not problems, "\n".join(problems)
    return knobs


def oracle_defaults():
    from kerasnas.oracle import NetworkMorphismOracle

    parameters = inspect.signature(NetworkMorphismOracle.__init__).parameters
    return {
        name: p.default
        for name, p in parameters.items()
        if name != "self" and name not in NOT_KNOBS and p.kind != p.VAR_KEYWORD
    }


def docstring_args(obj):
    """The names the Args section of `obj`'s docstring describes."""
    lines = inspect.cleandoc(obj.__doc__ or "").splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "Args:"]
    if not starts:
        return set()
    section_indent = len(lines[starts[0]]) - len(lines[starts[0]].lstrip())
    names, entry_indent = set(), None
    for line in lines[starts[0] + 1 :]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= section_indent:
            break
        entry_indent = indent if entry_indent is None else entry_indent
        entry = re.match(r"\*{0,2}(\w+)(?:\s*\([^)]*\))?:", line.strip())
        if indent == entry_indent and entry:
            names.add(entry.group(1))
    return names


def test_the_knob_table_lists_the_oracle_arguments():
    knobs, expected = knob_table(), oracle_defaults()
    missing = sorted(set(expected) - set(knobs))
    extra = sorted(set(knobs) - set(expected))
    assert not missing and not extra, (
        f"{relative(SEARCHER_ARGS)} and NetworkMorphismOracle.__init__ disagree: "
        f"knobs missing from the table: {missing}; rows that are no argument: {extra}"
    )


def test_the_knob_table_gives_the_signature_defaults():
    knobs, expected = knob_table(), oracle_defaults()
    wrong = [
        f"{relative(SEARCHER_ARGS)}:{number}: `{knob}` defaults to `{expected[knob]!r}` "
        f"in the signature; the table says `{written}`"
        for knob, (written, number) in knobs.items()
        if knob in expected and written != repr(expected[knob])
    ]
    assert not wrong, "\n".join(wrong)


def test_every_knob_is_in_the_oracle_docstring():
    from kerasnas.oracle import NetworkMorphismOracle

    described = docstring_args(NetworkMorphismOracle)
    undocumented = sorted(set(oracle_defaults()) - described)
    assert not undocumented, (
        f"NetworkMorphismOracle's docstring has no Args entry for: {undocumented}"
    )
