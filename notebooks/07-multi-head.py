# %% [markdown] lang="en"
# # 7. Multi-head attention
#
# The notebook of the course's [page 7](../../docs/course/07-multi-head.md). Multi-head attention runs
# `h` attentions side by side, each in its own smaller space (`d_k = d_model / h`), concatenates their
# outputs and mixes them with `W^O`:
#
#     head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)
#     MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O
#
# In attnkit the per-head projections are one `d_model x d_model` matrix each for Q, K and V, whose
# output is split into `h` heads by a reshape: `(B, T, d_model) -> (B, h, T, d_k)`.

# %% [markdown] lang="ru"
# # 7. Многоголовое внимание
#
# Тетрадка к [странице 7](../../docs/course/ru/07-multi-head.md) курса. Многоголовое внимание запускает
# `h` внимательных механизмов рядом, каждый в своём меньшем пространстве (`d_k = d_model / h`),
# склеивает их выходы и смешивает матрицей `W^O`:
#
#     head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)
#     MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O
#
# В attnkit проекции всех голов — одна матрица `d_model x d_model` для Q, K и V, выход которой
# решейпом делится на `h` голов: `(B, T, d_model) -> (B, h, T, d_k)`.

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
# The decoder's encoder-decoder attention in its last layer, one picture per head (rows: the German
# words written; columns: the English source). Look for a head that aligns word for word and one that
# does something else; with `MODEL` set to another model, the heads are that model's.

# %% [markdown] lang="ru"
# Внимание декодера на кодировщик в последнем слое, по картинке на голову (строки — написанные немецкие
# слова, столбцы — английский источник). Поищите голову, которая выравнивает слово в слово, и голову,
# которая делает что-то другое; если задать `MODEL`, это будут головы другой модели.

# %%
cross = [a for a in m.attention(S) if a.name == "cross"]
plotting.attention_figure(cross, f"encoder-decoder attention, last layer: {S}", layer=cross[0].layers)

# %% [markdown] lang="en"
# `W^O` is what mixes the heads back: its input is the heads' outputs side by side. The mean of the
# heads is what a one-head summary would draw (the web page's "mean"):

# %% [markdown] lang="ru"
# `W^O` снова смешивает головы: на его вход идут выходы голов, поставленные рядом. Среднее по головам —
# то, что нарисовала бы сводка «одной головой» (пункт «mean» на веб-странице):

# %%
last = cross[0].weights[-1]  # (heads, target words, source words)
for h in range(last.size(0)):
    peaks = [cross[0].cols[j] for j in last[h].argmax(-1).tolist()]
    print(f"head {h + 1}:", " ".join(f"{w}->{p}" for w, p in zip(cross[0].rows, peaks)))
print("mean of heads:", " ".join(cross[0].cols[j] for j in last.mean(0).argmax(-1).tolist()))
