"""Runner's Knee Assistant: shared configuration, boundary types, storage and the `knee` command.

Importing this package switches off telemetry and network look-ups of the libraries we use,
before any of them is imported: the product runs offline and sends nothing out.
"""

import os

for _name, _value in {
    "ANONYMIZED_TELEMETRY": "False",  # Chroma
    "GRADIO_ANALYTICS_ENABLED": "False",  # Gradio: only the string "True" switches it on
    "HF_HUB_OFFLINE": "1",  # the embedding model is loaded by path, never fetched
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # no "Loading weights" bars in our output
    "TRANSFORMERS_VERBOSITY": "error",
    "LANGCHAIN_TRACING_V2": "false",
    # NumPy's OpenBLAS with its own thread pool was 20-100x slower on this 2-core machine for the
    # small matrices of a question (a 12x384 @ 384x1536 product: 23 ms threaded, 0.27 ms single;
    # a question 730 ms vs 23 ms); a server runs requests side by side anyway.
    "OPENBLAS_NUM_THREADS": "1",
}.items():
    os.environ.setdefault(_name, _value)
# Chroma reads this one under its own name too; a user cannot switch telemetry on by accident.
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

__version__ = "0.1.0"
