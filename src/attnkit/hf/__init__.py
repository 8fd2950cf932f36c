"""Hugging Face transformers interop: ``attnkit import hf`` (a MarianMT model in, ``importer.py``) and
``attnkit export --to hf`` (an attnkit Transformer out, as MarianMT or Pegasus, ``exporter.py``). Both
directions copy weights through one table of corresponding tensors (``weights.py``)."""

from __future__ import annotations

from attnkit.errors import UserError


def require_transformers():
    """The transformers module, or the one-line error that says how to install it."""
    try:
        import transformers
    except ImportError:
        raise UserError("transformers is not installed: pip install transformers "
                        "(or pip install -e '.[hf]')") from None
    return transformers
