import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests prune afresh: a pruned-model cache shared with earlier runs would hide what the code does now
# (tests/test_pruned_cache.py turns it on in a temporary directory).
os.environ.setdefault("HARNESS_PRUNED_CACHE_DIR", "off")


@pytest.fixture
def data_dir():
    """The mirrored benchmark data; tests that need it skip with the reason when it is absent."""
    from harness import config

    path = config.data_dir()
    if path is None or not path.is_dir():
        pytest.skip("HARNESS_DATA_DIR is not set (the mirrored data in ../shared/data); .ci/run sets it")
    return path


@pytest.fixture(scope="session")
def smollm2():
    """The embedded SmolLM2-135M (dequantised once, cached)."""
    from harness.llm.models import load_model

    return load_model("smollm2-135m")
