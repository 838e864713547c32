"""The user docs: English and Portuguese kept in step, links that lead somewhere, the
README's two commands, and the core API page's examples (run here as doctests).

Two versions of a page are in step when their headings map one to one (same count, same
levels, same order) and their code blocks are the same once comments are set aside (comments
may be translated; commands, code and data may not).
"""

from __future__ import annotations

import doctest
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"

# (English, Portuguese) pairs that must stay in step.
PAIRS = [
    ("README.md", "README.pt-BR.md"),
    ("docs/getting-started.md", "docs/getting-started.pt-BR.md"),
    ("docs/migration.md", "docs/migration.pt-BR.md"),
    ("docs/deployment.md", "docs/deployment.pt-BR.md"),
    ("docs/core-api.md", "docs/core-api.pt-BR.md"),
    ("docs/serpro.md", "docs/serpro.pt-BR.md"),
    ("docs/rasa.md", "docs/rasa.pt-BR.md"),
    ("docs/django.md", "docs/django.pt-BR.md"),
    ("docs/scaling.md", "docs/scaling.pt-BR.md"),
    ("docs/playground.md", "docs/playground.pt-BR.md"),
    ("docs/performance.md", "docs/performance.pt-BR.md"),
    ("docs/fault-test.md", "docs/fault-test.pt-BR.md"),
]
# Pages whose relative links must all lead to a file of the repository.
LINKED_PAGES = [
    *sorted({page for pair in PAIRS for page in pair}),
    "docs/reference/settings.md",
    "docs/reference/settings.pt-BR.md",
    "docs/reference/cli.md",
]
NO_COMMENTS = {"json", "jsonc", "pycon", "console", "markdown", "md", "html", "mermaid"}


@dataclass(frozen=True)
class CodeBlock:
    language: str
    text: str
    line: int


@dataclass(frozen=True)
class Page:
    headings: list[tuple[int, str]]
    blocks: list[CodeBlock]


FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")


def read_page(relative: str, root: Path = ROOT) -> Page:
    """Headings outside code blocks, and the fenced code blocks."""
    headings: list[tuple[int, str]] = []
    blocks: list[CodeBlock] = []
    fence: str | None = None
    language = ""
    body: list[str] = []
    start = 0
    for number, line in enumerate((root / relative).read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence, language, body, start = match.group(2), match.group(3).lower(), [], number
            continue
        if fence is not None:
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                blocks.append(CodeBlock(language, "\n".join(body), start))
                fence = None
            else:
                body.append(line)
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)", line)
        if heading:
            headings.append((len(heading.group(1)), heading.group(2).strip()))
    assert fence is None, f"{relative}: code block opened at line {start} is never closed"
    return Page(headings, blocks)


def without_comments(block: CodeBlock) -> str:
    """The block's commands: `#` comments (whole lines or trailing) and blank lines removed."""
    if block.language in NO_COMMENTS:
        return block.text.strip()
    kept = []
    for line in block.text.splitlines():
        if line.lstrip().startswith("#") and not line.lstrip().startswith("#!"):
            continue
        line = re.sub(r"\s+#(?![!{]).*$", "", line).rstrip()
        if line:
            kept.append(line)
    return "\n".join(kept)


def _existing_pairs() -> list[tuple[str, str]]:
    return [pair for pair in PAIRS if (ROOT / pair[0]).is_file()]


@pytest.mark.parametrize(("english", "portuguese"), PAIRS)
def test_both_languages_exist(english: str, portuguese: str) -> None:
    assert (ROOT / english).is_file(), english
    assert (ROOT / portuguese).is_file(), f"{english} has no Portuguese version {portuguese}"


@pytest.mark.parametrize(("english", "portuguese"), _existing_pairs())
def test_headings_map_one_to_one(english: str, portuguese: str) -> None:
    en, pt = read_page(english), read_page(portuguese)
    en_levels = [level for level, _ in en.headings]
    pt_levels = [level for level, _ in pt.headings]
    assert len(en.headings) >= 3, english
    if en_levels != pt_levels:
        rows = "\n".join(
            f"  {a!s:<50} | {b!s}"
            for a, b in zip(
                en.headings + [None] * len(pt.headings),
                pt.headings + [None] * len(en.headings),
                strict=False,
            )
            if a or b
        )
        pytest.fail(f"{english} and {portuguese} have different sections:\n{rows}")


@pytest.mark.parametrize(("english", "portuguese"), _existing_pairs())
def test_code_blocks_are_the_same(english: str, portuguese: str) -> None:
    en, pt = read_page(english), read_page(portuguese)
    assert len(en.blocks) == len(pt.blocks), (
        f"{english} has {len(en.blocks)} code blocks, {portuguese} {len(pt.blocks)}"
    )
    for a, b in zip(en.blocks, pt.blocks, strict=True):
        assert a.language == b.language, f"{english}:{a.line} vs {portuguese}:{b.line}"
        assert without_comments(a) == without_comments(b), (
            f"code differs: {english}:{a.line} vs {portuguese}:{b.line}"
        )


def test_the_comparison_sees_a_changed_command_but_not_a_translated_comment() -> None:
    en = CodeBlock("bash", "./scripts/run   # starts the gateway\n# then\nls", 1)
    translated = CodeBlock("bash", "./scripts/run   # inicia o gateway\n# depois\nls", 1)
    changed = CodeBlock("bash", "./scripts/run --port 80  # inicia o gateway\nls", 1)
    assert without_comments(en) == without_comments(translated)
    assert without_comments(en) != without_comments(changed)


@pytest.mark.parametrize("readme", ["README.md", "README.pt-BR.md"])
def test_readme_opens_with_the_two_commands(readme: str) -> None:
    first = read_page(readme).blocks[0]
    assert first.line <= 6, f"{readme}: the two commands must come first"
    commands = without_comments(first).splitlines()
    assert commands == ["./scripts/run", "./scripts/test"], commands
    for script in ("scripts/run", "scripts/test"):
        path = ROOT / script
        assert path.is_file(), f"{script} is missing"
        assert os.access(path, os.X_OK), f"{script} is not executable"


@pytest.mark.parametrize("readme", ["README.md", "README.pt-BR.md"])
def test_readmes_link_each_other(readme: str) -> None:
    other = "README.pt-BR.md" if readme == "README.md" else "README.md"
    head = "\n".join((ROOT / readme).read_text(encoding="utf-8").splitlines()[:12])
    assert f"({other})" in head, f"{readme} should link {other} near its top"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", LINKED_PAGES)
def test_relative_links_lead_to_files(page: str) -> None:
    path = ROOT / page
    if not path.is_file():
        pytest.fail(f"{page} is missing")
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        file_part = target.split("#", 1)[0]
        if not (path.parent / file_part).exists():
            broken.append(target)
    assert not broken, f"{page}: links to missing files: {broken}"


# ---- examples run as tests -----------------------------------------------------------------


def run_pycon_blocks(relative: str, root: Path = ROOT) -> tuple[int, int, str]:
    """Run the page's `pycon` blocks in order, sharing one namespace, like a doctest file.
    (attempted, failed, report)."""
    import io

    parser = doctest.DocTestParser()
    output = io.StringIO()
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    namespace: dict[str, object] = {"__name__": "docs_example"}
    for block in read_page(relative, root).blocks:
        if block.language != "pycon":
            continue
        test = parser.get_doctest(block.text, namespace, relative, relative, block.line)
        runner.run(test, out=output.write, clear_globs=False)
        namespace = test.globs  # DocTest works on a copy: carry its names to the next block
    results = runner.summarize(verbose=False)
    return results.attempted, results.failed, output.getvalue()


@pytest.mark.parametrize("page", ["docs/core-api.md", "docs/core-api.pt-BR.md"])
def test_core_api_examples_run(page: str) -> None:
    attempted, failed, report = run_pycon_blocks(page)
    assert attempted >= 30, f"{page}: only {attempted} examples found"
    assert failed == 0, report


def test_a_wrong_example_fails(tmp_path: Path) -> None:
    (tmp_path / "page.md").write_text("# T\n\n```pycon\n>>> 1 + 1\n3\n\n```\n", encoding="utf-8")
    attempted, failed, report = run_pycon_blocks("page.md", tmp_path)
    assert (attempted, failed) == (1, 1)
    assert "Expected:" in report


# ---- the commands in the docs are commands the CLI accepts ---------------------------------

SHELL_LANGUAGES = {"bash", "sh", "shell"}


def gateway_invocations(relative: str) -> list[list[str]]:
    """Each `whatsapp-gateway …` call in the page's shell blocks, as argv (without the program)."""
    import shlex

    calls = []
    for block in read_page(relative).blocks:
        if block.language not in SHELL_LANGUAGES:
            continue
        script = without_comments(block).replace("\\\n", " ")
        for line in script.splitlines():
            for segment in re.split(r"\|\||&&|;|\|", line):
                try:
                    words = shlex.split(segment)
                except ValueError:  # a quote opened in another segment (a pipe inside quotes)
                    continue
                for index, word in enumerate(words):
                    # the program: first on its line, or its path in a bin/ folder (not an
                    # image, a user or a folder of that name)
                    if (index == 0 and word == "whatsapp-gateway") or word.endswith(
                        "bin/whatsapp-gateway"
                    ):
                        calls.append(words[index + 1 :])
                        break
    return calls


@pytest.mark.parametrize("page", sorted({page for pair in PAIRS for page in pair}))
def test_gateway_commands_in_shell_blocks_parse(page: str) -> None:
    from whatsapp_api_integration.cli import build_parser

    for argv in gateway_invocations(page):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{page}: the CLI refuses `whatsapp-gateway {' '.join(argv)}`")
        assert getattr(args, "func", None) is not None, argv


def test_the_docs_show_the_main_commands() -> None:
    shown = {
        argv[0] for pair in PAIRS for page in pair for argv in gateway_invocations(page) if argv
    }
    assert {"serve", "simulate", "render", "db", "serpro", "lint"} <= shown, shown


def render_pipelines(relative: str) -> list[str]:
    """The `echo '…' | whatsapp-gateway render …` examples of a page, as shell text."""
    found = []
    for block in read_page(relative).blocks:
        script = without_comments(block).replace("\\\n", " ")
        if block.language in SHELL_LANGUAGES and "whatsapp-gateway render" in script:
            found.append(script)
    return found


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_render_examples_run_and_give_bodies_whatsapp_accepts(page: str) -> None:
    import json
    import subprocess
    import sys

    from whatsapp_api_integration.core.outbound import check_cloud_api

    scripts = render_pipelines(page)
    assert scripts, f"{page} has no render example"
    bin_dir = str(Path(sys.executable).parent)
    for script in scripts:
        result = subprocess.run(
            ["bash", "-c", script.replace(".venv/bin/whatsapp-gateway", "whatsapp-gateway")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")},
        )
        assert result.returncode == 0, result.stderr
        bodies = json.loads(result.stdout)
        assert bodies
        for body in bodies:
            assert check_cloud_api(body) == [], body


# ---- the log lines the docs quote are lines the code writes --------------------------------

LOG_LINE = re.compile(
    r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) (whatsapp_api_integration[\w.]*): (.+)$"
)


def _logger_sources(logger: str) -> list[Path]:
    """The files that may log as `logger`: its module, or every module of its package."""
    path = ROOT / "src" / Path(*logger.split("."))
    if path.with_suffix(".py").is_file():
        return [path.with_suffix(".py")]
    return sorted(path.rglob("*.py")) if path.is_dir() else []


def _format_patterns(files: list[Path]) -> list[re.Pattern[str]]:
    """Every string literal with a %-placeholder, as a regex that its output matches."""
    import ast

    patterns = []
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "%" in node.value:
                escaped = re.escape(node.value)
                patterns.append(re.compile(re.sub(r"%(?:\\\.\d+)?[sdfr]", ".*?", escaped)))
    return patterns


def quoted_log_lines(relative: str) -> list[tuple[str, str]]:
    found = []
    for block in read_page(relative).blocks:
        if block.language == "text":
            for line in block.text.splitlines():
                match = LOG_LINE.match(line.strip())
                if match:
                    found.append((match.group(2), match.group(3)))
    return found


@pytest.mark.parametrize("page", ["docs/getting-started.md", "docs/getting-started.pt-BR.md"])
def test_quoted_log_lines_are_written_by_the_code(page: str) -> None:
    lines = quoted_log_lines(page)
    assert len(lines) >= 8, page
    for logger, message in lines:
        files = _logger_sources(logger)
        assert files, f"{page}: no module logs as {logger}"
        if not any(p.fullmatch(message) for p in _format_patterns(files)):
            # a message without placeholders is a plain literal
            literal = any(message in f.read_text(encoding="utf-8") for f in files)
            assert literal, f"{page}: {logger} never writes {message!r}"


def test_a_log_line_the_code_does_not_write_is_caught() -> None:
    files = _logger_sources("whatsapp_api_integration.pipeline")
    patterns = _format_patterns(files)
    assert any(p.fullmatch("body 7 rejected with 401: anything") for p in patterns)
    assert not any(p.fullmatch("body 7 was refused with 401: anything") for p in patterns)
