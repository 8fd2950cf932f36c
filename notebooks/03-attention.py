# %% [markdown] lang="en"
# # 3. Attention and its scores
#
# The notebook of the course's [page 3](../../docs/course/03-attention.md). Attention gives the decoder,
# at every step `i`, its own mix of the encoder states:
#
#     alpha_ij = softmax_j( score(s_i, h_j) )        c_i = sum_j alpha_ij h_j
#
# with the lecture's scores: `dot` (`s . h`), `general` (bilinear, `s W h`) and `additive`
# (`v . tanh(W_q s + W_k h)`, Bahdanau). The lecture calls the dot score a "cosine distance"; it is an
# unnormalised dot product (a cosine would divide by both lengths).
#
# To see where each step looks, a task whose right answer is known: write a sequence of 3 to 30
# random letters backwards. The right attention is the anti-diagonal.

# %% [markdown] lang="ru"
# # 3. Внимание и его оценки
#
# Тетрадка к [странице 3](../../docs/course/ru/03-attention.md) курса. Внимание даёт декодеру на каждом
# шаге `i` свою смесь состояний кодировщика:
#
#     alpha_ij = softmax_j( score(s_i, h_j) )        c_i = sum_j alpha_ij h_j
#
# с оценками из лекции: `dot` (`s . h`), `general` (билинейная, `s W h`) и `additive`
# (`v . tanh(W_q s + W_k h)`, Бахданау). Лекция называет скалярную оценку «косинусным расстоянием»; на
# деле это скалярное произведение без нормировки (косинус делил бы на длины обоих векторов).
#
# Чтобы увидеть, куда смотрит каждый шаг, возьмём задачу с известным правильным ответом: записать
# последовательность из 3–30 случайных букв задом наперёд. Правильное внимание — побочная диагональ.

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
from attnkit import notebook, plotting

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


reverse = write_task("reverse", lambda s: " ".join(reversed(s.split())))
print(open(f"{reverse}/train.src").readline(), open(f"{reverse}/train.tgt").readline(), sep="", end="")

# %%
models = {score: train_rnn(f"reverse-{score}", reverse, score, 1000) for score in ("dot", "general", "additive")}

# %% [markdown] lang="en"
# Rows are the letters the decoder wrote, columns the source; each row sums to 1
# (`attnkit plot attention DIR --text "..."` draws the same for any model directory).

# %% [markdown] lang="ru"
# Строки — буквы, которые написал декодер, столбцы — источник; каждая строка в сумме даёт 1
# (то же для любой модели рисует `attnkit plot attention DIR --text "..."`).

# %%
X = "t h e q u i c k b r o w n f o x"
for score, model in models.items():
    print(score, "->", model.translate([X], beam=1)[0][0].text)
    display(plotting.attention_figure(model.attention(X), f"{score}: {X}"))

# %% [markdown] lang="en"
# ## `general` when the encoder and the decoder differ in size
#
# `dot` needs `s` and `h` of one size; `general`'s `W` maps one onto the other, so the two sides may
# differ. Here the encoder is a BiLSTM of 2 x 256 (each `h` has 512 numbers) and the decoder has 384:
# `W` is 384 x 512.

# %% [markdown] lang="ru"
# ## `general`, когда размеры кодировщика и декодера различаются
#
# `dot` требует, чтобы `s` и `h` были одного размера; матрица `W` в `general` переводит одно в другое,
# поэтому стороны могут различаться. Здесь кодировщик — BiLSTM 2 x 256 (в каждом `h` 512 чисел), а у
# декодера 384: `W` размером 384 x 512.

# %%
wide = train_rnn("reverse-general-2x256-384", reverse, "general", 1000, encoder_hidden=256, decoder_hidden=384)
for name, p in wide.model.named_parameters():
    if "attention" in name:
        print(name, tuple(p.shape))
notebook.keep(plotting.attention_figure(wide.attention(X), f"general, encoder 2x256, decoder 384: {X}"), PICTURES,
              "general-2x256-384.png")
