# %% [markdown] lang="en"
# # 4. Language models
#
# The notebook of the course's [page 4](../../docs/course/04-language-models.md). A language model gives
# the probability of a text one word at a time, `P(w_1 .. w_T) = prod_t P(w_t | w_<t)`, and is scored by
# perplexity, `exp` of the mean negative log-probability of the test words (lower is better). From
# counting to networks, on the Penn Treebank (Mikolov's split, 10,000 words).

# %% [markdown] lang="ru"
# # 4. Языковые модели
#
# Тетрадка к [странице 4](../../docs/course/ru/04-language-models.md) курса. Языковая модель даёт
# вероятность текста по одному слову, `P(w_1 .. w_T) = prod_t P(w_t | w_<t)`, а качество меряют
# перплексией — `exp` от среднего отрицательного логарифма вероятности тестовых слов (чем меньше, тем
# лучше). От подсчёта к нейросетям, на Penn Treebank (разбиение Миколова, 10 000 слов).

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
from attnkit.data.text import read_lines

PTB = "../shared/data/ptb_lm"
QUICK = {} if FULL else {"data.train": f"{PTB}/ptb.valid.txt.gz", "training.precision": "fp32",  # less, for a check
                         "data.valid": "attnkit:contexts/senses.en.txt"}
test = read_lines(f"{PTB}/ptb.test.txt.gz")[: None if FULL else 100]

# %% [markdown] lang="en"
# Counting: an interpolated Kneser-Ney 5-gram model (no training, half a minute of counting).

# %% [markdown] lang="ru"
# Подсчёт: интерполированная 5-граммная модель Кнезера–Нея (без обучения, полминуты подсчёта).

# %%
kn = attnkit.fit("configs/ptb-kneser-ney.yaml", runs / "ptb-kneser-ney", QUICK, reuse=True)
print(f"Kneser-Ney 5-gram, test perplexity {kn.perplexity(test):.1f}")

# %% [markdown] lang="en"
# A network: a Transformer decoder (masked self-attention, page 9), 500 updates (a few minutes; the
# hour-long run of docs/BENCHMARKS.md reaches 110 on test).

# %% [markdown] lang="ru"
# Нейросеть: декодер Трансформера (маскированное самовнимание, страница 9), 500 шагов (несколько минут;
# часовой прогон из docs/BENCHMARKS.md доходит до 110 на тесте).

# %%
lm = attnkit.fit("configs/ptb-transformer-lm.yaml", runs / "course-ptb-transformer-lm",
                 {"data.test": None, **QUICK}, max_steps=500 if FULL else 3, reuse=True)
print(f"Transformer LM, test perplexity {lm.perplexity(test):.1f}")

# %% [markdown] lang="en"
# Generating: greedy search gives one continuation per prompt; sampling (top-p 0.9) a different one per
# seed (`attnkit generate DIR --prompt "..." --method sample --top-p 0.9 --seed 1`).

# %% [markdown] lang="ru"
# Генерация: жадный поиск даёт одно продолжение на затравку, сэмплирование (top-p 0,9) — своё для
# каждого сида (`attnkit generate DIR --prompt "..." --method sample --top-p 0.9 --seed 1`).

# %%
prompt = "the company said"
print("greedy:", lm.generate(prompt, method="greedy"))
for seed in (1, 2, 3):
    print(f"sample, seed {seed}:", lm.generate(prompt, method="sample", top_p=0.9, seed=seed))

# %% [markdown] lang="en"
# Where each predicted word looks: the masked self-attention of layer 2, head 1. A row reads only the
# inputs before its word: the upper triangle is zero, which is what lets one pass over a sentence
# train every next-word prediction at once.

# %% [markdown] lang="ru"
# Куда смотрит каждое предсказанное слово: маскированное самовнимание слоя 2, голова 1. Строка читает
# только входы до своего слова: верхний треугольник нулевой — поэтому один проход по предложению
# обучает сразу все предсказания следующего слова.

# %%
plotting.attention_figure(lm.attention("the company said it expects profits to rise"),
                          "Transformer LM: the company said it expects profits to rise", layer=2, head=1)
