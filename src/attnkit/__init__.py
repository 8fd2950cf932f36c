"""attnkit: attention-based sequence models from one lecture, as a small, hackable toolkit.

The Python API is one call, ``attnkit.load``; what it returns has the verbs of the command line:

    import attnkit
    m = attnkit.load("runs/multi30k")              # a translation model directory
    m.translate(["A dog runs."], beam=5, nbest=2)   # [[Translation(text, score, tokens), ...]]
    maps = m.attention("A dog runs.")               # every attention map, weights and token labels

    m = attnkit.fit("configs/multi30k-transformer.yaml", "runs/mine", max_steps=500)  # train, then load

(``tag``, ``classify``, ``generate``, ``embed``, ``caption``, ``nearest`` on the other tasks' models).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"

# Bumped whenever a saved model can no longer be read by this code.
FORMAT_VERSION = 1


def load(path: str | Path, device: str = "auto", engine: str = "torch", task: str | None = None) -> Any:
    """The trained model of the directory ``path`` (any task: its config says which), on ``device``
    (auto: the GPU when there is one; cpu, cuda, cuda:N), as the object with its task's verbs:

    ==============  =================  =====================================================
    task            returns            verbs
    ==============  =================  =====================================================
    translation     Translator         translate(lines, beam, nbest), trace(line, beam)
    tagging         Tagger             tag(sentences)
    classification  Classifier         classify(texts)
    language_model  LanguageModel      generate(prompt, ...), perplexity(lines)
    bilm            Contextual         embed(sentences, layer)
    static_vectors  WordVectors        vector(word), nearest(word, k)
    captioning      Captioner          caption(images, beam)
    ==============  =================  =====================================================

    and ``inspect(text)`` / ``attention(text)`` where the model attends (``attnkit.inspection``).
    ``engine="ctranslate2"`` reads a translation model that ``attnkit export --to ctranslate2`` wrote;
    ``task`` (optional) makes another task's model a one-line error. The CLI and the web server load
    every model through this call."""
    from attnkit.errors import UserError
    from attnkit.model_dir import open_model_dir
    from attnkit.tasks import TASKS

    path, cfg = open_model_dir(path, files=())
    handler = TASKS[cfg.task]
    if task is not None and cfg.task != task:
        raise UserError(f"{path}: holds a {cfg.task} model, not {TASKS[task].what}")
    if engine not in handler.engines:
        raise UserError(f"--engine {engine}: {path} holds {handler.what}, which runs in {', '.join(handler.engines)}")
    return handler.load(path, device, engine)


def fit(config: str | Path, out: str | Path, overrides: dict[str, Any] | None = None, *, max_steps: int | None = None,
        max_minutes: float | None = None, reuse: bool = False, device: str = "auto", progress: bool = False) -> Any:
    """Train ``config`` (a YAML file, or ``attnkit:NAME`` for one in the package) into the run directory
    ``out`` as ``attnkit train CONFIG --out OUT`` does, print what it scored, and return the trained model
    as :func:`load` returns it (on ``device``).

    ``overrides`` are ``--set``'s keys and values as a dict (``{"training.lr": 1e-3, "model.context":
    "dot"}``); ``max_steps`` and ``max_minutes`` are ``--max-steps`` and ``--max-minutes``. ``reuse=True``:
    where ``out`` already holds a finished run (its ``summary.json``), load it instead of training again,
    as a notebook run a second time wants. ``progress``: a progress bar (the log says how training goes
    either way). Every error is an :class:`attnkit.errors.UserError` with the CLI's one-line message."""
    import json
    import logging
    import sys

    from attnkit.config import resolve_path
    from attnkit.train import run, summary_lines

    out = Path(out)
    if not (reuse and (out / "summary.json").is_file()):
        sets = [f"{key}={json.dumps(value)}" for key, value in (overrides or {}).items()]  # JSON is YAML
        if device != "auto":
            sets.append(f"training.device={device}")
        said = logging.getLogger("attnkit")
        console = None
        if not said.handlers and not logging.getLogger().handlers:  # nobody set up logging (a notebook): say it here
            console = logging.StreamHandler(sys.stdout)
            console.setFormatter(logging.Formatter("attnkit: %(message)s"))
            said.addHandler(console)
            said.setLevel(logging.INFO)
        try:
            summary = run(resolve_path(str(config)), out, sets, False, max_steps, max_minutes, progress)
        finally:
            if console is not None:
                said.removeHandler(console)
                said.setLevel(logging.NOTSET)
        print("\n".join(summary_lines(summary, out)))
    return load(out, device)
