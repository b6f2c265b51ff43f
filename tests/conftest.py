"""Test session set-up. The loopback Hub plugin must come first: it sets HF_ENDPOINT and HF_HUB_DISABLE_XET before
any test module imports huggingface_hub, datasets or transformers (they read both at import time)."""

pytest_plugins = [
    "tests.hub_fixtures",
    # A real `transformers serve` process with an embedded model, shared by every module that uses it.
    "tests.serve_fixtures",
    # A small trained run and the comparison Space served on it.
    "tests.space_fixtures",
]
