"""The base of every config section: strict types, and a misspelt or unknown key is an error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=False)


# Upper bounds of the sizes a config may ask for, far above any model this toolkit trains, so that a
# stranger's config is refused by the schema before a layer is built: 100,000 layers would take minutes
# to construct, two billion positions a table of terabytes.
MAX_LAYERS = 128
MAX_HEADS = 512
MAX_WIDTH = 1 << 16  # an embedding, hidden or feed-forward size
MAX_POSITIONS = 1 << 16
MAX_VOCAB = 1 << 21
MAX_BEAM = 1024
MAX_TOKENS = 1 << 16  # a length in tokens: max_len, an output limit, a generation
MAX_BATCH_TOKENS = 1 << 24
