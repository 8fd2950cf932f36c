"""The course (docs/course, issue 27): every command on its pages parses as written, with the option
checks of ``attnkit ... --help`` (names, types, choices, files that must exist); the Russian pages
carry the same commands as the English ones; every picture a page shows is there."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "docs" / "course"
PAGES = sorted(COURSE.glob("*.md"))
SHARED = ROOT.parent / "shared"


def commands(page: Path) -> list[str]:
    """The command lines of a page's ``sh`` code blocks (comments and blank lines left out)."""
    out, block = [], None
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            block = line[3:].strip() if block is None else None
            continue
        if block == "sh" and line.strip() and not line.lstrip().startswith("#"):
            out.append(line.strip())
    return out


def pipeline(line: str) -> list[list[str]]:
    """A shell line's commands, each as its words (quotes removed, a trailing comment dropped)."""
    lex = shlex.shlex(line, posix=True, punctuation_chars="|")
    lex.whitespace_split = True
    out: list[list[str]] = [[]]
    for token in lex:
        if token == "|":
            out.append([])
        else:
            out[-1].append(token)
    return out


def pages() -> list[Path]:
    return PAGES + sorted((COURSE / "ru").glob("*.md"))


def test_the_course_has_a_page_per_section_in_both_languages():
    names = [p.name for p in PAGES]
    assert len(names) == 11 and names[0] == "01-rnn-tasks.md" and "README.md" in names
    assert [p.name for p in sorted((COURSE / "ru").glob("*.md"))] == names
    for page in PAGES:
        assert page.read_text(encoding="utf-8").startswith("# "), page
        assert commands(page) == commands(COURSE / "ru" / page.name), f"ru/{page.name}: other commands"


def check_attnkit(args: list[str], monkeypatch) -> None:
    import argparse

    from attnkit.cli import options
    from attnkit.cli.main import build_parser

    real = options.input_file

    def input_file(text: str) -> str:  # ../shared may be absent (a clone without the datasets): the name must parse
        return text if text.startswith("../shared/") and not SHARED.is_dir() else real(text)

    monkeypatch.setattr(options, "input_file", input_file)
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit as exit:
        raise AssertionError(f"attnkit {shlex.join(args)}: does not parse (exit {exit.code})") from None
    assert isinstance(parsed, argparse.Namespace) and callable(parsed.func)


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(COURSE)))
def test_every_command_of_the_page_parses(page, monkeypatch, capsys):
    for line in commands(page):
        for words in pipeline(line):
            if words[0] == "attnkit":
                check_attnkit(words[1:], monkeypatch)
            elif words[0] == "sh":
                assert (ROOT / words[1]).is_file(), line
            elif words[:2] == ["python", "-c"]:
                done = subprocess.run([sys.executable, "-c", words[2]], cwd=ROOT, capture_output=True, text=True)
                assert done.returncode == 0, (line, done.stderr)
            elif words[0] == "python":
                script = ROOT / words[1]
                assert script.is_file(), line
                usage = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True,
                                       text=True)
                assert usage.returncode == 0, (line, usage.stderr)
                for option in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
                    assert option in usage.stdout, f"{line}: {option} is not an option of {words[1]}"
            elif words[0] == "make":
                assert re.search(rf"^{words[1]}:", (ROOT / "Makefile").read_text(), re.M), line
            else:
                assert words[0] == ".", f"{page.name}: a command the check does not know: {line}"
    capsys.readouterr()


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(COURSE)))
def test_every_picture_and_link_of_the_page_is_there(page):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (page.parent / target).exists(), f"{page.name}: {target} is missing"
    for line in commands(page):  # a picture a command draws is the one the page shows
        out = re.search(r"--out (docs/course/img/\S+)", line)
        if out:
            assert f"img/{Path(out.group(1)).name}" in text, f"{page.name}: draws {out.group(1)}, never shown"


SOURCES = [ROOT / "docs" / "BENCHMARKS.md", ROOT / "docs" / "EXPERIMENTS.md", *sorted((COURSE / "img").glob("*.json"))]
# Numbers a page states that are not measurements to look up: each says why.
NOT_LOOKED_UP = {
    "6.3": "2 pi, the period of the fastest sinusoid (page 8)",
    "0.63": "million words in SST-2's train.tsv, counted (page 5)",
    "0.20": "million words of UD EWT's training part, its README (page 5)",
    **dict.fromkeys(("3.26", "2.46", "4.92", "2.11", "1.63"), "page 10's trace: log P and scores read off img/beam.png "
                    "and img/greedy.png, which the page's commands draw; a redraw must read them again"),
}


def prose_numbers(page: Path) -> list[str]:
    """The decimal numbers of a page's prose and tables (code blocks and indented formulas left out),
    written the English way (a Russian page's 38,54 is 38.54)."""
    text, out, block = page.read_text(encoding="utf-8"), [], False
    for line in text.splitlines():
        if line.startswith("```"):
            block = not block
            continue
        if block or line.startswith("    ") or line.startswith("!["):
            continue
        line = re.sub(r"`[^`]*`", "", line)  # inline code: config values, file names
        line = re.sub(r"\([^()]*\.(md|png|json)[^()]*\)", "", line)  # links
        if page.parent.name == "ru":
            line = re.sub(r"(?<=\d)[\u202f\u00a0 ](?=\d{3}\b)", "", line).replace("\u2212", "-")
            line = re.sub(r"(?<=\d),(?=\d)", ".", line)
        out += re.findall(r"(?<![\w.])\d+\.\d+(?![\w.]*\d)", line)
    return out


def measured(sources: str) -> set[str]:
    """Every decimal of ``sources``, as written and rounded to 1, 2 and 3 places (a page may round)."""
    out = set()
    for number in re.findall(r"\d+\.\d+", sources.replace(",", "")):
        out.add(number)
        out.update(f"{float(number):.{places}f}" for places in (1, 2, 3) if places < len(number.split(".")[1]))
    return out


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(COURSE)))
def test_every_number_the_page_quotes_is_in_the_measurements(page):
    found = measured("\n".join(p.read_text(encoding="utf-8") for p in SOURCES))
    missing = [n for n in prose_numbers(page) if n not in NOT_LOOKED_UP and n not in found]
    assert not missing, f"{page.relative_to(COURSE)}: not in BENCHMARKS, EXPERIMENTS or the pages' JSON: {missing}"
