"""The native reader: a small line recognizer trained on the renderer's own pages.

It proves the pixels of a page, at any age tier, still hold the text, fast and
on the CPU; it says nothing of how a given vision model reads them.

- :mod:`~optical_memory.reader.charset`: what it reads (Latin, Greek, Cyrillic,
  symbols, the newline marker; anything else is read as U+FFFD and counted);
- :mod:`~optical_memory.reader.lines`: line boxes from a page's layout or its
  ink profile, and the crops the model reads;
- :mod:`~optical_memory.reader.infer`: the model at inference, without torch:
  int8 in onnxruntime (``weights/reader.int8.onnx``) when it is installed,
  else float32 in numpy;
- :mod:`~optical_memory.reader.unknown`: guesses over glyphs outside the
  character set found (by width and doubt) and marked U+FFFD;
- :mod:`~optical_memory.reader.quantize`: the int8 ONNX export
  (``python -m optical_memory.reader.quantize``; needs the ``onnx`` package);
- :mod:`~optical_memory.reader.model`, :mod:`~optical_memory.reader.data`,
  :mod:`~optical_memory.reader.train`: the torch model, its data drawn by the
  renderer, and the training CLI (``python -m optical_memory.reader.train``).

Use it through the decoder registry: ``get_decoder("native")`` or
``OpticalMemory(decoder="native")``.
"""
from __future__ import annotations

from optical_memory.reader.charset import CHARSET, UNKNOWN, Codec
from optical_memory.reader.infer import LineRead, NumpyReader, default_weights

__all__ = ["CHARSET", "UNKNOWN", "Codec", "LineRead", "NumpyReader", "default_weights"]
