# %% [markdown] lang="en"
# # 5. Static and contextual word vectors
#
# The notebook of the course's [page 5](../../docs/course/05-embeddings.md). word2vec, fastText and
# GloVe learn one vector per word *type*: "play" in "the children play in the park" and in "a play by
# Chekhov" is one point. ELMo runs a bidirectional language model over the sentence and takes its
# hidden states: one vector per word *occurrence*, computed from the whole sentence.
#
# Here all three are trained on the same text (the Penn Treebank and Multi30k's English side, about
# 1.2 million words): word2vec and fastText by gensim in a minute, a biLM of half the width of
# `configs/bilm-elmo.yaml` for 800 updates (the page's pictures come from the full one, 2,000 updates).

# %% [markdown] lang="ru"
# # 5. Статические и контекстные векторы слов
#
# Тетрадка к [странице 5](../../docs/course/ru/05-embeddings.md) курса. word2vec, fastText и GloVe учат
# один вектор на *тип* слова: «play» в «the children play in the park» и в «a play by Chekhov» — одна
# точка. ELMo прогоняет по предложению двунаправленную языковую модель и берёт её скрытые состояния:
# один вектор на каждое *вхождение* слова, вычисленный по всему предложению.
#
# Здесь все три обучаются на одном тексте (Penn Treebank и английская сторона Multi30k, около
# 1,2 миллиона слов): word2vec и fastText — gensim за минуту, biLM вдвое уже, чем в
# `configs/bilm-elmo.yaml`, — 800 шагов (картинки на странице сделаны полной моделью после 2000 шагов).

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

runs = notebook.start(RUNS, data=("ptb_lm",))  # the Penn Treebank: fetched where ../shared/data lacks it

# %%
PTB = "../shared/data/ptb_lm"
TRAIN = [f"{PTB}/ptb.train.txt.gz", "attnkit:multi30k/train.en.gz"] if FULL else [f"{PTB}/ptb.valid.txt.gz"]
VALID = f"{PTB}/ptb.valid.txt.gz" if FULL else "attnkit:contexts/senses.en.txt"  # a smoke run: a few sentences
TEXT = {"data.train": TRAIN, "data.valid": VALID}
word2vec = attnkit.fit("configs/static-word2vec.yaml", runs / "course-word2vec", TEXT, reuse=True)
fasttext = attnkit.fit("configs/static-word2vec.yaml", runs / "course-fasttext", {**TEXT, "model.arch": "fasttext"},
                       reuse=True)
SMALL = {"model.dim": 128, "model.char_hidden": 64}  # half the width of configs/bilm-elmo.yaml: minutes, not an hour
QUICK = {} if FULL else {"training.precision": "fp32"}
bilm = attnkit.fit("configs/bilm-elmo.yaml", runs / "nb-bilm", {**TEXT, **SMALL, **QUICK}, max_steps=800 if FULL else 3,
                   reuse=True)

# %% [markdown] lang="en"
# A static vector has neighbours, the same in every sentence. fastText builds a word's vector from its
# character n-grams too, so its neighbours share spelling more than word2vec's do:

# %% [markdown] lang="ru"
# У статического вектора есть соседи, одни и те же в любом предложении. fastText собирает вектор слова
# ещё и из символьных n-грамм, поэтому его соседи чаще похожи написанием, чем у word2vec:

# %%
for word in ("play", "bank"):
    for name, vectors in (("word2vec", word2vec), ("fastText", fasttext)):
        print(f"{name:8s} {word}:", ", ".join(f"{w} ({s:.2f})" for w, s in vectors.nearest(word, k=6)))

# %% [markdown] lang="en"
# The cosine similarity between the occurrences of one word in a few sentences
# (`attnkit:contexts/senses.en.txt`; `attnkit plot contexts --static DIR --contextual DIR --word play`):
# static on the left (every cell 1: one vector), contextual on the right (the biLM's average layer).

# %% [markdown] lang="ru"
# Косинусная близость между вхождениями одного слова в нескольких предложениях
# (`attnkit:contexts/senses.en.txt`; `attnkit plot contexts --static DIR --contextual DIR --word play`):
# слева статические векторы (все клетки равны 1: вектор один), справа контекстные (среднее по слоям biLM).

# %%
from attnkit.config import resolve_path
from attnkit.contexts import cosines, occurrences
from attnkit.tasks.bilm import read_unlabelled
from attnkit.tasks.static_vectors import read_vectors

sentences = read_unlabelled(str(resolve_path("attnkit:contexts/senses.en.txt")))
for name, run in (("word2vec skip-gram", "course-word2vec"), ("fastText skip-gram", "course-fasttext")):
    for word, layer in (("play", "average"), ("bank", "average"), ("play", 0)):
        occ = occurrences(word, sentences, read_vectors(runs / run), runs / "nb-bilm", layer)
        snippets = [occ.snippet(i) for i in range(len(occ.positions))]
        figure = plotting.contexts_figure(snippets, cosines(occ.static), cosines(occ.contextual), word, name, layer)
        picture = f"contexts-{run[7:]}-{word}" + ("" if layer == "average" else f"-layer{layer}")
        display(notebook.keep(figure, PICTURES, f"{picture}.png"))

# %% [markdown] lang="en"
# Layer 0 is the biLM's character-based word vector, before any LSTM: it sees no context, so its
# occurrences are as alike as the static ones. The contextual layers tell the senses apart.

# %% [markdown] lang="ru"
# Слой 0 — вектор слова, собранный biLM из символов, до всех LSTM: контекста он не видит, поэтому его
# вхождения так же одинаковы, как статические. Контекстные слои различают значения.
