# %% [markdown] lang="en"
# # 9. The Transformer: encoder, decoder and the mask
#
# The notebook of the course's [page 9](../../docs/course/09-transformer.md). The encoder is N identical
# layers of two sublayers each, self-attention and a position-wise feed-forward network, each wrapped
# in a skip connection and LayerNorm; the decoder layer adds *masked* self-attention before the
# encoder-decoder attention.

# %% [markdown] lang="ru"
# # 9. Трансформер: кодировщик, декодер и маска
#
# Тетрадка к [странице 9](../../docs/course/ru/09-transformer.md) курса. Кодировщик — N одинаковых слоёв
# по два подслоя: самовнимание и позиционно-независимая полносвязная сеть, каждый обёрнут в остаточную
# связь и LayerNorm; в слое декодера перед вниманием на кодировщик стоит *маскированное* самовнимание.

# %% tags=["parameters"]
FULL = True  # False: a few updates of each model, only to check that every cell runs (the tests set it)
RUNS = "runs"  # where the notebook's models go
PICTURES = "course-img"  # where it saves its pictures
MODEL = None  # or a translation model to look at instead, e.g. an imported OPUS-MT (see the README)

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

# %% [markdown] lang="en"
# The model: attnkit's demo Transformer (3 + 3 layers, d_model 256, 4 heads) trained on Multi30k
# English-German, 400 updates (about 5 minutes on 2 CPU cores; the pages' pictures come from the
# hour-long run of `configs/multi30k-transformer.yaml`, 38.5 BLEU). Pages 6, 7, 9 and 10 share it:
# whichever notebook runs first trains it, the others load it.

# %% [markdown] lang="ru"
# Модель: демонстрационный Трансформер attnkit (3 + 3 слоя, d_model 256, 4 головы), обученный на Multi30k
# с английского на немецкий за 400 шагов (около 5 минут на 2 ядрах; картинки страниц курса сделаны
# часовой моделью `configs/multi30k-transformer.yaml`, 38,5 BLEU). Страницы 6, 7, 9 и 10 пользуются
# одной моделью: её обучает та тетрадка, которую запустили первой, остальные загружают.

# %%
SENSES = "attnkit:contexts/senses.en.txt"  # a few sentences: what a smoke run validates on
QUICK = {} if FULL else {"vocab.size": 500, "decoding.max_len_a": 0, "decoding.max_len_b": 2,
                         "training.precision": "fp32", "training.batch_tokens": 512,
                         "data.valid": {"src": SENSES, "tgt": SENSES}}
m = attnkit.load(MODEL) if MODEL else attnkit.fit(
    "attnkit:demo.yaml", runs / "course-transformer", {"data.test": None, **QUICK},
    max_steps=400 if FULL else 3, reuse=True)
S = "A man in a vest is sitting in a chair and holding magazines."
print(m.translate([S], beam=5)[0][0].text)

# %% [markdown] lang="en"
# ## The mask: -inf becomes 0, the rest sums to 1
#
# The decoder's self-attention in its first layer, head 1: rows are the words predicted, columns the
# decoder's inputs (`<s>` and the words before). Nothing above the diagonal.

# %% [markdown] lang="ru"
# ## Маска: -inf превращается в 0, остальное в сумме даёт 1
#
# Самовнимание декодера в первом слое, голова 1: строки — предсказанные слова, столбцы — входы декодера
# (`<s>` и предыдущие слова). Выше диагонали ничего нет.

# %%
self_attention = [a for a in m.attention(S) if a.name == "self"]
plotting.attention_figure(self_attention, f"decoder self-attention (masked): {S}", layer=1, head=1)

# %%
w = self_attention[0].weights  # (layers, heads, rows, cols)
above = w.triu(diagonal=1)
print("largest weight above the diagonal, any layer and head:", float(above.max()))

# %% [markdown] lang="en"
# ## What the skip connections and LayerNorm are for
#
# Three Transformers of 6 + 6 layers (d_model 128), the same but for one thing: the usual pre-norm
# stack, one without its residual connections (`model.residual: false`: each sublayer's output
# replaces its input) and one without LayerNorm (`model.norm: none`). 300 updates each; the training
# loss along the way.

# %% [markdown] lang="ru"
# ## Зачем нужны остаточные связи и LayerNorm
#
# Три Трансформера по 6 + 6 слоёв (d_model 128), одинаковые во всём, кроме одного: обычный стек с
# нормализацией перед подслоем, стек без остаточных связей (`model.residual: false`: выход подслоя
# заменяет его вход) и стек без LayerNorm (`model.norm: none`). По 300 шагов; функция потерь на
# обучении по ходу дела.

# %%
import matplotlib.pyplot as plt

from attnkit.training.metrics import read_metrics

DEEP = {"model.d_model": 128, "model.ff_dim": 512, "model.encoder_layers": 6, "model.decoder_layers": 6,
        "training.batch_tokens": 2048, "training.log_every": 10, "training.valid_every": 300, "data.test": None,
        **QUICK}
fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
for name, change in (("pre-norm, residual", {}), ("no residual", {"model.residual": False}),
                     ("no LayerNorm", {"model.norm": "none"})):
    run = runs / f"course-ablation-{name.replace(' ', '-').replace(',', '')}"
    attnkit.fit("attnkit:demo.yaml", run, {**DEEP, **change}, max_steps=300 if FULL else 3, reuse=True)
    losses = [(r["step"], r["loss"]) for r in read_metrics(run) if "loss" in r]
    if losses:  # (a smoke run's few updates log none)
        ax.plot([step for step, _ in losses], [loss for _, loss in losses], label=name)
ax.set(xlabel="update", ylabel="training loss (nats per token)", title="6 + 6 layers, d_model 128")
ax.legend()
notebook.keep(fig, PICTURES, "ablation-curves.png")
