"""Tasks: what each ``task:`` of a config trains. The name-to-module mapping, in one place."""

from __future__ import annotations

from attnkit.tasks import bilm, captioning, classification, language_model, tagging, translation

TASKS = {
    "translation": translation.prepare,
    "tagging": tagging.prepare,
    "classification": classification.prepare,
    "language_model": language_model.prepare,
    "bilm": bilm.prepare,
    "captioning": captioning.prepare,
}
