"""Answer parsers: named filters from raw model output to an answer (as lm-eval's filters are).

Chosen per task (`parser:`), never tuned on test items.

- first_label (classification; the default): the answer must BE a label. The first non-empty line
  is compared with every label after normalising case, spaces / underscores / hyphens, quotes and
  backticks around it, trailing punctuation and a short lead-in such as "Label:" or "Answer:".
  Anything else ("refund_not_recognised", "I think refund") is a parse failure, never a label.
- label_mention (classification; opt-in, lenient): as first_label, else the label mentioned
  earliest anywhere in the output. It credits invented answers that contain a label
  ("transfer_timing_not_recognised" counts as transfer_timing), so use it knowingly.
- first_line (extraction): the first non-empty line, stripped of quotes and a trailing period.
- code_block (code): the first fenced ```python (or ```py) block, else the first untagged ``` block
  (an unclosed fence runs to the end: a truncated answer), else the whole output, stripped.
- choice (multiple_choice; called with the item's own options in place of labels): the first
  non-empty line is an option's letter ("B", "b", "(B)", "B.", "B) text", "Answer: B", "Option B")
  or an option's text (normalised as first_label does); returns the letter, None for anything else.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from collections.abc import Callable, Sequence

QUOTES = "\"'`*\u201c\u201d\u2018\u2019"  # straight and curly quotes, backticks, markdown emphasis
TRAILING = ".,;:!?"
# A short lead-in at the start of the answer: one or two words and a colon ("Label:", "Final answer:").
LEAD_IN = re.compile(r"^[A-Za-z]{1,20}(?:[ \-][A-Za-z]{1,20})?\s*:\s*")


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text.lower()).strip()


def first_line(output: str, labels=None) -> str | None:
    """The first non-empty line, stripped of quotes and a trailing period."""
    for line in output.splitlines():
        line = line.strip().strip("\"'`. ")
        if line:
            return line
    return None


def _forms(answer: str) -> list[str]:
    """The answer peeled one layer at a time (whitespace and quotes, then trailing punctuation),
    least peeled first: '`refund?`.' -> ['refund?`.', 'refund?', 'refund']."""
    forms, text = [], answer
    while True:
        text = text.strip().strip(QUOTES).strip()
        forms.append(text)
        peeled = text.rstrip(TRAILING).rstrip()
        if peeled == text:
            return list(dict.fromkeys(forms))
        text = peeled


def _match(answer: str, labels: Sequence[str]) -> str | None:
    """The label `answer` is, or None. An exact match (punctuation included, so that a label such as
    'reverted_card_payment?' is itself) beats a match with trailing punctuation stripped from both."""
    forms = [_norm(f) for f in _forms(answer)]
    exact = {_norm(label): label for label in labels}
    for form in forms:
        if form in exact:
            return exact[form]
    stripped: dict[str, list[str]] = {}
    for label in labels:
        stripped.setdefault(_norm(label.rstrip(TRAILING)), []).append(label)
    found = stripped.get(forms[-1], [])
    return found[0] if len(found) == 1 else None  # two labels that differ only in punctuation: unknown


def _answer_lines(output: str) -> list[str]:
    """The first non-empty line; after a bare lead-in line ('Answer:'), the line that follows it."""
    lines = [line.strip() for line in output.splitlines() if line.strip().strip(QUOTES).strip()]
    if not lines:
        return []
    if LEAD_IN.sub("", lines[0], count=1).strip().strip(QUOTES) == "" and len(lines) > 1:
        return lines[:2]
    return lines[:1]


def first_label(output: str, labels: Sequence[str]) -> str | None:
    """The label the answer is: the first non-empty line, as a whole, is a label (after normalising
    case, spaces / underscores / hyphens, surrounding quotes or backticks, trailing punctuation and a
    short lead-in such as 'Label:'); None for anything else, such as a label inside a longer word."""
    if labels is None:
        raise ValueError("the label parsers (first_label, label_mention) need the task's labels: use "
                         "first_line for an extraction task")
    for line in _answer_lines(output):
        label = _match(line, labels)
        if label is None:
            rest = LEAD_IN.sub("", line.strip().lstrip(QUOTES), count=1)
            label = _match(rest, labels) if rest.strip() else None
        if label is not None:
            return label
    return None


def label_mention(output: str, labels: Sequence[str]) -> str | None:
    """Lenient (opt-in): first_label, else the label mentioned earliest anywhere in the output
    (longest first on ties, so 'damaged_item' beats 'item'). Credits invented answers that contain a
    label ('refund_not_recognised' is refund); None only if no label is mentioned at all."""
    exact = first_label(output, labels)
    if exact is not None:
        return exact
    text = " " + re.sub(r"[^a-z0-9]+", " ", _norm(output)) + " "
    best = None
    for label in labels:
        key = re.sub(r"[^a-z0-9]+", " ", _norm(label)).strip()
        pos = text.find(" " + key + " ") if key else -1
        if pos >= 0 and (best is None or (pos, -len(key)) < best[0]):
            best = ((pos, -len(key)), label)
    return best[1] if best else None


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # option i's letter
# The answer is a letter: alone, in brackets, or followed by ".", ")" or ":" and then anything (such
# as the option's text); "Option B" / "Answer B" / "Choice B" too.
_LETTER = re.compile(r"^(?:(?:option|choice|answer)\s+)?[(\[]?([a-z])(?:[.:)\]]\.?(?:\s.*)?)?$", re.IGNORECASE)


def _letter(answer: str, n: int) -> str | None:
    found = _LETTER.match(answer.strip().strip(QUOTES).strip())
    letter = found.group(1).upper() if found else None
    return letter if letter and LETTERS.index(letter) < n else None


def _option_text(answer: str, options: Sequence[str]) -> str | None:
    text = _match(answer, options)
    if text is None or sum(_norm(o) == _norm(text) for o in options) > 1:
        return None  # no option, or two options that read the same
    return LETTERS[list(options).index(text)]


def choice(output: str, options: Sequence[str], prefer: str = "letter") -> str | None:
    """The letter of the option the answer is: its first non-empty line (or the line after a bare
    "Answer:") is a letter within the item's options, or one option's text; None for anything else.
    `prefer`: which reading wins when both fit (an option whose text is itself a letter, such as
    blood group "A"): the task's answer_format, "letter" or "text"."""
    if options is None:
        raise ValueError("the choice parser reads against an item's options: the item has none")
    readers = [lambda a: _letter(a, len(options)), lambda a: _option_text(a, options)]
    if prefer == "text":
        readers.reverse()
    for line in _answer_lines(output):
        rest = LEAD_IN.sub("", line.strip().lstrip(QUOTES), count=1)
        for read in readers:
            for answer in dict.fromkeys([line, rest]):
                found = read(answer) if answer.strip() else None
                if found is not None:
                    return found
    return None


_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+.-]*)")  # an opening fence and its language tag
PYTHON_TAGS = ("python", "py", "python3")


def code_block(output: str, labels=None) -> str | None:
    """The program in the output: the first fenced python block (```python or ```py), else the first
    untagged fenced block, else the whole output; dedented and stripped. A fence left open (the
    answer was cut off) runs to the end. None when that leaves nothing."""
    blocks: list[tuple[str, list[str]]] = []
    fence, lines = None, output.splitlines()
    for line in lines:
        if fence is None:
            opening = _FENCE.match(line)
            if opening:
                fence = opening.group(1)
                blocks.append((opening.group(2).lower(), []))
        elif line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
            fence = None
        else:
            blocks[-1][1].append(line)
    chosen = next((body for tag, body in blocks if tag in PYTHON_TAGS), None)
    if chosen is None:
        chosen = next((body for tag, body in blocks if not tag), lines)
    code = textwrap.dedent("\n".join(chosen)).strip()
    return code or None


PARSERS: dict[str, Callable[..., str | None]] = {
    "first_label": first_label,
    "label_mention": label_mention,
    "first_line": first_line,
    "code_block": code_block,
    "choice": choice,
}
LABEL_PARSERS = frozenset({"first_label", "label_mention"})  # need the task's labels (classification)


# --- Early stopping: when a generation's parsed answer can no longer change -----------------------
# A backend may stop a row as soon as its answer is settled: every continuation of the text parses
# to the same answer as the text itself. A predicate says "settled" only when that is certain; where
# it cannot decide (label_mention, code_block; a line with non-ASCII letters) it says "not yet", and
# the row runs to its stop string or max_new_tokens as before.

# what str.isspace() (so str.strip() and re's \s) takes: every code point, listed once rather than
# found by scanning all 0x110000 at import (0.3-1 s in every process that imports the parsers);
# tests/test_early_stop.py checks the list against that scan
_WS = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
       "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_BREAKS = frozenset(c for c in _WS if len(f"a{c}b".splitlines()) > 1)  # what str.splitlines() splits at
_SAFE = frozenset(map(chr, range(128))) | frozenset(_WS) | frozenset(QUOTES)  # chars a line may hold to be read


def _cls(chars: str) -> str:
    return "[" + "".join(re.escape(c) for c in chars) + "]"


_LEAD = _cls(_WS + QUOTES + "_-") + "*"
_TAIL = _cls(_WS + QUOTES + TRAILING + "_-") + "*"
_LEAD_IN_LOWER = rf"[a-z]{{1,20}}(?:[ \-][a-z]{{1,20}})?{_cls(_WS)}*:{_cls(_WS)}*"


def _core(norm: str) -> str:
    """A pattern for the texts whose _norm is `norm` (lower case): its spaces any run of spaces,
    underscores and hyphens."""
    return f"{_cls(_WS + '_-')}+".join(re.escape(word) for word in norm.split(" "))


class _OpenLine:
    """Whether a line still being written may yet read as an answer (or as a bare lead-in). The
    patterns accept more than the parsers do (every way a line can become an answer, and some that
    cannot), so "no continuation can match" is certain; a line with a character outside ASCII, the
    whitespace and the quotes is never judged (case folding outside ASCII is not modelled)."""

    def __init__(self, answers: Sequence[str], letters: int = 0):
        import regex  # partial matching: could the text still grow into a match?

        norms = {_norm(a) for a in answers} | {_norm(a.rstrip(TRAILING)) for a in answers}
        self.readable = all(n.isascii() for n in norms)
        parts = [_core(n) for n in sorted(norms) if n]
        if letters:
            parts.append(rf"(?:(?:option|choice|answer){_cls(_WS)}+)?[(\[]?[a-{LETTERS[letters - 1].lower()}]"
                         rf"(?:[.:)\]]\.?(?:{_cls(_WS)}.*)?)?")
        body = "|".join(parts) or "(?!)"
        self.answer = regex.compile(rf"{_LEAD}(?:{_LEAD_IN_LOWER}{_LEAD})?(?:{body}){_TAIL}", regex.DOTALL)
        self.bare = regex.compile(rf"{_cls(_WS)}*{_LEAD_IN_LOWER}{_cls(_WS + QUOTES)}*")

    def may_answer(self, line: str) -> bool:
        return (not self.readable or not set(line) <= _SAFE
                or self.answer.fullmatch(line.lower(), partial=True) is not None)

    def may_be_bare(self, line: str) -> bool:
        return not set(line) <= _SAFE or self.bare.fullmatch(line.lower(), partial=True) is not None


def _lines(text: str) -> list[tuple[str, bool]]:
    """The non-empty lines (not only whitespace and quotes), each with whether it is closed (a line
    break follows it, so nothing can be added to it)."""
    lines = text.splitlines()
    open_last = bool(text) and text[-1] not in _BREAKS
    return [(line, not (open_last and k == len(lines) - 1)) for k, line in enumerate(lines)
            if line.strip().strip(QUOTES).strip()]


def _answer_settled(text: str, read_line: Callable[[str], str | None], open_line: _OpenLine) -> bool:
    """first_label / choice: whether every continuation of `text` (cut at the stop strings, as the
    parser sees it) reads the same. They read the first non-empty line, or after a bare lead-in
    ("Answer:") the line that follows it."""
    lines = _lines(text)
    if not lines:
        return False
    first, closed = lines[0]
    if not closed:  # it may still grow into an answer, or into a bare lead-in that hands over to line 2
        return not open_line.may_answer(first) and not open_line.may_be_bare(first)
    if LEAD_IN.sub("", first.strip(), count=1).strip().strip(QUOTES) != "" or read_line(first.strip()) is not None:
        return True  # the first line decides, whatever follows
    if len(lines) < 2:
        return False
    second, closed = lines[1]
    return closed or not open_line.may_answer(second)


def _first_line_settled(text: str) -> bool:
    """first_line: settled once its first non-empty line is closed."""
    lines = text.splitlines()
    for k, line in enumerate(lines):
        if line.strip().strip("\"'`. "):
            return k < len(lines) - 1 or text[-1] in _BREAKS
    return False


class EarlyStop:
    """Per item, whether a generation's parsed answer is settled: `stop(i, text)` for item i's text
    so far (as generated, before the cut at the stop strings). Generation that ends there parses
    exactly as generation to the stop string or max_new_tokens would: the answer line can no longer
    become an answer (nor a bare lead-in), or it is closed by a line break. `key` names what it
    decides on, for a journal of generated batches."""

    def __init__(self, parser: str, answers: Sequence[Sequence[str] | None], stop: Sequence[str],
                 prefer: str = "letter"):
        self.parser, self.answers, self.stop, self.prefer = parser, list(answers), list(stop), prefer
        self.longest_stop = max((len(s) for s in stop), default=1)
        self._open: dict[tuple, _OpenLine] = {}
        answers_id = hashlib.sha256(repr((self.answers, self.stop)).encode()).hexdigest()[:16]
        self.key = f"early_stop:{parser}:{prefer}:{answers_id}"

    @classmethod
    def build(cls, parser: str, answers: Sequence[Sequence[str] | None], stop: Sequence[str],
              prefer: str = "letter") -> EarlyStop | None:
        """None for a parser whose settledness is not decided here (label_mention, code_block)."""
        return cls(parser, answers, stop, prefer) if parser in ("first_label", "choice", "first_line") else None

    def parse(self, i: int, text: str) -> str | None:
        if self.parser == "choice":
            return choice(text, self.answers[i] or [], prefer=self.prefer)
        return PARSERS[self.parser](text, self.answers[i])

    def settled_text(self, i: int, text: str) -> bool:
        """Whether `text` (already cut at the stop strings) and every continuation of it parse alike."""
        if self.parser == "first_line":
            return _first_line_settled(text)
        answers = tuple(self.answers[i] or ())
        if answers not in self._open:
            self._open[answers] = _OpenLine(answers, len(answers) if self.parser == "choice" else 0)
        if self.parser == "choice":
            return _answer_settled(text, lambda line: choice(line, answers, prefer=self.prefer), self._open[answers])
        return _answer_settled(text, lambda line: first_label(line, answers), self._open[answers])

    def __call__(self, i: int, text: str) -> bool:
        if text.endswith("\ufffd"):
            return False  # a character cut in the middle of its bytes: the next token completes it
        text = text.lstrip()  # what predict's cut_at_stop keeps
        if not text:
            return False
        # a stop string not yet complete may start in the last len(stop) - 1 characters: the answer is
        # then cut there, so each such cut must parse as the whole text does
        n = len(text)
        return self.settled_text(i, text) and all(
            self.parse(i, text[:k]) == self.parse(i, text) for k in range(max(0, n - self.longest_stop + 1), n))
