"""N hosts read exactly the global batches of one host (data_prep.pipelines.batching)."""
import numpy as np
from sa_tsp_fixtures import write_tiny_shards

from data_prep.pipelines.tsp_pipeline import TspInputConfig, tsp_train_dataset


def _concat(batches):
    return {k: np.concatenate([b[k] for b in batches]) for k in ("element_id", "clips", "valid")}


def test_two_hosts_together_read_the_one_host_batches(tmp_path):
    shards, _ = write_tiny_shards(str(tmp_path), num_videos=6, num_shards=2)
    for train in (True, False):
        cfg = dict(clip_length=4, fps=15.0, clips_per_segment=2, resize=(24, 24), crop=16,
                   num_concepts=0, read_threads=1, prefetch_buffer=1)
        one = iter(tsp_train_dataset(shards, TspInputConfig(batch_size=4, **cfg), seed=3,
                                     train=train, process_index=0, process_count=1))
        hosts = [iter(tsp_train_dataset(shards, TspInputConfig(batch_size=2, **cfg), seed=3,
                                        train=train, process_index=i, process_count=2))
                 for i in range(2)]
        steps = 7 if train else 6  # training crosses epoch boundaries (12 clips / 4)
        for _ in range(steps):
            try:
                expected = next(one)
            except StopIteration:
                break
            got = _concat([next(h) for h in hosts])
            for key in got:
                np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
