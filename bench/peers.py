"""attnkit against Hugging Face transformers and CTranslate2 on the same work, each system alone in a
process of its own, at each setting this machine runs it at (issue 25).

The work: a Transformer of d_model 256, 3+3 layers, 4 heads, FFN 1024 and a vocabulary of 8,000,
random weights. Training: updates on batches of 128 pairs of 20+20 tokens (tokens/s counts source
and target). Decoding: 256 sentences of 20 source tokens, in batches of 32, each decoded to exactly
20 target tokens (the end of sentence is forbidden before, and the output stops there), with beam 5
and greedily. HF runs MarianMT of that shape; CTranslate2 runs the same MarianMT, converted.

    pip install -e ".[bench]"          # transformers, ctranslate2
    python bench/peers.py [--steps 20] [--systems attnkit,hf,ct2]

Prints one Markdown table with each row's ratio to attnkit's best, and the CPU.

Real work: ``python bench/peers.py --model DIR`` translates Multi30k test2016 (or ``--src``/``--ref``)
with a trained attnkit Transformer, by attnkit and by CTranslate2 from its export (``attnkit
export``, float32 and int8), each in a process of its own, through the same ``Translator`` batches
(the config's batch size), greedily and with beam 5; sentences/s and sacreBLEU for each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import cpu  # bench/machine.py

D, LAYERS, HEADS, FFN, VOCAB = 256, 3, 4, 1024, 8000
TRAIN_BATCH, LENGTH, SENTENCES, DECODE_BATCH, BEAM = 128, 20, 256, 32, 5


def words(n: int, length: int, seed: int) -> torch.Tensor:
    """(n, length) token ids, none of them a special token (ids 0-3 are specials in both systems)."""
    return torch.randint(4, VOCAB - 1, (n, length), generator=torch.Generator().manual_seed(seed))


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


# -- attnkit --------------------------------------------------------------------------------------
def attnkit_model():
    from attnkit.build import build_model
    from attnkit.config.models import TransformerConfig

    torch.manual_seed(0)
    cfg = TransformerConfig(d_model=D, num_heads=HEADS, ff_dim=FFN, encoder_layers=LAYERS, decoder_layers=LAYERS,
                            dropout=0.1, attention_dropout=0.1, max_positions=128, share_src_tgt_embeddings=True)
    return build_model(cfg, VOCAB, VOCAB)


def attnkit_train(precision: str, steps: int) -> float:
    from attnkit.config import TrainingConfig
    from attnkit.data.batching import make_batch
    from attnkit.runtime import Setup
    from attnkit.training.strategies import TeacherForcing
    from attnkit.training.trainer import Trainer

    model = attnkit_model()
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(model, TeacherForcing(0.1), TrainingConfig(precision=precision, schedule="constant"),
                          Path(scratch), lambda epoch, scale=1: [], None, None, {}, progress=False,
                          setup=Setup(torch.device("cpu"), precision))
        src, tgt = words(TRAIN_BATCH, LENGTH, 1).tolist(), words(TRAIN_BATCH, LENGTH, 2).tolist()
        batch = make_batch(src, tgt, list(range(TRAIN_BATCH)))  # + EOS / BOS: 21 + 21 tokens a pair
        seconds = timed(lambda: trainer.train_step(batch), steps)
        trainer.metrics.close()
    return TRAIN_BATCH * 2 * LENGTH / seconds


def attnkit_decode(precision: str, beam: int) -> float:
    from attnkit.data.batching import pad
    from attnkit.decoding.search import beam_search, greedy
    from attnkit.runtime import autocast
    from attnkit.specials import EOS

    model = attnkit_model().eval()
    src = pad([row + [EOS] for row in words(SENTENCES, LENGTH, 3).tolist()])
    limit = torch.full((DECODE_BATCH,), LENGTH)

    def run():
        with torch.no_grad(), autocast(precision):
            for start in range(0, SENTENCES, DECODE_BATCH):
                part = src[start : start + DECODE_BATCH]
                if beam == 1:
                    greedy(model, part, limit, min_len=LENGTH)
                else:
                    beam_search(model, part, beam, limit, min_len=LENGTH)

    return SENTENCES / timed(run, 1)


# -- HF transformers ------------------------------------------------------------------------------
def marian(directory: Path | None = None):
    from transformers import MarianConfig, MarianMTModel

    torch.manual_seed(0)
    cfg = MarianConfig(vocab_size=VOCAB, d_model=D, encoder_layers=LAYERS, decoder_layers=LAYERS,
                       encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=FFN,
                       decoder_ffn_dim=FFN, max_position_embeddings=128, dropout=0.1, attention_dropout=0.1,
                       pad_token_id=VOCAB - 1, eos_token_id=0, decoder_start_token_id=VOCAB - 1)
    model = MarianMTModel(cfg)
    if directory is not None:
        model.save_pretrained(directory)
    return model


def hf_train(precision: str, steps: int) -> float:
    model = marian().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    eos = torch.zeros(TRAIN_BATCH, 1, dtype=torch.long)
    src = torch.cat([words(TRAIN_BATCH, LENGTH, 1), eos], 1)
    labels = torch.cat([words(TRAIN_BATCH, LENGTH, 2), eos], 1)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(input_ids=src, labels=labels).loss
        loss.backward()
        optimizer.step()

    return TRAIN_BATCH * 2 * LENGTH / timed(step, steps)


def hf_decode(precision: str, beam: int) -> float:
    model = marian().eval()
    if precision == "bf16":
        model = model.to(torch.bfloat16)
    src = torch.cat([words(SENTENCES, LENGTH, 3), torch.zeros(SENTENCES, 1, dtype=torch.long)], 1)

    def run():
        with torch.no_grad():
            for start in range(0, SENTENCES, DECODE_BATCH):
                model.generate(input_ids=src[start : start + DECODE_BATCH], num_beams=beam, do_sample=False,
                               max_new_tokens=LENGTH, min_new_tokens=LENGTH, early_stopping=False)

    return SENTENCES / timed(run, 1)


# -- CTranslate2 ----------------------------------------------------------------------------------
class Vocabulary:
    """What CTranslate2's converter reads of a MarianMT tokenizer (there is none for random weights):
    ``</s>`` 0, ``<unk>`` 1, plain tokens, and ``<pad>`` last, which the converter drops."""

    eos_token, unk_token, bos_token, pad_token = "</s>", "<unk>", "<s>", "<pad>"

    def get_vocab(self) -> dict[str, int]:
        names = ["</s>", "<unk>", *(f"w{i}" for i in range(2, VOCAB - 1)), "<pad>"]
        return {name: i for i, name in enumerate(names)}


def ct2_decode(compute_type: str, beam: int) -> float:
    import ctranslate2
    from ctranslate2.converters import TransformersConverter

    class Converter(TransformersConverter):
        def load_tokenizer(self, tokenizer_class, model_name_or_path, **kwargs):
            return Vocabulary()

    with tempfile.TemporaryDirectory() as scratch:
        marian(Path(scratch) / "hf")
        Converter(str(Path(scratch) / "hf")).convert(str(Path(scratch) / "ct2"))
        translator = ctranslate2.Translator(str(Path(scratch) / "ct2"), device="cpu", compute_type=compute_type,
                                            inter_threads=1, intra_threads=torch.get_num_threads())
        src = [[f"w{i}" for i in row] for row in words(SENTENCES, LENGTH, 3).tolist()]

        def run():
            translator.translate_batch(src, beam_size=beam, max_batch_size=DECODE_BATCH, max_decoding_length=LENGTH,
                                       min_decoding_length=LENGTH, num_hypotheses=1)

        return SENTENCES / timed(run, 1)


# -- real work: a trained model on a test set -----------------------------------------------------
TEST = Path(__file__).resolve().parent.parent / "src/attnkit/resources/multi30k/test_2016_flickr"


def real_work(model_dir: str, engine: str, setting: str, src: str, ref: str) -> dict:
    import sacrebleu

    from attnkit.data.text import read_lines
    from attnkit.export import export_ctranslate2
    from attnkit.translator import load_model_dir

    lines, refs = read_lines(src), read_lines(ref)
    with tempfile.TemporaryDirectory() as scratch:
        if engine == "ct2":
            translator = load_model_dir(export_ctranslate2(model_dir, Path(scratch) / "ct2", setting), "cpu",
                                        "ctranslate2")
        else:
            translator = load_model_dir(model_dir, "cpu")
            translator.cfg.training.precision = setting
        row: dict = {"system": engine, "setting": setting}
        for name, beam in (("beam", BEAM), ("greedy", 1)):
            translator.translate(lines[:16], beam=beam)  # warm-up
            start = time.perf_counter()
            hyps = [r[0].text for r in translator.translate(lines, beam=beam)]
            row[name] = len(lines) / (time.perf_counter() - start)
            row[name + "_bleu"] = sacrebleu.corpus_bleu(hyps, [refs]).score
    return row


def real_work_table(args) -> None:
    from attnkit.runtime import native_bf16

    runs = [("attnkit", "fp32"), *([("attnkit", "bf16")] if native_bf16() else []), ("ct2", "float32"),
            ("ct2", "int8")]
    rows = []
    for engine, setting in runs:
        done = subprocess.run([sys.executable, __file__, "--model", args.model, "--src", args.src, "--ref", args.ref,
                               "--one", engine, setting], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{engine} {setting} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    best = {k: max(r[k] for r in rows if r["system"] == "attnkit") for k in ("beam", "greedy")}
    print(f"{cpu()}, {torch.get_num_threads()} threads, torch {torch.__version__}; {args.model} on {args.src}\n")
    print("| system | setting | beam 5 sent/s | BLEU | greedy sent/s | BLEU |\n|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['system']} | {r['setting']} | {r['beam']:,.1f} ({r['beam'] / best['beam']:.2f}x) | "
              f"{r['beam_bleu']:.2f} | {r['greedy']:,.1f} ({r['greedy'] / best['greedy']:.2f}x) | "
              f"{r['greedy_bleu']:.2f} |")


# -- the table ------------------------------------------------------------------------------------
def measure(system: str, setting: str, steps: int) -> dict:
    row: dict = {"system": system, "setting": setting}
    if system == "attnkit":
        row.update(train=attnkit_train(setting, steps), beam=attnkit_decode(setting, BEAM),
                   greedy=attnkit_decode(setting, 1))
    elif system == "hf":
        row.update(train=hf_train(setting, steps), beam=hf_decode(setting, BEAM), greedy=hf_decode(setting, 1))
    else:
        row.update(beam=ct2_decode(setting, BEAM), greedy=ct2_decode(setting, 1))
    return row


def settings(system: str) -> list[str]:
    from attnkit.runtime import native_bf16

    bf16 = ["bf16"] if native_bf16() else []
    return {"attnkit": ["fp32", *bf16], "hf": ["fp32", *bf16], "ct2": ["float32", "int8"]}[system]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="timed training updates (default: 20)")
    ap.add_argument("--systems", default="attnkit,hf,ct2")
    ap.add_argument("--model", metavar="DIR", help="real work: a trained Transformer translation model")
    ap.add_argument("--src", default=f"{TEST}.en.gz", help="real work: the sentences (default: test2016 English)")
    ap.add_argument("--ref", default=f"{TEST}.de.gz", help="real work: their references")
    ap.add_argument("--one", nargs=2, metavar=("SYSTEM", "SETTING"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.model:
        if args.one:
            print(json.dumps(real_work(args.model, *args.one, args.src, args.ref)))
        else:
            real_work_table(args)
        return
    if args.one:
        print(json.dumps(measure(*args.one, args.steps)))
        return
    rows = []
    for system in args.systems.split(","):
        for setting in settings(system):
            done = subprocess.run([sys.executable, __file__, "--one", system, setting, "--steps", str(args.steps)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{system} {setting} failed:\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    best = {k: max(r[k] for r in rows if r["system"] == "attnkit" and k in r) for k in ("train", "beam", "greedy")}
    print(f"{cpu()}, {torch.get_num_threads()} threads, torch {torch.__version__}\n")
    print("| system | setting | training tok/s | beam 5 sent/s | greedy sent/s |\n|---|---|---:|---:|---:|")
    for r in rows:
        cells = [f"{r[k]:,.1f} ({r[k] / best[k]:.2f}x)" if k in r else "–" for k in ("train", "beam", "greedy")]
        print(f"| {r['system']} | {r['setting']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
