# %% [markdown] lang="en"
# # 8. Positional encodings
#
# The notebook of the course's [page 8](../../docs/course/08-positions.md). Self-attention is a weighted
# sum, so shuffling the words only moves their outputs: order has to come in with the input. The
# Transformer adds to each embedding a vector that depends on its position:
#
#     PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))
#     PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))
#
# The lecture says the position vectors are *concatenated* to the word vectors; the Transformer paper,
# and attnkit, *add* them (the same width, and a trained model can keep positions and meanings in
# different directions of one space).

# %% [markdown] lang="ru"
# # 8. Позиционные кодирования
#
# Тетрадка к [странице 8](../../docs/course/ru/08-positions.md) курса. Самовнимание — взвешенная сумма:
# если переставить слова, их выходы просто переставятся вместе с ними. Порядок нужно подать на вход.
# Трансформер прибавляет к эмбеддингу каждого слова вектор, зависящий от его позиции:
#
#     PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))
#     PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))
#
# В лекции векторы позиций *приписываются* (конкатенируются) к векторам слов; в статье о Трансформере и
# в attnkit они *складываются* (ширина не растёт, а обученная модель может держать позиции и смыслы в
# разных направлениях одного пространства).

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

import torch

from attnkit import notebook, plotting
from attnkit.layers.attention import masked_softmax
from attnkit.layers.positional import sinusoidal_table
from attnkit.masks import causal_mask

runs = notebook.start(RUNS)

# %% [markdown] lang="en"
# The lecture's own example: row `pos` is what is added to the embedding of the word at `pos`
# (`attnkit plot positions --text "I am a robot" --d-model 64 --out course-img/positions.png` draws the same).

# %% [markdown] lang="ru"
# Пример из лекции: строка `pos` — то, что прибавляется к эмбеддингу слова на позиции `pos`
# (то же рисует `attnkit plot positions --text "I am a robot" --d-model 64 --out course-img/positions.png`).

# %%
words = "I am a robot".split()
plotting.positions_figure(words, sinusoidal_table(len(words), 64))

# %% [markdown] lang="en"
# Each pair of dimensions turns at its own frequency, from one turn in 2π ≈ 6.3 positions to one in tens
# of thousands. `PE[pos + k]` is `PE[pos]` rotated by an angle that depends on `k` alone, so "k words
# later" looks the same everywhere. The dot product of two rows depends only on their distance:

# %% [markdown] lang="ru"
# Каждая пара измерений вращается со своей частотой: от одного оборота за 2π ≈ 6,3 позиции до одного
# оборота за десятки тысяч. `PE[pos + k]` — это `PE[pos]`, повёрнутый на угол, зависящий только от `k`,
# поэтому «через k слов» выглядит одинаково в любом месте. Скалярное произведение двух строк зависит
# только от расстояния между ними:

# %%
table = sinusoidal_table(60, 64)
for pos in (0, 10, 40):
    print(f"PE[{pos}] . PE[{pos} + k] for k = 0..5:", [round(float(table[pos] @ table[pos + k]), 2) for k in range(6)])

# %% [markdown] lang="en"
# ## The decoder's mask
#
# The decoder may not look at the words it has not written yet: their scores become -inf before the
# softmax, and -inf becomes a weight of exactly 0 (page 9).

# %% [markdown] lang="ru"
# ## Маска декодера
#
# Декодер не должен видеть слова, которые ещё не написал: их оценки до софтмакса заменяются на -inf,
# а -inf после софтмакса даёт вес ровно 0 (страница 9).

# %%
torch.manual_seed(0)
scores = torch.randn(4, 4)
mask = causal_mask(4, "cpu")
print(scores.masked_fill(~mask, float("-inf")))
print(masked_softmax(scores, mask))
