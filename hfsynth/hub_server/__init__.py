"""The loopback Hub-compatible server (``hfsynth hub serve``): an island that the real ``huggingface_hub``,
``datasets`` and ``transformers`` clients talk to through ``HF_ENDPOINT``. The pipeline's own Hub client code
(publishing, repo ids) is :mod:`hfsynth.hub`."""
