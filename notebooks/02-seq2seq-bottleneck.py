# %% [markdown] lang="en"
# # 2. seq2seq and its bottleneck
#
# The notebook of the course's [page 2](../../docs/course/02-seq2seq-bottleneck.md). In the lecture's
# first encoder-decoder the decoder starts from the encoder's final state alone: the whole input must
# fit in one vector. The lecture names what that costs: the first words are lost, the decoder forgets
# as it writes, and even a BiLSTM, whose final states have read both ends, loses the middle.
#
# A task where nothing else gets in the way shows it: copy a sequence of 3 to 30 random letters. The
# same BiLSTM encoder-decoder three times, only `model.context` differs: `none` (the bottleneck),
# `mean` (every encoder state, with the same weight at every step) and `dot` (attention, page 3).
# Then the accuracy of each output position.

# %% [markdown] lang="ru"
# # 2. seq2seq и его узкое место
#
# Тетрадка к [странице 2](../../docs/course/ru/02-seq2seq-bottleneck.md) курса. В первом
# кодировщике-декодере лекции декодер начинает только с последнего состояния кодировщика: весь вход
# должен поместиться в один вектор. Лекция называет цену: первые слова теряются, декодер забывает по
# мере того, как пишет, и даже у BiLSTM, чьи последние состояния прочли оба конца, теряется середина.
#
# Это видно на задаче, где больше ничего не мешает: скопировать последовательность из 3–30 случайных
# букв. Одна и та же модель (кодировщик BiLSTM и декодер) трижды, меняется только `model.context`:
# `none` (узкое место), `mean` (все состояния кодировщика с одинаковым весом на каждом шаге) и `dot`
# (внимание, страница 3). Затем точность на каждой позиции выхода.

# %% tags=["parameters"]
FULL = True  # False: a few updates of each model, only to check that every cell runs (the tests set it)
RUNS = "runs"  # where the notebook's models go
PICTURES = "course-img"  # where it saves its pictures

# %%
import subprocess
import sys

if "google.colab" in sys.modules:  # Colab: attnkit from its repository (a GPU runtime is used where there is one)
    subprocess.run("test -d attnkit || git clone -q --depth 1 https://github.com/attnkit/attnkit && "
                   "pip install -q -e 'attnkit[notebooks]'", shell=True, check=True)
    sys.path.insert(0, "/content/attnkit/src")  # the running kernel does not see an editable install

import attnkit
from attnkit import notebook

runs = notebook.start(RUNS)

# %%
import random


def sequences(n: int, seed: int) -> list[str]:
    """n random sequences of 3 to 30 letters, each letter a word."""
    rng = random.Random(seed)
    return [" ".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 30))) for _ in range(n)]


def write_task(name: str, target) -> str:
    """A task's training, validation and test files under runs/NAME (the target: a function of the source)."""
    folder = runs / name
    folder.mkdir(parents=True, exist_ok=True)
    sizes = (20000, 300, 1000) if FULL else (500, 20, 20)
    for split, n, seed in zip(("train", "valid", "test"), sizes, (1, 2, 3)):
        src = sequences(n, seed)
        (folder / f"{split}.src").write_text("\n".join(src) + "\n")
        (folder / f"{split}.tgt").write_text("\n".join(target(s) for s in src) + "\n")
    return str(folder)


def rnn_config(data: str, context: str, **model) -> str:
    """The YAML of an RNN encoder-decoder (a BiLSTM encoder) on the letter task in ``data``."""
    sizes = {"embed_dim": 64, "encoder_hidden": 128, "decoder_hidden": 256, **model}
    return f"""
data:
  train: {{src: {data}/train.src, tgt: {data}/train.tgt}}
  valid: {{src: {data}/valid.src, tgt: {data}/valid.tgt}}
  test: {{src: {data}/test.src, tgt: {data}/test.tgt}}
vocab: {{level: word}}
model: {{arch: rnn, cell: lstm, bidirectional: true, encoder_layers: 1, decoder_layers: 1, context: {context},
         input_feeding: false, dropout: 0.0, {", ".join(f"{k}: {v}" for k, v in sizes.items())}}}
training: {{batch_tokens: 2048, lr: 0.003, schedule: constant, warmup_steps: 0, label_smoothing: 0.0,
           valid_every: 250, precision: fp32}}
decoding: {{beam: 1, max_len_a: 1.0, max_len_b: 2}}
"""


def train_rnn(name: str, data: str, context: str, steps: int, **model):
    config = runs / f"{name}.yaml"
    config.write_text(rnn_config(data, context, **model))
    return attnkit.fit(config, runs / name, max_steps=steps if FULL else 3, reuse=True)


copy = write_task("copy", lambda s: s)
print(open(f"{copy}/train.src").readline(), end="")

# %%
models = {context: train_rnn(f"copy-{context}", copy, context, 1500) for context in ("none", "mean", "dot")}

# %% [markdown] lang="en"
# Accuracy by position: of the test sequences at least `i` letters long, the fraction whose `i`-th
# output letter is right (greedy search).

# %% [markdown] lang="ru"
# Точность по позициям: среди тестовых последовательностей длиной не меньше `i` — доля тех, у кого
# `i`-я буква выхода верна (жадный поиск).

# %%
import matplotlib.pyplot as plt

test_src = open(f"{copy}/test.src").read().split("\n")[:-1]


def by_position(model) -> list[float]:
    hyps = [t[0].text.split() for t in model.translate(test_src, beam=1)]
    right, seen = [0] * 30, [0] * 30
    for src, hyp in zip(test_src, hyps):
        for i, letter in enumerate(src.split()):
            seen[i] += 1
            right[i] += i < len(hyp) and hyp[i] == letter
    return [r / s if s else float("nan") for r, s in zip(right, seen)]  # nan: no test sequence that long


fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
for context, model in models.items():
    accuracy = by_position(model)
    ax.plot(range(1, 31), accuracy, marker=".", label=context)
    print(f"{context:5s} positions 1-5: {sum(accuracy[:5]) / 5:.2f}  11-15: {sum(accuracy[10:15]) / 5:.2f}  "
          f"26-30: {sum(accuracy[25:]) / 5:.2f}")
ax.set(xlabel="position in the sequence", ylabel="accuracy", title="copying 3-30 random letters", ylim=(0, 1.02))
ax.legend(title="model.context")
notebook.keep(fig, PICTURES, "copy-by-position.png")

# %% [markdown] lang="en"
# With `none` every letter is right at first and fewer and fewer as the output goes on: the decoder
# forgets what the one vector held as it writes. The first letters are not the ones lost here, because
# the encoder is a BiLSTM: its backward half ends on the first letter, so the vector remembers the start
# (with a one-directional encoder the start is what the final state read longest ago). `mean` is barely
# better: the average of the encoder says which letters occur, not where. `dot` looks up each position
# and copies. On real sentences the same picture is BLEU by source length (the page's table, from
# `attnkit evaluate DIR --by-length` on Multi30k).

# %% [markdown] lang="ru"
# С `none` сначала верна каждая буква, а дальше по ходу выхода всё меньше: декодер, пока пишет, забывает
# то, что держал единственный вектор. Первые буквы здесь не теряются, потому что кодировщик — BiLSTM:
# его обратная половина заканчивается на первой букве, и вектор помнит начало (у однонаправленного
# кодировщика начало — то, что последнее состояние прочло раньше всего). `mean` почти не лучше: среднее
# по кодировщику говорит, какие буквы есть, но не где они стоят. `dot` находит каждую позицию и
# копирует. На настоящих предложениях та же картина — BLEU по длине источника (таблица на странице,
# `attnkit evaluate DIR --by-length` на Multi30k).
