"""Rows of a Hugging Face dataset source (online only)."""

from __future__ import annotations

from harness.data import ResolvedData


def hub_rows(resolved: ResolvedData, column: str = "text") -> list[str]:
    import datasets

    src = resolved.source
    kwargs = {"revision": src.revision, "split": src.split or "train"}
    if src.files:
        ds = datasets.load_dataset(src.repo, data_files=list(src.files), **kwargs)
    else:
        ds = datasets.load_dataset(src.repo, src.config, **kwargs)
    return list(ds[column])
