# %% [markdown] lang="en"
# # 10. Training and decoding
#
# The notebook of the course's [page 10](../../docs/course/10-training-decoding.md): teacher forcing and
# exposure bias, greedy and beam search, step by step.

# %% [markdown] lang="ru"
# # 10. Обучение и декодирование
#
# Тетрадка к [странице 10](../../docs/course/ru/10-training-decoding.md) курса: принудительное обучение
# (teacher forcing) и смещение экспозиции, жадный и лучевой поиск по шагам.

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
# ## Teacher forcing and what it leaves out
#
# The curves of the training: loss and validation BLEU against updates (`attnkit plot curves DIR`).

# %% [markdown] lang="ru"
# ## Принудительное обучение и чего ему не хватает
#
# Кривые обучения: функция потерь и BLEU на валидации по шагам (`attnkit plot curves DIR`).

# %%
from attnkit.training.metrics import read_metrics

if not MODEL:
    display(plotting.curves_figure(read_metrics(runs / "course-transformer"), "course-transformer"))

# %% [markdown] lang="en"
# Exposure bias, measured: the reference words' loss and accuracy when the model reads the reference
# (teacher forced) and when it reads its own greedy output (self fed), on 200 test sentences
# (`attnkit evaluate DIR --src ... --ref ... --exposure`).

# %% [markdown] lang="ru"
# Смещение экспозиции в числах: потери и точность на словах эталона, когда модель читает эталон
# (teacher forcing) и когда читает свой собственный жадный выход, на 200 тестовых предложениях
# (`attnkit evaluate DIR --src ... --ref ... --exposure`).

# %%
from attnkit.config import resolve_path
from attnkit.data.text import read_parallel
from attnkit.tasks.translation import exposure

test = read_parallel(resolve_path("attnkit:multi30k/test_2016_flickr.en.gz"),
                     resolve_path("attnkit:multi30k/test_2016_flickr.de.gz"))
test.src, test.tgt = test.src[:200], test.tgt[:200]
gap = exposure(m, test)
print({k: v for k, v in gap.items() if not isinstance(v, (list, dict))})

# %% [markdown] lang="en"
# ## Greedy and beam search
#
# Greedy keeps the most probable word at each step; beam search keeps the `k` most probable hypotheses.
# BLEU of both on the same 200 sentences (one sentence's trace below is one example, the BLEU is the
# corpus-level answer):

# %% [markdown] lang="ru"
# ## Жадный и лучевой поиск
#
# Жадный поиск на каждом шаге берёт самое вероятное слово; лучевой держит `k` самых вероятных гипотез.
# BLEU обоих на тех же 200 предложениях (трасса одного предложения ниже — лишь пример, ответ по корпусу
# даёт BLEU):

# %%
import sacrebleu

for beam in (1, 5):
    hyps = [t[0].text for t in m.translate(test.src, beam=beam)]
    print(f"beam {beam}: BLEU {sacrebleu.corpus_bleu(hyps, [test.tgt]).score:.2f}")

# %% [markdown] lang="en"
# The search, step by step (`attnkit plot beam DIR --text "..." --beam 3`): blue kept, green finished,
# grey pruned, the best finished hypothesis's path in red.

# %% [markdown] lang="ru"
# Поиск по шагам (`attnkit plot beam DIR --text "..." --beam 3`): синие гипотезы оставлены, зелёные
# закончены, серые отброшены, путь лучшей законченной гипотезы — красный.

# %%
T = "A man cutting branches of trees."
for beam in (1, 3):
    translations, steps = m.trace(T, beam)
    display(plotting.beam_figure(steps, beam, f"beam {beam}: {T} -> {translations[0].text}"))

# %% [markdown] lang="en"
# ## Beyond teacher forcing
#
# attnkit has the three remedies the lecture names as training strategies (`training.strategy`):
# scheduled sampling, parallel scheduled sampling and professor forcing. docs/EXPERIMENTS.md runs each
# for 300 updates on from a trained model, three seeds each. The same for this notebook's model, 30
# updates each (`attnkit train CONFIG --set training.init_from=DIR --set training.strategy.name=...`):

# %% [markdown] lang="ru"
# ## Не только teacher forcing
#
# В attnkit есть все три средства, которые называет лекция, — стратегии обучения (`training.strategy`):
# scheduled sampling, параллельный scheduled sampling и professor forcing. docs/EXPERIMENTS.md
# дообучает каждой по 300 шагов от обученной модели, по три сида. То же для модели этой тетрадки, по
# 30 шагов (`attnkit train CONFIG --set training.init_from=DIR --set training.strategy.name=...`):

# %%
if not MODEL:
    for strategy in ("teacher_forcing", "scheduled_sampling", "parallel_scheduled_sampling", "professor_forcing"):
        tuned = attnkit.fit("attnkit:demo.yaml", runs / f"course-transformer-{strategy}", {
            "data.test": None, **QUICK, "training.init_from": str(runs / "course-transformer"),
            "training.strategy": {"name": strategy}, "training.warmup_steps": 0},
            max_steps=30 if FULL else 2, reuse=True)
        hyps = [t[0].text for t in tuned.translate(test.src, beam=1)]
        print(f"{strategy}: greedy BLEU {sacrebleu.corpus_bleu(hyps, [test.tgt]).score:.2f}")
