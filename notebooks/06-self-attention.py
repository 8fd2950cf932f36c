# %% [markdown] lang="en"
# # 6. Self-attention
#
# The notebook of the course's [page 6](../../docs/course/06-self-attention.md). In self-attention every
# position of one sentence is query, key and value at once:
#
#     q_i = W_Q x_i      k_j = W_K x_j      v_j = W_V x_j
#     Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V
#
# Each word's new vector is a weighted sum of every word's value, weighted by that word's query
# against every key.

# %% [markdown] lang="ru"
# # 6. Самовнимание
#
# Тетрадка к [странице 6](../../docs/course/ru/06-self-attention.md) курса. В самовнимании каждая позиция
# одного предложения — сразу запрос, ключ и значение:
#
#     q_i = W_Q x_i      k_j = W_K x_j      v_j = W_V x_j
#     Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V
#
# Новый вектор слова — взвешенная сумма значений всех слов, а веса — это запрос этого слова против
# ключей всех слов.

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
# The encoder's self-attention in its first layer, four heads: rows are the words that ask, columns the
# words they read, each row sums to 1
# (`attnkit plot attention DIR --text "..." --kind encoder --layer 1` draws the same).

# %% [markdown] lang="ru"
# Самовнимание кодировщика в первом слое, четыре головы: строки — слова, которые спрашивают, столбцы —
# слова, которые они читают; каждая строка в сумме даёт 1
# (то же рисует `attnkit plot attention DIR --text "..." --kind encoder --layer 1`).

# %%
encoder = [a for a in m.attention(S) if a.name == "encoder"]
plotting.attention_figure(encoder, f"encoder self-attention: {S}", layer=1)

# %% [markdown] lang="en"
# The same call as the RNN's attention of page 3: there the queries come from the decoder and the keys
# from the encoder; here all three come from the same sentence. The weights are what the layer
# returns, as a tensor (layers, heads, queries, keys):

# %% [markdown] lang="ru"
# Это тот же вызов, что и внимание RNN на странице 3: там запросы приходят из декодера, а ключи из
# кодировщика; здесь все три берутся из одного предложения. Веса — то, что возвращает слой, тензор
# (слои, головы, запросы, ключи):

# %%
a = encoder[0]
print(a.weights.shape, "rows sum to", a.weights.sum(-1).min().item(), "...", a.weights.sum(-1).max().item())
print(a.rows)

# %% [markdown] lang="en"
# ## Why divide by sqrt(d_k)
#
# For a query and a key of `d_k` independent numbers of variance 1, `q . k` has variance `d_k`: the
# larger the heads, the further apart the scores, and the softmax puts nearly all its weight on one
# key, where its gradient vanishes. Divided by `sqrt(d_k)` the scores keep variance 1. The mean entropy
# of the weights over 20 random keys, with and without the scale
# (`attnkit plot entropy --out course-img/softmax-entropy.png`):

# %% [markdown] lang="ru"
# ## Зачем делить на sqrt(d_k)
#
# Если в запросе и ключе по `d_k` независимых чисел с дисперсией 1, то у `q . k` дисперсия `d_k`: чем
# больше головы, тем сильнее разбегаются оценки, и софтмакс отдаёт почти весь вес одному ключу, где
# его градиент исчезает. После деления на `sqrt(d_k)` дисперсия оценок остаётся равной 1. Средняя
# энтропия весов по 20 случайным ключам с делением и без
# (`attnkit plot entropy --out course-img/softmax-entropy.png`):

# %%
from attnkit.diagnostics import softmax_entropy

d_ks = [1, 4, 16, 64, 256, 1024]
scaled = [softmax_entropy(d, keys=20) for d in d_ks]
unscaled = [softmax_entropy(d, keys=20, scaled=False) for d in d_ks]
notebook.keep(plotting.entropy_figure(d_ks, scaled, unscaled, keys=20), PICTURES, "softmax-entropy.png")
