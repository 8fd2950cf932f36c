"""What the moving average of the weights (training.ema_decay) bought a language-model run: validation
and test perplexity of its best average (model.safetensors) beside those of the weights themselves
at the end of the run (last.safetensors), both scored as training scores them.
    python bench/average_vs_last.py runs/bench-ptb-lstm-lm-ema
"""

import json
import sys
from pathlib import Path

from attnkit.checkpoint import load_weights, read_checkpoint
from attnkit.tasks.language_model import LanguageModel, read_text, stream, stream_perplexity

run = Path(sys.argv[1])
lm = LanguageModel.load(run)  # the best average
data = lm.cfg.data
chunk = min(data.max_len, lm.model.max_positions or data.max_len)
streams = {split: stream(lm.tok, read_text(getattr(data, split))) for split in ("valid", "test")}


def scores() -> dict:
    return {split: round(stream_perplexity(lm.model, ids, chunk), 2) for split, ids in streams.items()}


average = scores()
groups, doc = read_checkpoint(run / "last.safetensors")
if "average" not in doc:
    sys.exit(f"{run}: trained without training.ema_decay")
load_weights(lm.model, groups["model"], doc["aliases"], run / "last.safetensors")
print(json.dumps({"average (best)": average, "weights (last)": scores(), "updates": doc["average"]["updates"],
                  "ema_decay": lm.cfg.training.ema_decay}))
