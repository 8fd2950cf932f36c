"""Print the tagger, classifier and language-model rows of docs/BENCHMARKS.md from
bench/results/NAME.json (written by bench/task.sh), with the published anchor beside each.

    python bench/tasks_report.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

# (config, what is scored, where it is read in the summary, the anchor beside it)
ROWS = [
    ("ewt-bilstm-tagger", "EWT test UPOS %", ("test", "accuracy"),
     "Stanza 96.2 (raw text); UDPipe 2 97.5 (contextual embeddings)"),
    ("ewt-transformer-tagger", "EWT test UPOS %", ("test", "accuracy"), "the BiLSTM tagger, above"),
    ("ewt-bilstm-glove-tagger", "EWT test UPOS %", ("test", "accuracy"), "the BiLSTM tagger without GloVe, above"),
    ("ewt-bilstm-elmo-tagger", "EWT test UPOS %", ("test", "accuracy"), "the BiLSTM tagger without ELMo, above"),
    ("taiga-bilstm-tagger", "Taiga test UPOS %", ("test", "accuracy"), ""),
    ("sst2-bag-of-embeddings", "SST-2 dev accuracy %", ("valid", "accuracy"), "the one-to-one baseline"),
    ("sst2-bilstm-last", "SST-2 dev accuracy %", ("valid", "accuracy"), ""),
    ("sst2-bilstm-mean", "SST-2 dev accuracy %", ("valid", "accuracy"), ""),
    ("sst2-bilstm-attention", "SST-2 dev accuracy %", ("valid", "accuracy"),
     "CNN without pretrained vectors (Kim 2014) 82.7 on test"),
    ("sst2-transformer", "SST-2 dev accuracy %", ("valid", "accuracy"), ""),
    ("sst2-bilstm-glove", "SST-2 dev accuracy %", ("valid", "accuracy"), "an LSTM with GloVe vectors about 87"),
    ("sst2-bilstm-elmo", "SST-2 dev accuracy %", ("valid", "accuracy"), "the attention BiLSTM without ELMo, above"),
    ("ptb-kneser-ney", "PTB test perplexity", ("test", "perplexity"), "KN5 about 141"),
    ("ptb-lstm-lm", "PTB test perplexity", ("test", "perplexity"),
     "PyTorch example (650 tied, 40 epochs) 76; AWD-LSTM 58.8"),
    ("ptb-lstm-lm-no-ema", "PTB test perplexity", ("test", "perplexity"),
     "the LSTM LM above before the weight average"),
    ("ptb-transformer-lm", "PTB test perplexity", ("test", "perplexity"),
     "Transformer-XL 54.5 (24M parameters, AWD-style regularisation)"),
    ("bilm-elmo", "EWT dev perplexity (both directions)", ("valid", "perplexity"), ""),
]


def config_cell(name: str, result: dict) -> str:
    """The config, and a variant's --set options, that reproduce a row."""
    config = f"`{Path(result['config']).name}`" if result else f"`{name}.yaml`"
    overrides = " ".join(f"`--set {o}`" for o in result.get("overrides", ()))
    return f"{config} {overrides}".strip()


def cells(result: dict, where: tuple[str, str]) -> str:
    s = result["summary"]
    score = s.get(where[0], {}).get(where[1], "?")
    steps = f"{s['steps']} ({s['best_step']})" if "steps" in s else "counted"
    tps = f"{s['train_tokens_per_s']:.0f}" if "train_tokens_per_s" in s else ""
    return f"**{score}** | {s.get('params') or 0:,} | {steps} | {s['wall_seconds'] / 60:.1f} min | {tps}"


def main() -> None:
    print("| config | score | value | params | steps (best) | wall time | train tokens/s | anchor |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name, what, where, anchor in ROWS:
        path = RESULTS / f"{name}.json"
        result = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        row = cells(result, where) if result else "not yet run | | | | "
        print(f"| {config_cell(name, result)} | {what} | {row} | {anchor} |")


if __name__ == "__main__":
    main()
