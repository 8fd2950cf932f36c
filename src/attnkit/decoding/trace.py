"""What a search did, step by step: the record behind ``attnkit translate --trace``, ``attnkit plot
beam`` and the web page's search view.

At every step the search extends each live hypothesis of a sentence by one token. A trace keeps, per
sentence and step, the candidates the search looked at (beam search: the best ``2k`` extensions of
its ``k`` hypotheses; greedy: the ``width`` most probable next tokens) and what became of each:

- ``kept``: one of the hypotheses the next step extends (``slot`` is its place among them);
- ``finished``: it ended with EOS within the beam, or at the sentence's length limit, with the score
  the search gives it (``score``: beam search's log P / lp(|Y|); greedy's raw log P, as greedy returns
  it; :func:`normalised` scores both as beam search does, for pictures that compare them);
- ``pruned``: dropped, outranked by the kept and finished ones.

``parent`` is the slot of the hypothesis a candidate extends, among the previous step's kept ones,
so the whole search tree can be rebuilt (:meth:`SearchTrace.tokens`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TypeVar

from torch import Tensor

from attnkit.specials import EOS

NEG_INF = float("-inf")

KEPT, FINISHED, PRUNED = "kept", "finished", "pruned"

T = TypeVar("T")


def ranked_finished(finished: list[T], k: int | None, log_prob: Callable[[T], float],
                    score: Callable[[T], float]) -> list[T]:
    """What beam search returns of a sentence's finished hypotheses (in the order they finished): the
    ``k`` most probable (all, for None), best first by score (ties: in the order they finished). A last
    step may finish more than ``k``; the surplus is dropped by log-probability, as CTranslate2 drops it."""
    most_probable = sorted(range(len(finished)), key=lambda i: -log_prob(finished[i]))[:k]
    return [finished[i] for i in sorted(most_probable, key=lambda i: (-score(finished[i]), i))]


@dataclass
class Candidate:
    parent: int  # slot of the hypothesis it extends among the previous step's kept ones (0 at step 0)
    token: int
    log_prob: float  # cumulative log-probability of the hypothesis it makes
    fate: str  # kept, finished or pruned
    slot: int | None = None  # kept: its place among the step's kept hypotheses
    score: float | None = None  # finished: the score the search gives it (length-normalised in beam search)


@dataclass
class SearchTrace:
    width: int = 5  # greedy: how many of the most probable next tokens each step records
    steps: dict[int, list[list[Candidate]]] = field(default_factory=dict)  # sentence -> steps -> candidates

    def record(self, sentence: int, candidates: list[Candidate]) -> None:
        self.steps.setdefault(sentence, []).append(candidates)

    def choice_step(self, live: Tensor, before: Tensor, lp: Tensor, chosen: Tensor, last: Tensor) -> None:
        """One step of a one-hypothesis search: the chosen token (kept, or finished by EOS or because
        the row is at its ``last`` step) among the ``self.width`` most probable ones."""
        top = lp.topk(min(self.width, lp.size(-1)), dim=-1)
        ends = last.tolist()
        for r, sentence in enumerate(live.tolist()):
            pick, base = int(chosen[r]), float(before[r])
            options = dict(zip(top.indices[r].tolist(), top.values[r].tolist()))
            options.setdefault(pick, float(lp[r, pick]))  # sampling may choose outside the top
            step = []
            for token, value in options.items():
                if value == NEG_INF:
                    continue
                total = base + value
                if token != pick:
                    step.append(Candidate(0, token, total, PRUNED))
                elif token == EOS or ends[r]:
                    step.append(Candidate(0, token, total, FINISHED, score=total))
                else:
                    step.append(Candidate(0, token, total, KEPT, slot=0))
            self.record(sentence, step)

    def beam_step(self, active: Tensor, top_scores: Tensor, top_beam: Tensor, top_tok: Tensor,
                  ended: dict[tuple[int, int], float], order: Tensor, live_scores: Tensor) -> None:
        """One beam step of every active sentence: its 2k best candidates (n, 2k), which finished
        (``ended``), which ``order`` kept (the live slots, where their score is finite), the rest pruned."""
        for r, sentence in enumerate(active.tolist()):
            slots = {c: slot for slot, c in enumerate(order[r].tolist()) if live_scores[r, slot] > NEG_INF}
            step = []
            for c in range(top_scores.size(1)):
                total = float(top_scores[r, c])
                if total == NEG_INF:
                    continue
                candidate = Candidate(int(top_beam[r, c]), int(top_tok[r, c]), total, PRUNED)
                if (r, c) in ended:
                    candidate.fate, candidate.score = FINISHED, ended[r, c]
                elif c in slots:
                    candidate.fate, candidate.slot = KEPT, slots[c]
                step.append(candidate)
            self.record(sentence, step)

    def tokens(self, sentence: int, step: int, candidate: Candidate) -> list[int]:
        """The tokens of the hypothesis ``candidate`` makes at ``step`` (EOS included if it has it)."""
        out = [candidate.token]
        parent = candidate.parent
        for earlier in reversed(self.steps[sentence][:step]):
            kept = next(c for c in earlier if c.fate == KEPT and c.slot == parent)
            out.append(kept.token)
            parent = kept.parent
        return out[::-1]

    def finished(self, sentence: int, beam: int | None = None) -> list[tuple[list[int], Candidate]]:
        """The hypotheses that finished with their tokens (EOS excluded): with ``beam``, the ``beam``
        most probable, as beam search keeps them; best first by score (ties: in the order they finished)."""
        done = [(self.tokens(sentence, t, c), c) for t, step in enumerate(self.steps.get(sentence, []))
                for c in step if c.fate == FINISHED]
        done = [(tokens[:-1] if tokens[-1] == EOS else tokens, c) for tokens, c in done]
        return ranked_finished(done, beam, lambda pair: pair[1].log_prob, lambda pair: pair[1].score)


def readable(trace: SearchTrace, sentence: int, decode, piece) -> list[list[dict]]:
    """The steps of one sentence as plain dicts, each candidate with the ``text`` of the hypothesis it
    makes (``decode``: token ids -> text; one finished by EOS ends in ``</s>``) and the ``piece`` it adds
    (``piece``: token id -> its vocabulary entry)."""
    steps = []
    for t, step in enumerate(trace.steps.get(sentence, [])):
        rows = []
        for c in step:
            tokens = trace.tokens(sentence, t, c)
            ends = " </s>" if c.fate == FINISHED and tokens[-1] == EOS else ""  # (or it ended at the limit)
            text = decode([x for x in tokens if x != EOS]) + ends
            rows.append({**asdict(c), "text": text.strip(), "piece": piece(c.token)})
        steps.append(rows)
    return steps


def normalised(steps: list[list[dict]], alpha: float) -> list[list[dict]]:
    """``readable`` steps whose finished candidates are scored as beam search scores them, log P /
    lp(|Y|) with GNMT's length penalty of ``alpha``, whatever search made them: greedy's own score is
    its raw log-probability (it ranks nothing), so a greedy and a beam trace of the same hypothesis
    show the same log P and the same score. |Y| counts EOS, or the token that ended it at the limit
    and one more, as ``search.beam_decode`` counts."""
    from attnkit.decoding.search import length_penalty  # (search imports this module)

    def rescored(t: int, c: dict) -> dict:
        if c["fate"] != FINISHED:
            return c
        length = t + 1 if c["token"] == EOS else t + 2  # step t (from 0) holds hypotheses of t + 1 tokens
        return {**c, "score": c["log_prob"] / length_penalty(length, alpha)}

    return [[rescored(t, c) for c in step] for t, step in enumerate(steps)]


def describe(steps: list[list[dict]]) -> list[str]:
    """Lines a person reads: per step, each candidate's fate, cumulative log-probability and text."""
    lines = []
    for t, step in enumerate(steps, start=1):
        lines.append(f"step {t}:")
        for c in sorted(step, key=lambda c: (c["fate"] == PRUNED, -c["log_prob"])):
            fate = f"kept[{c['slot']}]" if c["fate"] == KEPT else c["fate"]
            score = f"  (score {c['score']:.3f})" if c["fate"] == FINISHED else ""
            lines.append(f"  {fate:9s} {c['log_prob']:8.3f}  {c['text']}{score}")
    return lines
