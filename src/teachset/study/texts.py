"""The texts participants read, in one Markdown file per study (texts.md) that the researcher owns.

`study create` writes a default texts.md to edit; `study serve` reads it. Each `# Section` heading
starts one text (consent, instructions, the teaching, quiz and test introductions, the break, the
attention-check instruction, the debrief, the screen-out page) and `# Classes` gives the classes'
display names (`- dataset name: shown name`). Text before the first heading is a note to the
researcher and never shown.

The Markdown is a safe subset: paragraphs, **bold**, *italic*, lists (- or 1.), ## and ### headings,
and links to http(s) or mailto addresses. Everything else is shown as typed, escaped: no HTML gets
through. Placeholders in braces are filled in from the design: {minutes} (the estimated duration),
{quiz_trials}, {test_trials}, {teaching_images}, {classes}, {break_every}, {study}; the check
instruction also takes {class}.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup, escape

from ..errors import TeachsetError

TEXTS_FILE = "texts.md"
SECTIONS = {"consent": "Consent", "instructions": "Instructions", "teaching": "Teaching", "quiz": "Quiz",
            "test": "Test", "break": "Break", "check": "Check", "debrief": "Debrief", "screened_out": "Screened out",
            "classes": "Classes"}
PLACEHOLDERS = ("minutes", "quiz_trials", "test_trials", "teaching_images", "classes", "break_every", "study")
# Assumed pace of a participant, for the estimated duration (the dashboard shows the real median beside it).
ASSUMED_SECONDS = {"start": 60, "teaching": 30, "teaching_image": 5, "quiz_trial": 4, "test_trial": 3, "break": 30}
NOTE = """<!-- The texts participants read. Edit the text under each "# Section" heading and keep the headings.
Markdown: paragraphs, **bold**, *italic*, lists (- item, 1. item), ## headings, [links](https://...).
Placeholders: {minutes} (the estimated duration), {quiz_trials}, {test_trials}, {teaching_images}, {classes},
{break_every}, {study}; in Check also {class}. Classes: "- dataset class name: the name participants see". -->
"""
HEADING = re.compile(r"^# +(\S.*?)\s*$")
PLACEHOLDER = re.compile(r"\{([A-Za-z_]*)\}")


@dataclass(frozen=True)
class StudyTexts:
    sections: dict  # section name -> Markdown
    display_names: tuple[str, ...]  # one per dataset class, in class order

    def markdown(self) -> str:
        """The texts.md file of these texts."""
        parts = [NOTE]
        for name, title in SECTIONS.items():
            parts.append(f"# {title}\n\n{self.sections[name].strip()}\n")
        return "\n".join(parts)


def default_texts(settings, class_names: list[str]) -> dict[str, str]:
    """The default texts for a study with these settings (what create writes to texts.md)."""
    checks = " A few of them check that you are paying attention." if settings.attention_checks else ""
    breaks = " There is a short break every {break_every} images." if settings.break_every else ""
    shown = "You will be told whether you were right." if settings.quiz_feedback else "You will not be told whether you were right."
    hidden = "" if settings.teaching_during_quiz else " The examples are hidden during the quiz."
    return {
        "consent": "This is a short study about learning to tell images apart. You will first look at a few labeled "
                   "example images, then answer a short quiz on them, then sort new images into the same classes.\n\n"
                   "It takes about **{minutes} minutes**. Your answers and response times are recorded together with a "
                   "pseudonymous code, the name of your browser and the size of your screen and window; no name or "
                   "e-mail address is collected. You may stop at any time by closing the page.\n\n"
                   "If you agree to take part, tick the box below and press Start.",
        "instructions": "## How this study works\n\n"
                        "1. **Study the examples.** You will see labeled examples of {classes}, grouped by class.\n"
                        "2. **Quiz.** You will name each of these {quiz_trials} examples again, without its label.\n"
                        f"3. **Test.** You will sort {{test_trials}} new images into the same classes.{checks}{breaks}\n\n"
                        "Answer by clicking a class name (or with the keys 1, 2, ...). Please stay on this tab until "
                        "the end: leaving it is recorded.",
        "teaching": "Each box shows examples of one class, under its name. Look at them carefully: next you will name "
                    "each of these images without its label, then sort new images into the same classes.",
        "quiz": f"Now you will see each example image again, alone and without its label. Click the name of its "
                f"class. {shown}{hidden}",
        "test": "Now you will see new images. Click the name of the class each one belongs to. You will not be told "
                "whether you were right. You can look at the examples again with the *Show teaching set* button.",
        "break": "Time for a short break. Rest your eyes for a moment, then press *Continue* when you are ready.",
        "check": "Attention check: for this image, please click {class}.",
        "debrief": "Thank you for taking part! This study compares sets of example images, to find out which ones "
                   "teach people best to tell the classes apart. Your answers help us to understand how people "
                   "learn from examples.",
        "screened_out": "Thank you for your time. Some of your answers to the attention checks were not right, so "
                        "the study ends here.",
        "classes": "\n".join(f"- {name}: {name}" for name in class_names),
    }


def parse_texts(text: str, class_names: list[str], where: str, defaults: dict[str, str] | None = None) -> StudyTexts:
    """The texts of a texts.md file; sections it lacks come from `defaults` (an error without them)."""
    sections: dict[str, list[str]] = {}
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        heading = HEADING.match(line)
        if heading:
            key = heading.group(1).lower().replace(" ", "_").replace("-", "_")
            if key not in SECTIONS:
                raise TeachsetError(f"{where} line {number}: '# {heading.group(1)}' is not a section; the sections are "
                                    f"{', '.join(SECTIONS.values())} (use ## for a heading inside a text)")
            if key in sections:
                raise TeachsetError(f"{where} line {number}: section '{SECTIONS[key]}' appears twice; keep one")
            sections[key], current = [], key
        elif current is not None:
            sections[current].append(line)
    found = {key: "\n".join(lines).strip() for key, lines in sections.items()}
    missing = [SECTIONS[k] for k in SECTIONS if k not in found and (defaults is None or k not in defaults)]
    if missing:
        raise TeachsetError(f"{where} has no section {', '.join(missing)}; add '# {missing[0]}' and its text")
    found = {**(defaults or {}), **found}
    for key, body in found.items():
        if key != "classes" and not body:
            raise TeachsetError(f"{where}: section '{SECTIONS[key]}' is empty; write its text")
        allowed = PLACEHOLDERS + (("class",) if key == "check" else ())
        for name in PLACEHOLDER.findall(body):
            if name not in allowed:
                raise TeachsetError(f"{where}: section '{SECTIONS[key]}' has the placeholder {{{name}}}; the "
                                    f"placeholders are {', '.join('{' + p + '}' for p in allowed)}")
    return StudyTexts({k: found[k] for k in SECTIONS}, _display_names(found["classes"], class_names, where))


def _display_names(body: str, class_names: list[str], where: str) -> tuple[str, ...]:
    names = {}
    for line in body.splitlines():
        if not line.strip():
            continue
        item = re.fullmatch(r"\s*[-*]\s+(.+?)\s*:\s*(.*?)\s*", line)
        if item is None:
            raise TeachsetError(f"{where}: in Classes, '{line.strip()[:60]}' is not '- class name: shown name'")
        key, shown = item.groups()
        if key not in class_names:
            raise TeachsetError(f"{where}: in Classes, '{key[:60]}' is not a class of the dataset "
                                f"({', '.join(class_names)})")
        if not 1 <= len(shown) <= 60:
            raise TeachsetError(f"{where}: in Classes, the name shown for '{key}' must be 1-60 characters")
        names[key] = shown
    shown = [names.get(c, c) for c in class_names]
    if len(set(shown)) != len(shown):
        raise TeachsetError(f"{where}: in Classes, two classes are shown under one name ({', '.join(shown)})")
    return tuple(shown)


def read_texts(path: str | Path, class_names: list[str], defaults: dict[str, str] | None = None) -> StudyTexts:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TeachsetError(f"cannot read the texts file '{path}' ({error}); give a UTF-8 Markdown file") from None
    return parse_texts(text, class_names, f"'{path}'", defaults)


def estimate_minutes(teaching_images: int, quiz_trials: int, test_trials: int, breaks: int) -> int:
    """Whole minutes a participant is expected to need, at the ASSUMED_SECONDS pace."""
    s = ASSUMED_SECONDS
    seconds = (s["start"] + s["teaching"] + s["teaching_image"] * teaching_images + s["quiz_trial"] * quiz_trials
               + s["test_trial"] * test_trials + s["break"] * breaks)
    return max(1, math.ceil(seconds / 60))


def fill(body: str, values: dict) -> str:
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), body)


# ---- the Markdown subset -----------------------------------------------------------------------

INLINE = [
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"(?<![\w_])_(?!\s)(.+?)(?<!\s)_(?![\w_])"), r"<em>\1</em>"),
]
LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?://|mailto:)[^\s()]+)\)")
LIST_ITEM = re.compile(r"^\s*(?:([-*+])|(\d{1,3})[.)])\s+(.*)$")


def _inline(text: str) -> str:
    """One line or paragraph: escaped, then emphasis and links (on the escaped text, so no markup gets in)."""
    links: list[tuple[str, str]] = []

    def keep(match: re.Match) -> str:  # links are set aside, so that emphasis never reaches into an address
        links.append(match.groups())
        return f"\x00{len(links) - 1}\x00"

    html = LINK.sub(keep, str(escape(text.replace("\x00", ""))))
    for pattern, replacement in INLINE:
        html = pattern.sub(replacement, html)
    return re.sub(r"\x00(\d+)\x00", lambda m: '<a href="{1}" rel="noopener noreferrer" target="_blank">{0}</a>'.format(
        *links[int(m.group(1))]), html)


def _block(lines: list[str]) -> str:
    first = lines[0]
    heading = re.match(r"^(#{2,4})\s+(.*)$", first)
    if heading and len(lines) == 1:
        level = len(heading.group(1))
        return f"<h{level}>{_inline(heading.group(2).strip())}</h{level}>"
    if LIST_ITEM.match(first):
        items, ordered = [], LIST_ITEM.match(first).group(2) is not None
        for line in lines:
            item = LIST_ITEM.match(line)
            if item:
                items.append(item.group(3))
            else:  # a continuation line of the item above
                items[-1] += " " + line.strip()
        tag = "ol" if ordered else "ul"
        return f"<{tag}>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + f"</{tag}>"
    return f"<p>{_inline(' '.join(line.strip() for line in lines))}</p>"


def render_markdown(text: str) -> Markup:
    """The safe Markdown subset as HTML (a Markup, so that Jinja does not escape it twice)."""
    blocks, current = [], []
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = []
        elif re.match(r"^#{2,4}\s", line):  # a heading is a block of its own
            if current:
                blocks.append(current)
            blocks.append([line])
            current = []
        else:
            current.append(line)
    if current:
        blocks.append(current)
    return Markup("\n".join(_block(b) for b in blocks))


def plain(text: str) -> str:
    """A text without its Markdown emphasis marks (for text set with textContent in the page)."""
    return re.sub(r"\*\*|(?<!\w)[*_]|[*_](?!\w)", "", text).strip()
