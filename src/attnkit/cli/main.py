"""``attnkit``: the command line. Each subcommand's code is in ``attnkit.cli.commands``."""

from __future__ import annotations

import argparse
import logging
import sys

from attnkit import __version__
from attnkit.errors import UserError, one_line
from attnkit.runtime import tune_malloc


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's one-line errors (``attnkit: error: ...``, exit 2) instead of a usage block."""

    def error(self, message: str):
        command = self.prog.removeprefix("attnkit").strip()
        print(f"attnkit: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)",
              file=sys.stderr)
        sys.exit(2)

    def format_help(self) -> str:
        if self.prog == "attnkit":  # the tasks, read from their registry only when the help is shown
            from attnkit.tasks import TASKS

            self.epilog = ("tasks (a config's task:, and the commands that read its models besides evaluate, "
                           "plot and serve): "
                           + "; ".join(f"{name} ({', '.join(task.verbs) or 'its models feed others'})"
                                       for name, task in TASKS.items())
                           + ". Run 'attnkit COMMAND --help' for a command's options.")
        return super().format_help()


def add_transfer_parsers(sub) -> None:
    """attnkit export (to CTranslate2 or transformers) and attnkit import (from transformers)."""
    from attnkit.cli import commands as c
    from attnkit.export import QUANTIZATIONS

    x = sub.add_parser("export", help="export a trained Transformer translation model to CTranslate2 or transformers",
                       description="ctranslate2: write a trained Transformer translation model as a CTranslate2 "
                                   "model (model.bin and its vocabularies) with attnkit's config and tokenizers "
                                   "beside it, for 'attnkit translate OUT --engine ctranslate2' or CTranslate2 "
                                   "itself (docs/BENCHMARKS.md). hf: write it as a Hugging Face transformers model "
                                   "(MarianMT if post-norm, Pegasus if pre-norm) with its tokenizer and a model "
                                   "card, for AutoModelForSeq2SeqLM.from_pretrained(OUT). RNN models cannot be "
                                   "exported: neither has an RNN decoder.")
    x.add_argument("model_dir", metavar="DIR", help="a trained translation model directory")
    x.add_argument("--to", choices=("ctranslate2", "hf"), required=True, help="the format (ctranslate2, hf)")
    x.add_argument("--quantization", choices=QUANTIZATIONS, default="float32",
                   help="ctranslate2: the weights' type in the exported model (default: float32)")
    x.add_argument("--out", required=True, metavar="OUT", help="the directory to write (new)")
    x.set_defaults(func=c.cmd_export)

    im = sub.add_parser("import", help="bring in a translator from another library (hf: a MarianMT / OPUS-MT model)",
                        description="Write a model of another library as an attnkit model directory, which every "
                                    "command then reads as if attnkit had trained it (translate, evaluate, plot, "
                                    "serve, export, and training.init_from to fine-tune it). hf: a MarianMT model "
                                    "of Hugging Face transformers, such as the OPUS-MT translators "
                                    "(Helsinki-NLP/opus-mt-*): a local directory, or a Hub name when the Hub is "
                                    "reachable (transformers downloads it).")
    im.add_argument("library", choices=("hf",), help="hf: Hugging Face transformers")
    im.add_argument("source", metavar="SOURCE", help="a transformers model directory, or a Hub name")
    im.add_argument("--out", required=True, metavar="OUT", help="the directory to write (new)")
    im.set_defaults(func=c.cmd_import)


def build_parser() -> argparse.ArgumentParser:
    from attnkit.cli import commands as c
    from attnkit.cli import see
    from attnkit.cli.options import (
        Minutes,
        NonNegative,
        NonNegativeMinutes,
        add_device,
        add_engine,
        add_lengths,
        checked,
        count,
        input_file,
        layer,
        like,
        output_file,
    )
    from attnkit.config import DecodingConfig, GenerationConfig, TrainingConfig

    beam = like(DecodingConfig, "beam")
    batch_size = like(DecodingConfig, "batch_size")

    p = Parser(
        prog="attnkit",
        description="Attention-based sequence models from one lecture: translators (RNN encoder-decoders "
                    "with none/mean/dot/general/additive context, Transformers), taggers, classifiers, language "
                    "models and ELMo-style contextual embeddings, trained from a YAML config, decoded with "
                    "greedy or beam search, and measured (sacreBLEU, chrF, accuracy, perplexity).",
        epilog="Run 'attnkit COMMAND --help' for a command's options.",
    )
    p.add_argument("--version", action="version", version=f"attnkit {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr, no progress bars")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train a model from a YAML config",
                       description="Train a model from a YAML config into a run directory, which then "
                                   "serves as the model directory of translate and evaluate.")
    t.add_argument("config", nargs="?", type=input_file,
                   help="YAML config (see configs/; attnkit:demo.yaml is the demo's); not needed with --resume")
    t.add_argument("--out", help="run directory (default: runs/<config name>)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. --set training.lr=0.001 (repeatable; values are YAML)")
    t.add_argument("--max-steps", type=like(TrainingConfig, "max_steps"), default=None, metavar="N",
                   help="stop after N updates in total (0: no limit; a resumed run keeps its own unless given)")
    t.add_argument("--max-minutes", type=checked(NonNegativeMinutes, "minutes"), default=None, metavar="M",
                   help="bound the whole run's wall time: training, validation and the final test scoring end by "
                        "then (what did not fit is said and skipped); 0: no limit; a resumed run keeps the time its "
                        "budget had left unless given")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out exactly where it stopped (optimizer, schedule, RNG, data position)")
    add_device(t, trains=True)
    t.set_defaults(func=c.cmd_train)

    pr = sub.add_parser("prepare", help="binarize a config's training corpus once, for training to memory-map",
                        description="Train the config's tokenizers and write the token ids of every training pair "
                                    "to DIR as flat arrays (docs/SCALING.md); then train with --set "
                                    "data.prepared=DIR. Translation configs.")
    pr.add_argument("config", type=input_file, help="YAML config")
    pr.add_argument("--out", required=True, metavar="DIR", help="the corpus directory to write")
    pr.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a config value (repeatable)")
    pr.set_defaults(func=c.cmd_prepare)

    tr = sub.add_parser("translate", help="translate text with a trained model",
                        description="Translate one sentence per line, stdin to stdout by default; as many lines "
                                    "out as in (an empty line gives an empty line).")
    tr.add_argument("model_dir", metavar="DIR", help="a trained model directory (the --out of train)")
    tr.add_argument("--beam", type=beam, default=None, metavar="N",
                    help="beam size; 1 is greedy (default: the config's)")
    tr.add_argument("--nbest", type=like(DecodingConfig, "nbest"), default=1, metavar="K",
                    help="output the K best translations per line as 'LINE ||| TRANSLATION ||| SCORE' (K <= beam)")
    tr.add_argument("--batch-size", type=batch_size, default=None, metavar="N", help="sentences per batch")
    tr.add_argument("--input", type=input_file, metavar="FILE", help="read from FILE (plain or .gz) instead of stdin")
    tr.add_argument("--output", type=output_file, metavar="FILE", help="write to FILE instead of stdout")
    tr.add_argument("--trace", action="store_true",
                    help="show each step of the search on stderr: the hypotheses kept (beam search: the k live "
                         "ones; greedy: the token chosen), their log-probabilities, the ones pruned, and where EOS "
                         "or the length limit finished one (with its length-normalised score); lines are "
                         "translated one at a time")
    add_engine(tr)
    add_device(tr)
    tr.set_defaults(func=c.cmd_translate)

    add_transfer_parsers(sub)

    e = sub.add_parser("evaluate", help="score a trained model on a test file",
                       description="Score a model on a test file. Translation: translate --src and score the "
                                   "detokenized output against --ref with sacreBLEU (cased BLEU) and chrF, printing "
                                   "their signatures. Tagging: accuracy on the gold CoNLL-U --src. Classification: "
                                   "accuracy on the TSV --src. Language model: perplexity of the text --src. "
                                   "Captioning: BLEU-4, exact match and (digit scenes) attention localisation "
                                   "on the test split of the model's config (no --src).")
    e.add_argument("model_dir", metavar="DIR", help="a trained model directory")
    e.add_argument("--src", type=input_file, metavar="FILE",
                   help="the test file: source sentences, CoNLL-U, TSV or text (plain or .gz; attnkit:NAME for a "
                        "file shipped in the package, e.g. attnkit:multi30k/test_2016_flickr.en.gz)")
    e.add_argument("--ref", type=input_file, metavar="FILE",
                   help="translation: reference translations, aligned with --src")
    e.add_argument("--beam", type=beam, default=None, metavar="N",
                   help="beam size; 1 is greedy (default: the config's)")
    e.add_argument("--batch-size", type=batch_size, default=None, metavar="N", help="sentences per batch")
    e.add_argument("--output", type=output_file, metavar="FILE", help="also write the translations to FILE")
    e.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    e.add_argument("--exposure", action="store_true",
                   help="translation: also measure exposure bias, the reference tokens' loss and accuracy by output "
                        "position when the model reads the reference prefix (teacher forced) and when it reads its "
                        "own greedy output (self fed)")
    add_lengths(e)
    add_engine(e)
    add_device(e)
    e.set_defaults(func=c.cmd_evaluate)

    cp = sub.add_parser("caption", help="describe images with a trained captioner",
                        description="Print 'IMAGE<TAB>CAPTION' for each image. An image of another size or channel "
                                    "count than the model reads is resized or converted, with a note. With "
                                    "--attention-dir, save for each image one picture per generated word showing "
                                    "where the model looked (DIR/STEM/NN-WORD.png) and all of them in a row "
                                    "(DIR/STEM.png).")
    cp.add_argument("model_dir", metavar="DIR", help="a trained captioner directory")
    cp.add_argument("images", nargs="+", type=input_file, metavar="IMAGE", help="image files (anything Pillow reads)")
    cp.add_argument("--beam", type=beam, default=None, metavar="N",
                    help="beam size; 1 is greedy (default: the config's)")
    cp.add_argument("--attention-dir", metavar="DIR", help="save the attention map of every generated word here")
    add_device(cp)
    cp.set_defaults(func=c.cmd_caption)

    d = sub.add_parser("demo", help="train a small Transformer on the embedded Multi30k en-de and show it",
                       description="The main job: train a small Transformer on the Multi30k English-German data "
                                   "shipped inside attnkit (no download), report its test2016 BLEU with beam 5, "
                                   "and translate a few sentences.")
    d.add_argument("--minutes", type=checked(Minutes, "minutes"), default=10.0, metavar="M",
                   help="time budget of the whole demo, training and test scoring (default: 10)")
    d.add_argument("--out", help="run directory (default: runs/demo-<time>)")
    add_device(d, trains=True)
    d.set_defaults(func=c.cmd_demo)

    g = sub.add_parser("tag", help="tag words with a trained tagger",
                       description="Read CoNLL-U (or, with --tokens, one whitespace-tokenized sentence per line) "
                                   "and write CoNLL-U with the predicted tags in the UPOS or XPOS column the "
                                   "tagger was trained on; every other column is copied unchanged.")
    g.add_argument("model_dir", metavar="DIR", help="a trained tagger directory")
    g.add_argument("--input", type=input_file, metavar="FILE", help="read from FILE (plain or .gz) instead of stdin")
    g.add_argument("--output", type=output_file, metavar="FILE", help="write to FILE instead of stdout")
    g.add_argument("--tokens", action="store_true", help="input is one tokenized sentence per line, not CoNLL-U")
    add_device(g)
    g.set_defaults(func=c.cmd_tag)

    k = sub.add_parser("classify", help="label texts with a trained classifier",
                       description="Read one text per line and write 'LABEL<TAB>PROBABILITY' per line, "
                                   "as many lines out as in.")
    k.add_argument("model_dir", metavar="DIR", help="a trained classifier directory")
    k.add_argument("--input", type=input_file, metavar="FILE", help="read from FILE (plain or .gz) instead of stdin")
    k.add_argument("--output", type=output_file, metavar="FILE", help="write to FILE instead of stdout")
    add_device(k)
    k.set_defaults(func=c.cmd_classify)

    n = sub.add_parser("generate", help="continue prompts with a trained language model",
                       description="Continue each prompt (one per line of stdin or --input, or --prompt) to the end "
                                   "of its line, with greedy search, beam search or sampling; one continuation per "
                                   "prompt, as many lines out as in. Defaults come from the config's generation "
                                   "section.")
    n.add_argument("model_dir", metavar="DIR", help="a trained language-model directory")
    n.add_argument("--prompt", help="one prompt instead of reading stdin")
    n.add_argument("--input", type=input_file, metavar="FILE", help="read prompts from FILE instead of stdin")
    n.add_argument("--output", type=output_file, metavar="FILE", help="write to FILE instead of stdout")
    n.add_argument("--method", choices=["greedy", "beam", "sample"], help="how to choose each next token")
    n.add_argument("--beam", type=like(GenerationConfig, "beam"), metavar="N", help="beam size for --method beam")
    n.add_argument("--temperature", type=like(GenerationConfig, "temperature"), metavar="T",
                   help="sampling temperature, > 0 (< 1 sharper, > 1 flatter)")
    n.add_argument("--top-k", type=like(GenerationConfig, "top_k"), metavar="K",
                   help="sample among the K most probable tokens (0: all)")
    n.add_argument("--top-p", type=like(GenerationConfig, "top_p"), metavar="P",
                   help="nucleus sampling: the smallest set with mass P, 0 < P <= 1 (1: all)")
    n.add_argument("--min-tokens", type=like(GenerationConfig, "min_tokens"), metavar="N",
                   help="at least N new tokens per prompt (default: the config's, 1)")
    n.add_argument("--max-tokens", type=like(GenerationConfig, "max_tokens"), metavar="N",
                   help="at most N new tokens per prompt")
    n.add_argument("--seed", type=checked(NonNegative, "seed"), default=None,
                   help="random seed for sampling (default: unseeded)")
    add_device(n)
    n.set_defaults(func=c.cmd_generate)

    m = sub.add_parser("embed", help="write ELMo-style contextual word vectors of a text",
                       description="Run a trained bidirectional LM (task: bilm) over one whitespace-tokenized "
                                   "sentence per line (or a .conllu file's word forms) and write each word's "
                                   "contextual vector: as text, one 'WORD<TAB>v1 v2 ...' line per word and an empty "
                                   "line after each sentence, or, when --output ends in .safetensors, one tensor "
                                   "per sentence named by its line number from 0 (the sentences' words in the "
                                   "file's metadata).")
    m.add_argument("model_dir", metavar="DIR", help="a trained bidirectional LM directory (task: bilm)")
    m.add_argument("--input", type=input_file, metavar="FILE",
                   help="read from FILE (plain, .gz or .conllu) instead of stdin")
    m.add_argument("--output", type=output_file, metavar="FILE",
                   help="write to FILE (text, or .safetensors) instead of stdout")
    m.add_argument("--layer", type=layer, default="average", metavar="WHICH",
                   help="average (the mean of all layers, default), top (the last LSTM layer), N (layer N; 0 is "
                        "the character-based word vector), or all (every layer, (L+1, T, D) per sentence: "
                        ".safetensors output only)")
    m.add_argument("--batch-size", type=count(), default=32, metavar="N", help="sentences per batch (default: 32)")
    add_device(m)
    m.set_defaults(func=c.cmd_embed)

    b = sub.add_parser("bench", help="measure training and translation speed",
                       description="Measure one system in this process: 'bench train CONFIG' reports training "
                                   "tokens/s, 'bench translate DIR --src FILE' reports sentences/s. bench/speed.py "
                                   "runs each system in a process of its own and writes a table.")
    bsub = b.add_subparsers(dest="what", metavar="WHAT", required=True)
    bt = bsub.add_parser("train", help="training tokens/s of a config on its training data")
    bt.add_argument("config", type=input_file, help="YAML config")
    bt.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    bt.add_argument("--steps", type=count(), default=30, help="timed updates (default: 30)")
    bt.add_argument("--warmup", type=checked(NonNegative, "steps"), default=5,
                    help="untimed updates first (default: 5)")
    add_device(bt, trains=True)
    bt.set_defaults(func=c.cmd_bench_train)
    bd = bsub.add_parser("translate", help="translation sentences/s of a trained model")
    bd.add_argument("model_dir", metavar="DIR")
    bd.add_argument("--src", type=input_file, required=True, metavar="FILE", help="real sentences to translate")
    bd.add_argument("--beam", type=beam, default=1, metavar="N")
    bd.add_argument("--batch-size", type=batch_size, default=None, metavar="N")
    add_engine(bd)
    bd.add_argument("--limit", type=checked(NonNegative, "count"), default=0, metavar="N",
                    help="only the first N sentences (0: all)")
    add_device(bd)
    bd.set_defaults(func=c.cmd_bench_translate)

    see.add_parsers(sub)  # plot, serve: attnkit/cli/see.py
    return p


def setup_logging(quiet: bool) -> None:
    """Progress on stderr (only warnings and errors with ``--quiet``); the records themselves stay at
    INFO, so a run directory's train.log is whole however the console was set."""
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("attnkit: %(message)s"))
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=logging.INFO, handlers=[console])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.quiet)
    tune_malloc()
    try:
        from attnkit.cli.options import refuse_overwrites

        refuse_overwrites(args)
        return args.func(args) or 0
    except UserError as err:
        print(f"attnkit: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("attnkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
