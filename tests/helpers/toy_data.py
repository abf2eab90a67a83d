"""Small scored datasets in the trainer's format (see megatron_o1p/training/data.py)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import torch


def write_toy_dataset(path, *, rows: int = 16, vocab: int = 1000, seed: int = 0, **override):
    """Random prompts/responses with every column any loss needs; `override` replaces columns
    (a value, or a function of the row index)."""
    g = torch.Generator().manual_seed(seed)
    table = []
    for i in range(max(rows, 1)):  # rows=0: one row for the schema, then none are written
        prompt = torch.randint(
            0, vocab, (int(torch.randint(3, 8, (1,), generator=g)),), generator=g
        )
        response = torch.randint(
            0, vocab, (int(torch.randint(2, 20, (1,), generator=g)),), generator=g
        )
        row = {
            "prompt_ids": prompt.tolist(),
            "response_ids": response.tolist(),
            "advantage": float(torch.randn(1, generator=g)),
            "ref_logprobs": (-6.9 + 0.2 * torch.randn(len(response), generator=g)).tolist(),
            "chosen_ids": response.tolist()[:4],
            "rejected_ids": response.tolist() * 2,
            "ref_chosen_logprob": -6.9 * 4,
            "ref_rejected_logprob": -6.9 * 2 * len(response),
        }
        for key, value in override.items():
            row[key] = value(i) if callable(value) else value
        table.append(row)
    pq.write_table(pa.Table.from_pylist(table).slice(0, rows), path)
    return path
