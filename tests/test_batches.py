import pyarrow as pa
import pyarrow.parquet as pq
import torch

from llm4sbr_core.data.batches import load_samples


def test_load_samples_pads_right_and_keeps_the_last_clicks(tmp_path):
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"sample_id": [7, 8, 9], "session_id": [0, 0, 1],
                             "items": [[1], [1, 2, 3, 4], [5, 6]], "target": [2, 5, 7]}), path)
    s = load_samples(path, max_len=3)
    assert s.items.tolist() == [[1, 0, 0], [2, 3, 4], [5, 6, 0]]
    assert s.lengths.tolist() == [1, 3, 2] and s.targets.tolist() == [2, 5, 7]
    batch = s.batch(torch.tensor([0, 2]))
    assert batch.items.tolist() == [[1, 0], [5, 6]]  # trimmed to the batch's longest
    assert batch.sample_ids.tolist() == [7, 9]
    full = load_samples(path)
    assert full.items.shape == (3, 4)
    seen = torch.cat([b.sample_ids for b in s.batches(2, shuffle=True,
                                                       generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == [7, 8, 9]
