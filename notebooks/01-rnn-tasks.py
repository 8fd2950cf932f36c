# %% [markdown] lang="en"
# # 1. RNN task types: one to one, one to many, many to one, many to many
#
# The notebook of the course's [page 1](../../docs/course/01-rnn-tasks.md). The lecture sorts sequence
# tasks by what goes in and what comes out; each shape is a task of attnkit. Here two of them, trained
# in a few minutes each: many to one (a sentence in, one label out: SST-2 sentiment) and one to many
# (an image in, a sentence out: a captioner of handwritten digits).

# %% [markdown] lang="ru"
# # 1. Типы задач для RNN: один к одному, один ко многим, многие к одному, многие ко многим
#
# Тетрадка к [странице 1](../../docs/course/ru/01-rnn-tasks.md) курса. Лекция делит задачи над
# последовательностями по тому, что подаётся на вход и что получается на выходе; каждая такая форма —
# задача attnkit. Здесь две из них, каждая обучается за несколько минут: многие к одному (предложение на
# входе, одна метка на выходе: тональность SST-2) и один ко многим (картинка на входе, предложение на
# выходе: подписи к рукописным цифрам).

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

runs = notebook.start(RUNS, data=("sst2",))  # SST-2: fetched where ../shared/data lacks it

# %% [markdown] lang="en"
# ## Many to one: what the classifier reads
#
# A BiLSTM reads the sentence; the classifier then needs one vector. *Attention pooling* learns a
# weight per word, `alpha = softmax(v . tanh(W h_j))`, and sums `sum_j alpha_j h_j`. 600 updates
# (two minutes; SST-2's labels: 1 positive, 0 negative):

# %% [markdown] lang="ru"
# ## Многие к одному: что читает классификатор
#
# BiLSTM читает предложение, а классификатору нужен один вектор. *Пулинг вниманием* учит вес для каждого
# слова, `alpha = softmax(v . tanh(W h_j))`, и складывает `sum_j alpha_j h_j`. 600 шагов (пара минут;
# метки SST-2: 1 — положительный отзыв, 0 — отрицательный):

# %%
QUICK = {} if FULL else {"data.train": "../shared/data/sst2/glue/dev.tsv"}  # a smoke run trains on less
sst2 = attnkit.fit("configs/sst2-bilstm-attention.yaml", runs / "nb-sst2-attention", QUICK,
                   max_steps=600 if FULL else 3, reuse=True)
for text, (label, p) in zip(["a gorgeous , witty , seductive movie .", "a dull , tedious mess ."],
                            sst2.classify(["a gorgeous , witty , seductive movie .", "a dull , tedious mess ."])):
    print(f"{label} ({p:.2f})  {text}")

# %% [markdown] lang="en"
# The weights are the model's own, returned by it (`attnkit plot attention DIR --text "..."`):

# %% [markdown] lang="ru"
# Веса — собственные веса модели, которые она возвращает (`attnkit plot attention DIR --text "..."`):

# %%
text = "a gorgeous , witty , seductive movie ."
plotting.attention_figure(sst2.attention(text), f"attention pooling: {text}")

# %% [markdown] lang="en"
# ## One to many: an image in, words out
#
# The captioner's decoder attends over the cells of the image grid while it writes, one word at a
# time (Show, Attend and Tell). Scenes of one to four handwritten digits (UCI digits, in the package);
# the caption names them left to right. 1,500 updates (about six minutes; the model of the benchmarks
# trains 25 minutes and names 96.8% of the test scenes exactly).

# %% [markdown] lang="ru"
# ## Один ко многим: на входе картинка, на выходе слова
#
# Декодер модели подписей, пока пишет слово за словом, смотрит на клетки сетки изображения (Show, Attend
# and Tell). Сцены из одной–четырёх рукописных цифр (UCI digits, есть в пакете); подпись называет их
# слева направо. 1500 шагов (около шести минут; модель из бенчмарков учится 25 минут и безошибочно
# подписывает 96,8 % тестовых сцен).

# %%
from PIL import Image

from attnkit.tasks.captioning import read_splits

QUICK = {} if FULL else {"data.train_scenes": 200, "data.valid_scenes": 20, "data.test_scenes": 20}
captioner = attnkit.fit("configs/digits-captioner.yaml", runs / "nb-digits-captioner", QUICK,
                        max_steps=1500 if FULL else 3, reuse=True)
test = read_splits(captioner.cfg, ("test",))["test"]
for caption, truth in zip(captioner.caption(list(test.images[:5])), test.references[:5]):
    print(f"{caption.text!r:40} the truth: {truth[0]!r}")

# %%
scene = runs / "test-scene-1.png"
Image.fromarray(test.images[1].squeeze(-1)).save(scene)
seen = captioner.inspect(scene)
plotting.image_attention_figure(seen.image, seen.attention[0], f"{seen.result.caption}")

# %% [markdown] lang="en"
# Many to many in step (a tag per word) is the tagger of `configs/ewt-bilstm-tagger.yaml` on the
# English Web Treebank; page 1 gives its commands.

# %% [markdown] lang="ru"
# Многие ко многим синхронно (тег на каждое слово) — теггер `configs/ewt-bilstm-tagger.yaml` на
# English Web Treebank; его команды — на странице 1.
